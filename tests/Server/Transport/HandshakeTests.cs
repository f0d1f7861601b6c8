using System.Net.WebSockets;
using System.Text;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;

namespace Collab.Server.Tests.Transport;

/// <summary>The HTTP/1.1 upgrade: parsing from the pipe, validation, real HTTP error responses.</summary>
public sealed class HandshakeTests : IAsyncLifetime
{
    private const string Key = "dGhlIHNhbXBsZSBub25jZQ==";
    private readonly TestApplication _app = new();
    private TestTransportServer _server = null!;

    public async Task InitializeAsync() => _server = await TestTransportServer.StartAsync(_app, new TransportOptions
    {
        AllowedOrigins = { "https://app.example.com" },
        HandshakeTimeout = TimeSpan.FromMilliseconds(500),
        HeartbeatInterval = TimeSpan.FromMilliseconds(50),
    });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static string Upgrade(string method = "GET", string path = "/ws", string version = "HTTP/1.1", string? headers = null, bool host = true) =>
        $"{method} {path} {version}\r\n" + (host ? "Host: localhost\r\n" : "") + (headers ?? $"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\n") + "\r\n";

    [Fact]
    public async Task Rfc_sample_key_gets_the_rfc_accept_value()
    {
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectTcpAsync(_server.Port);
        await client.SendRawAsync(Encoding.ASCII.GetBytes(Upgrade()));
        string head = await client.ReadHttpHeadAsync();
        Assert.StartsWith("HTTP/1.1 101 Switching Protocols\r\n", head);
        Assert.Contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", head); // RFC 6455 section 1.3
        Assert.Contains("\r\nUpgrade: websocket\r\n", head);
        Assert.DoesNotContain("Sec-WebSocket-Protocol", head);
    }

    [Fact]
    public async Task Request_split_one_byte_per_write_still_upgrades()
    {
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectTcpAsync(_server.Port);
        byte[] request = Encoding.ASCII.GetBytes(Upgrade());
        byte[] frame = RawWebSocketClient.EncodeFrame(0x1, "after"u8);
        foreach (byte b in request.Concat(frame))
        {
            await client.SendRawAsync(new[] { b });
        }

        Assert.StartsWith("HTTP/1.1 101", await client.ReadHttpHeadAsync());
        Assert.Equal("after", (await client.ReceiveFrameAsync()).Text);
    }

    [Fact]
    public async Task First_frame_in_the_same_packet_as_the_request_is_not_lost()
    {
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectTcpAsync(_server.Port);
        await client.SendRawAsync(Encoding.ASCII.GetBytes(Upgrade()).Concat(RawWebSocketClient.EncodeFrame(0x1, "pipelined"u8)).ToArray());
        Assert.StartsWith("HTTP/1.1 101", await client.ReadHttpHeadAsync());
        Assert.Equal("pipelined", (await client.ReceiveFrameAsync()).Text);
    }

