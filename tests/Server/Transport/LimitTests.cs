using System.Buffers;
using System.Net.WebSockets;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;

namespace Collab.Server.Tests.Transport;

/// <summary>Each limit is enforced with its documented answer, and one abusive client never starves the others.</summary>
public sealed class LimitTests
{
    [Fact]
    public async Task Upgrade_past_max_connections_gets_503_and_a_freed_slot_is_reusable()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions { MaxConnections = 2 });
        RawWebSocketClient a = await RawWebSocketClient.ConnectAsync(server.Port);
        await using RawWebSocketClient b = await RawWebSocketClient.ConnectAsync(server.Port);

        InvalidOperationException refused = await Assert.ThrowsAsync<InvalidOperationException>(() => RawWebSocketClient.ConnectAsync(server.Port));
        Assert.Contains("503 Service Unavailable", refused.Message);
        Assert.Contains("Retry-After: 1", refused.Message);

        // Plain HTTP still works at capacity (the load balancer must be able to probe).
        Assert.Equal(200, (await RawWebSocketClient.SendHttpAsync(server.Port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);
        RawHttpResponse readyz = await RawWebSocketClient.SendHttpAsync(server.Port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(503, readyz.StatusCode);
        Assert.Contains("connection limit", readyz.Body);

        await a.SendCloseAsync(1000);
        await a.ReceiveCloseAsync();
        await a.DisposeAsync();
        await app.NextClosedAsync();
        await using RawWebSocketClient c = await RawWebSocketClient.ConnectAsync(server.Port);
        await c.SendTextAsync("in");
        Assert.Equal("in", (await c.ReceiveFrameAsync()).Text);
    }

    [Fact]
    public async Task A_first_message_the_application_requires_must_arrive_within_the_handshake_timeout()
    {
        var app = new TestApplication { Handshake = _ => HandshakeDecision.Accept() with { RequireFirstMessage = true } };
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            // Long enough that the speaking client's first message beats it on a loaded machine.
            HandshakeTimeout = TimeSpan.FromMilliseconds(1500),
            HeartbeatInterval = TimeSpan.FromMilliseconds(20),
            PingInterval = TimeSpan.FromMilliseconds(100), // pings (and their pongs) do not count as a message
        });

        // Silent but answering pings: closed with 1002 once the timeout passes. Timed from before the connection exists,
        // so the server's deadline (from its 101) cannot have started earlier, however late this thread runs.
        long started = Environment.TickCount64;
        await using RawWebSocketClient silent = await RawWebSocketClient.ConnectAsync(server.Port);
        RawFrame frame;
        while ((frame = await silent.ReceiveFrameAsync()).Opcode == 0x9)
        {
            await silent.SendFrameAsync(0xA, frame.Payload);
        }

        Assert.Equal(0x8, frame.Opcode);
        Assert.Equal(1002, frame.CloseCode);
        Assert.True(Environment.TickCount64 - started >= 1500, "closed before the handshake timeout");
        Assert.Equal(ConnectionEndReason.HandshakeTimeout, await app.NextClosedAsync());

        // A client that speaks in time stays open long after the timeout.
        await using RawWebSocketClient speaking = await RawWebSocketClient.ConnectAsync(server.Port);
        await speaking.SendTextAsync("hello");
        Assert.Equal("hello", (await ReceiveDataAsync(speaking)).Text);
        for (int i = 0; i < 20; i++)
        {
            await Task.Delay(100);
            await speaking.SendTextAsync("still here");
            Assert.Equal("still here", (await ReceiveDataAsync(speaking)).Text);
        }

        Assert.Equal(1, app.ClosedCount);
    }

    [Fact]
    public async Task Without_RequireFirstMessage_a_silent_websocket_stays_open()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            HandshakeTimeout = TimeSpan.FromMilliseconds(200),
            HeartbeatInterval = TimeSpan.FromMilliseconds(20),
        });
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(server.Port);
        await Task.Delay(800);
        await client.SendTextAsync("late");
        Assert.Equal("late", (await client.ReceiveFrameAsync()).Text);
        Assert.Equal(0, app.ClosedCount);
    }

    [Fact]
    public async Task Silent_client_is_pinged_then_closed_after_two_missed_pongs()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            PingInterval = TimeSpan.FromMilliseconds(200),
            HeartbeatInterval = TimeSpan.FromMilliseconds(20),
            CloseTimeout = TimeSpan.FromMilliseconds(200),
        });
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(server.Port);
        RawFrame first = await client.ReceiveFrameAsync();
        RawFrame second = await client.ReceiveFrameAsync();
        RawFrame close = await client.ReceiveFrameAsync();
        Assert.Equal(0x9, first.Opcode);
        Assert.Equal(0x9, second.Opcode);
        Assert.Equal(0x8, close.Opcode);
        Assert.Equal(1001, close.CloseCode);
        Assert.Equal("ping timeout", close.CloseReason);
        Assert.Equal(ConnectionEndReason.IdleTimeout, await app.NextClosedAsync());
    }

    [Fact]
    public async Task Client_answering_pings_stays_open()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            PingInterval = TimeSpan.FromMilliseconds(100),
            HeartbeatInterval = TimeSpan.FromMilliseconds(20),
        });
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(server.Port);
        for (int i = 0; i < 6; i++)
        {
            RawFrame ping = await client.ReceiveFrameAsync();
            Assert.Equal(0x9, ping.Opcode);
            await client.SendFrameAsync(0xA, ping.Payload); // pong with the same payload
        }

        await client.SendTextAsync("alive");
        Assert.Equal("alive", (await client.ReceiveFrameAsync()).Text);
        Assert.Equal(0, app.ClosedCount);
    }

    [Fact]
    public async Task Ping_is_answered_with_a_pong_carrying_the_same_payload()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app);
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(server.Port);
        byte[] payload = Enumerable.Range(0, 125).Select(i => (byte)i).ToArray();
        await client.SendFrameAsync(0x9, payload);
        RawFrame pong = await client.ReceiveFrameAsync();
        Assert.Equal(0xA, pong.Opcode);
        Assert.Equal(payload, pong.Payload);

        // A ping between the fragments of a message is answered and the message still arrives whole.
        await client.SendFrameAsync(0x1, "frag"u8, fin: false);
        await client.SendFrameAsync(0x9, "mid"u8);
        await client.SendFrameAsync(0x0, "ment"u8);
        Assert.Equal("mid", (await client.ReceiveFrameAsync()).Text);
        Assert.Equal("fragment", (await client.ReceiveFrameAsync()).Text);
    }

    [Fact]
    public async Task Slow_consumer_is_closed_with_1008_instead_of_growing_memory()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            MaxOutboundBytesPerConnection = 256 * 1024,
            CloseTimeout = TimeSpan.FromMilliseconds(500),
            HeartbeatInterval = TimeSpan.FromMilliseconds(20),
        });
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(server.Port); // never reads
        IWebSocketConnection connection = await app.NextOpenedAsync();
        using OutboundMessage chunk = OutboundMessage.CreateBinary(new byte[32 * 1024]);
        int sent = 0;
        while (connection.TrySend(chunk))
        {
            sent++;
            Assert.True(sent < 10_000, "the bound was never enforced");
        }

        // Socket buffers absorb some megabytes; past that the queue fills and the bound trips.
        Assert.Equal(ConnectionEndReason.SlowConsumer, await app.NextClosedAsync());
        Assert.False(connection.TrySend(chunk));
    }

    [Fact]
    public async Task Flooding_client_does_not_starve_another_connection()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            MaxOutboundBytesPerConnection = 1024 * 1024,
            HeartbeatInterval = TimeSpan.FromMilliseconds(50),
            CloseTimeout = TimeSpan.FromMilliseconds(500),
        });
        await using RawWebSocketClient flooder = await RawWebSocketClient.ConnectAsync(server.Port);
        using var flooding = new CancellationTokenSource();
        byte[] burst = Enumerable.Range(0, 200).SelectMany(_ => RawWebSocketClient.EncodeFrame(0x2, new byte[1024])).ToArray();
        Task flood = Task.Run(async () =>
        {
            try
            {
                while (!flooding.IsCancellationRequested)
                {
                    await flooder.SendRawAsync(burst); // never reads the echoes
                }
            }
            catch (System.Net.Sockets.SocketException)
            {
                // closed as a slow consumer: expected
            }
        });

        using var other = new ClientWebSocket();
        await other.ConnectAsync(server.WebSocketUri, CancellationToken.None);
        for (int i = 0; i < 50; i++)
        {
            await other.SendAsync(BitConverter.GetBytes(i), WebSocketMessageType.Binary, true, CancellationToken.None);
            (byte[] echoed, _) = await ClientWebSocketConformanceTests.ReceiveMessageAsync(other);
            Assert.Equal(i, BitConverter.ToInt32(echoed));
        }

        Assert.Equal(ConnectionEndReason.SlowConsumer, await app.NextClosedAsync(TimeSpan.FromSeconds(20)));
        flooding.Cancel();
        await flood;
        Assert.Equal(WebSocketState.Open, other.State);
    }

    [Fact]
    public async Task Application_exception_closes_that_connection_with_1011()
    {
        var app = new TestApplication { OnMessage = (_, _, _) => throw new InvalidOperationException("boom") };
        await using TestTransportServer server = await TestTransportServer.StartAsync(app);
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(server.Port);
        await client.SendTextAsync("x");
        Assert.Equal(1011, (await client.ReceiveCloseAsync()).CloseCode);
        await client.SendCloseAsync(1011);
        Assert.Equal(ConnectionEndReason.InternalError, await app.NextClosedAsync());
    }

    /// <summary>The next data frame, answering (and skipping) the server's pings.</summary>
    private static async Task<RawFrame> ReceiveDataAsync(RawWebSocketClient client)
    {
        while (true)
        {
            RawFrame frame = await client.ReceiveFrameAsync();
            if (frame.Opcode != 0x9)
            {
                return frame;
            }

            await client.SendFrameAsync(0xA, frame.Payload);
        }
    }
}
