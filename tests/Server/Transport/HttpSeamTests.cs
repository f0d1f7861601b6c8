using System.Net;
using System.Text;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using Microsoft.Extensions.DependencyInjection;

namespace Collab.Server.Tests.Transport;

/// <summary>
/// The connection middleware that splits the one public port between the raw RFC 6455 transport (a first request for
/// the WebSocket path) and ASP.NET Core's HTTP pipeline (everything else), and the per-address pending-connection gate
/// in front of both.
/// </summary>
public sealed class HttpSeamTests
{
    private static readonly IPAddress SecondAddress = IPAddress.Parse("127.0.0.2");

    [Fact]
    public async Task A_first_request_for_another_path_reaches_the_pipeline_whole_however_it_is_split()
    {
        await using TestTransportServer server = await TestTransportServer.StartAsync(new TestApplication());
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectTcpAsync(server.Port);

        // Split inside the request line: the peek waits for the whole line and consumes nothing.
        foreach (string part in new[] { "G", "ET /hea", "lthz HTTP/1.1\r", "\nHost: x\r\n", "\r\n" })
        {
            await client.SendRawAsync(Encoding.ASCII.GetBytes(part));
            await Task.Delay(20);
        }

        RawHttpResponse health = await client.ReadHttpResponseAsync();
        Assert.Equal(200, health.StatusCode);
        Assert.Equal("ok\n", health.Body);

        // The pipeline keeps the connection: an unknown path is its 404, and the connection stays usable.
        await client.SendRawAsync(Encoding.ASCII.GetBytes("GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
        Assert.Equal(404, (await client.ReadHttpResponseAsync()).StatusCode);
        Assert.Equal(200, (await client.ReadHttpResponseAsync()).StatusCode);
    }

    [Fact]
    public async Task An_upgrade_on_a_keep_alive_connection_of_the_pipeline_is_served_by_the_raw_framing()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app);
        ConnectionRegistry registry = server.Services.GetRequiredService<ConnectionRegistry>();
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectTcpAsync(server.Port);
        await client.SendRawAsync(Encoding.ASCII.GetBytes("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
        Assert.Equal(200, (await client.ReadHttpResponseAsync()).StatusCode);
        Assert.Equal(1, registry.PendingHandshakes); // the pipeline's connection holds a pending slot

        await client.UpgradeAsync(server.Port, extraHeaders: "Sec-WebSocket-Protocol: x.test\r\n");
        Assert.Contains("Upgrade: websocket", client.HandshakeResponse, StringComparison.OrdinalIgnoreCase);

        // Echoes, a large fragmented message, ping/pong and the close handshake: the raw framing over the upgraded stream.
        await client.SendBinaryAsync("hello"u8);
        Assert.Equal("hello", (await client.ReceiveFrameAsync()).Text);
        byte[] large = Encoding.ASCII.GetBytes(new string('z', 200_000));
        await client.SendFrameAsync(0x2, large.AsSpan(0, 100_000), fin: false);
        await client.SendFrameAsync(0x0, large.AsSpan(100_000), fin: true);
        Assert.Equal(large.Length, (await client.ReceiveFrameAsync()).Payload.Length);
        await client.SendFrameAsync(0x9, "p"u8);
        Assert.Equal(0xA, (await client.ReceiveFrameAsync()).Opcode);

        // A WebSocket now: it left the pending capacity and counts as a WebSocket.
        Assert.Equal(0, registry.PendingHandshakes);
        Assert.Equal(1, registry.WebSocketCount);

        await client.SendCloseAsync(1000);
        Assert.Equal(1000, (await client.ReceiveCloseAsync()).CloseCode);
        Assert.Equal(ConnectionEndReason.ClientClosed, await app.NextClosedAsync());
        await WaitForAsync(() => registry.WebSocketCount == 0 && registry.PendingHandshakes == 0);
    }

    [Theory]
    [InlineData("Origin: https://evil.example.com\r\n", 403, null)]
    [InlineData("X: y\r\n", 426, "Sec-WebSocket-Version: 13")]
    public async Task Upgrade_refusals_on_the_pipeline_answer_like_the_raw_path(string header, int status, string? expectedHeader)
    {
        var options = new TransportOptions { AllowedOrigins = ["https://app.example.com"] };
        await using TestTransportServer server = await TestTransportServer.StartAsync(new TestApplication(), options);
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectTcpAsync(server.Port);
        await client.SendRawAsync(Encoding.ASCII.GetBytes("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
        Assert.Equal(200, (await client.ReadHttpResponseAsync()).StatusCode);

        string version = status == 426 ? "8" : "13";
        await client.SendRawAsync(Encoding.ASCII.GetBytes(
            $"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n{header}\r\n"));
        string head = await client.ReadHttpHeadAsync();
        Assert.StartsWith($"HTTP/1.1 {status} ", head);
        if (expectedHeader is not null)
        {
            Assert.Contains(expectedHeader, head, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public async Task One_address_cannot_take_the_pending_capacity_whichever_stack_it_aims_at()
    {
        var options = new TransportOptions { MaxPendingHandshakes = 4, MaxPendingHandshakesPerAddress = 2, ExemptLoopbackAddresses = false };
        await using TestTransportServer server = await TestTransportServer.StartAsync(new TestApplication(), options);
        ConnectionRegistry registry = server.Services.GetRequiredService<ConnectionRegistry>();

        // Address 1 holds two connections: one idle before any request (raw peek), one of the HTTP pipeline.
        await using RawWebSocketClient idle = await RawWebSocketClient.ConnectTcpAsync(server.Port);
        await using RawWebSocketClient keepAlive = await RawWebSocketClient.ConnectTcpAsync(server.Port);
        await keepAlive.SendRawAsync(Encoding.ASCII.GetBytes("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
        Assert.Equal(200, (await keepAlive.ReadHttpResponseAsync()).StatusCode);
        await WaitForAsync(() => registry.PendingHandshakes == 2);

        // A third from it is refused at once, for the WebSocket path and any other alike.
        RawHttpResponse refused = await RawWebSocketClient.SendHttpAsync(server.Port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(429, refused.StatusCode);
        Assert.True(refused.HasHeader("Retry-After: 1"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => RawWebSocketClient.ConnectAsync(server.Port));

        // Another address still gets in, and its WebSocket leaves the pending capacity once upgraded.
        await using RawWebSocketClient other = await RawWebSocketClient.ConnectAsync(server.Port, source: SecondAddress);
        await other.SendBinaryAsync("x"u8);
        Assert.Equal("x", (await other.ReceiveFrameAsync()).Text);
        Assert.Equal(2, registry.PendingHandshakes);
        Assert.Equal(1, registry.PendingAddresses);

        // Address 1 gets its share back as its connections end.
        await idle.DisposeAsync();
        await WaitForAsync(() => registry.PendingHandshakes == 1);
        await using RawWebSocketClient again = await RawWebSocketClient.ConnectAsync(server.Port);
        await WaitForAsync(() => registry.PendingHandshakes == 1);
    }

    [Fact]
    public void Addresses_are_counted_alone_for_ipv4_and_per_64_for_ipv6()
    {
        var options = new TransportOptions { MaxPendingHandshakes = 100, MaxPendingHandshakesPerAddress = 2 };
        using var registry = new ConnectionRegistry(options);
        var slots = new List<ConnectionRegistry.PendingSlot>();

        void Enter(string address, bool expected)
        {
            bool entered = registry.TryEnterHandshake(new IPEndPoint(IPAddress.Parse(address), 1234), out ConnectionRegistry.PendingSlot? slot, out ConnectionRejection rejection);
            Assert.True(entered == expected, $"{address}: expected {(expected ? "entry" : "refusal")}");
            if (entered)
            {
                slots.Add(slot!);
            }
            else
            {
                Assert.Equal(ConnectionRejection.PendingHandshakesPerAddress, rejection);
            }
        }

        Enter("2001:db8:1:2::1", true);
        Enter("2001:db8:1:2:ffff:ffff:ffff:ffff", true);
        Enter("2001:db8:1:2::77", false);   // same /64
        Enter("2001:db8:1:3::1", true);     // the next /64
        Enter("198.51.100.7", true);
        Enter("::ffff:198.51.100.7", true); // the same IPv4 client seen by a dual-stack listener
        Enter("198.51.100.7", false);
        Enter("198.51.100.8", true);
        Enter("127.0.0.1", true);           // loopback is exempt by default
        Enter("127.0.0.1", true);
        Enter("127.0.0.1", true);
        Assert.Equal(9, registry.PendingHandshakes);

        foreach (ConnectionRegistry.PendingSlot slot in slots)
        {
            slot.Release();
            slot.Release(); // idempotent
        }

        Assert.Equal(0, registry.PendingHandshakes);
        Assert.Equal(0, registry.PendingAddresses);
        Enter("2001:db8:1:2::77", true);
    }

    [Fact]
    public async Task The_server_wide_bound_still_refuses_with_503()
    {
        var options = new TransportOptions { MaxPendingHandshakes = 1, ExemptLoopbackAddresses = false };
        await using TestTransportServer server = await TestTransportServer.StartAsync(new TestApplication(), options);
        await using RawWebSocketClient idle = await RawWebSocketClient.ConnectTcpAsync(server.Port, source: SecondAddress);
        await WaitForAsync(() => server.Services.GetRequiredService<ConnectionRegistry>().PendingHandshakes == 1);
        RawHttpResponse refused = await RawWebSocketClient.SendHttpAsync(server.Port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(503, refused.StatusCode);
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!condition())
        {
            await Task.Delay(10, timeout.Token);
        }
    }
}