    public static TheoryData<string, string, int, string?> Rejections() => new()
    {
        { "POST", Upgrade(method: "POST"), 405, "Allow: GET" },
        { "HTTP/1.0", Upgrade(version: "HTTP/1.0"), 400, null },
        { "no Host", Upgrade(host: false), 400, null },
        { "plain GET without Upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 426, "Sec-WebSocket-Version: 13" },
        { "Upgrade: h2c", Upgrade(headers: $"Upgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\n"), 426, "Upgrade: websocket" },
        { "Connection without upgrade", Upgrade(headers: $"Upgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\n"), 400, null },
        { "version 8", Upgrade(headers: $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 8\r\n"), 426, "Sec-WebSocket-Version: 13" },
        { "missing version", Upgrade(headers: $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\n"), 426, "Sec-WebSocket-Version: 13" },
        { "missing key", Upgrade(headers: "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"), 400, null },
        { "key of 15 bytes", Upgrade(headers: "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\nSec-WebSocket-Version: 13\r\n"), 400, null },
        { "key not base64", Upgrade(headers: "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\nSec-WebSocket-Version: 13\r\n"), 400, null },
        { "two keys", Upgrade(headers: $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\n"), 400, null },
        { "foreign origin", Upgrade(headers: $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\nOrigin: https://evil.example.com\r\n"), 403, null },
        { "request body", Upgrade(headers: $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\nContent-Length: 5\r\n"), 400, null },
        { "space before colon", "GET /ws HTTP/1.1\r\nHost : x\r\n\r\n", 400, null },
        { "obsolete line folding", Upgrade(headers: $"Upgrade: websocket\r\n Connection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\n"), 400, null },
        { "garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, null },
        { "head over 8 KiB", $"GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: {new string('a', 9000)}\r\n\r\n", 431, null },
    };

    [Theory]
    [MemberData(nameof(Rejections))]
    public async Task Invalid_upgrade_gets_a_real_http_error(string name, string request, int status, string? header)
    {
        RawHttpResponse response = await RawWebSocketClient.SendHttpAsync(_server.Port, request);
        Assert.True(response.StatusCode == status, $"{name}: expected {status}, got {response.Head}");
        Assert.True(response.HasHeader("Connection: close"), name);
        if (header is not null)
        {
            Assert.True(response.HasHeader(header), $"{name}: missing '{header}' in {response.Head}");
        }

        Assert.Equal(0, _app.OpenedCount);
    }

    [Fact]
    public async Task Allowed_origin_and_requests_without_origin_are_accepted()
    {
        using var browser = new ClientWebSocket();
        browser.Options.SetRequestHeader("Origin", "https://APP.example.com");
        await browser.ConnectAsync(_server.WebSocketUri, CancellationToken.None);
        using var service = new ClientWebSocket();
        await service.ConnectAsync(_server.WebSocketUri, CancellationToken.None);
        Assert.Equal(WebSocketState.Open, browser.State);
        Assert.Equal(WebSocketState.Open, service.State);
    }

    [Fact]
    public async Task Application_rejection_is_answered_before_the_upgrade()
    {
        _app.Handshake = request => request.Authorization == "Bearer good"
            ? HandshakeDecision.Accept(state: "user-1")
            : HandshakeDecision.Reject(401, "invalid token");
        RawHttpResponse response = await RawWebSocketClient.SendHttpAsync(_server.Port, Upgrade(headers: $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer bad\r\n"));
        Assert.Equal(401, response.StatusCode);
        Assert.Equal("invalid token\n", response.Body);

        using var ws = new ClientWebSocket();
        ws.Options.SetRequestHeader("Authorization", "Bearer good");
        await ws.ConnectAsync(new Uri(_server.WebSocketUri + "?doc=42"), CancellationToken.None);
        HandshakeRequest accepted = _app.Handshakes.Single(h => h.Authorization == "Bearer good");
        Assert.Equal("/ws", accepted.Path);
        Assert.Equal("?doc=42", accepted.Query);
        Assert.NotNull(accepted.RemoteEndPoint);
    }

    [Fact]
    public async Task Sub_protocol_the_client_did_not_offer_is_a_server_error_not_a_broken_upgrade()
    {
        _app.Handshake = _ => HandshakeDecision.Accept("invented");
        RawHttpResponse response = await RawWebSocketClient.SendHttpAsync(_server.Port, Upgrade(headers: $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: a, b\r\n"));
        Assert.Equal(500, response.StatusCode);
    }

    [Fact]
    public async Task Handshake_not_completed_in_time_is_closed()
    {
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectTcpAsync(_server.Port);
        await client.SendRawAsync(Encoding.ASCII.GetBytes("GET /ws HTTP/1.1\r\nHost: x\r\n")); // never finished
        Assert.True(await client.WaitForDisconnectAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task Silent_connection_is_closed_after_the_handshake_timeout()
    {
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectTcpAsync(_server.Port);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(await client.WaitForDisconnectAsync(TimeSpan.FromSeconds(5)));
        Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(400), $"closed after {watch.Elapsed}, before the 500 ms timeout");
    }

    [Fact]
    public async Task Application_throwing_during_the_handshake_gets_500_and_the_server_carries_on()
    {
        _app.Handshake = _ => throw new InvalidOperationException("auth backend down");
        RawHttpResponse response = await RawWebSocketClient.SendHttpAsync(_server.Port, Upgrade());
        Assert.Equal(500, response.StatusCode);
        _app.Handshake = _ => HandshakeDecision.Accept();
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(_server.Port);
        Assert.StartsWith("HTTP/1.1 101", client.HandshakeResponse);
    }
}
