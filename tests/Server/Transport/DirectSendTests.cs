using System.Buffers.Binary;
using System.Net.WebSockets;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using Microsoft.Extensions.DependencyInjection;

namespace Collab.Server.Tests.Transport;

/// <summary>These tests read the process-wide count of full send buffers, which other tests' slow consumers also move.</summary>
[CollectionDefinition(nameof(SendBufferCollection), DisableParallelization = true)]
public sealed class SendBufferCollection
{
}

/// <summary>
/// The direct send path (TransportConnection.Send.cs): on a plain TCP connection the drain writes queued frames straight
/// to Kestrel's socket in gathered non-blocking sends, and falls back to an asynchronous send of the unsent tail when
/// the kernel's send buffer is full. These tests run the real Kestrel socket transport and a peer that stops reading,
/// so the full-buffer path is provoked for real, and check what the peer finally reads byte by byte.
/// </summary>
[Collection(nameof(SendBufferCollection))]
public sealed class DirectSendTests
{
    private const int FrameBytes = 8 * 1024;

    [Fact]
    public async Task A_plain_tcp_websocket_writes_to_the_socket_and_echoes()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app);
        using var ws = new ClientWebSocket();
        await ws.ConnectAsync(server.WebSocketUri, CancellationToken.None);
        var connection = (TransportConnection)await app.NextOpenedAsync();
        Assert.True(connection.WritesToSocket);

        for (int i = 0; i < 100; i++)
        {
            await ws.SendAsync(BitConverter.GetBytes(i), WebSocketMessageType.Binary, true, CancellationToken.None);
            (byte[] echoed, _) = await ClientWebSocketConformanceTests.ReceiveMessageAsync(ws);
            Assert.Equal(i, BitConverter.ToInt32(echoed));
        }

        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        Assert.Equal(ConnectionEndReason.ClientClosed, await app.NextClosedAsync());
    }

    [Fact]
    public async Task A_peer_that_stops_reading_gets_every_frame_whole_and_in_order_when_it_reads_again()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            MaxOutboundBytesPerConnection = 256 * 1024 * 1024,
        });
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(server.Port);
        var connection = (TransportConnection)await app.NextOpenedAsync();
        Assert.True(connection.WritesToSocket);
        double fullBefore = TransportMetrics.SendBufferFull.Value;

        // Far more than loopback's socket buffers hold (a few MiB each side) while the client does not read: the
        // kernel refuses part of a gathered send, the tail goes out asynchronously and the rest waits in the queue.
        const int count = 4_000;
        Task sending = Task.Run(() =>
        {
            for (int i = 0; i < count; i++)
            {
                using OutboundMessage message = Numbered(i);
                Assert.True(connection.TrySend(message));
            }
        });
        await sending;
        await WaitUntilAsync(() => TransportMetrics.SendBufferFull.Value > fullBefore, "the send buffer never filled");

        for (int i = 0; i < count; i++)
        {
            RawFrame frame = await client.ReceiveFrameAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(0x2, frame.Opcode);
            Assert.True(frame.Fin);
            AssertNumbered(frame.Payload, i);
        }

        await client.SendCloseAsync(1000);
        Assert.Equal(1000, (await client.ReceiveCloseAsync()).CloseCode);
        Assert.Equal(ConnectionEndReason.ClientClosed, await app.NextClosedAsync());
    }

    [Fact]
    public async Task A_slow_consumer_close_waits_for_the_partly_sent_frame_so_the_close_frame_is_never_inside_another()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            MaxOutboundBytesPerConnection = 1024 * 1024,
            CloseTimeout = TimeSpan.FromSeconds(30),
            HeartbeatInterval = TimeSpan.FromMilliseconds(20),
        });
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(server.Port);
        var connection = (TransportConnection)await app.NextOpenedAsync();
        double fullBefore = TransportMetrics.SendBufferFull.Value;

        // First fill the socket's buffers at the pace the drain empties the queue, so the bound cannot trip before the
        // kernel refuses a send; then flood until the bound trips: by then a frame is in the middle of an asynchronous
        // send and the queue behind it is dropped for the 1013 Close.
        int sent = 0;
        while (TransportMetrics.SendBufferFull.Value == fullBefore)
        {
            using (OutboundMessage message = Numbered(sent))
            {
                Assert.True(connection.TrySend(message));
            }

            sent++;
            Assert.True(sent < 100_000, "the send buffer never filled");
            await WaitUntilAsync(() => connection.QueuedBytes < 256 * 1024 || TransportMetrics.SendBufferFull.Value > fullBefore, "the drain stalled");
        }

        while (true)
        {
            using OutboundMessage message = Numbered(sent);
            if (!connection.TrySend(message))
            {
                break;
            }

            sent++;
            Assert.True(sent < 100_000, "the bound was never enforced");
        }

        Assert.True(TransportMetrics.SendBufferFull.Value > fullBefore, "the send buffer never filled");

        // What the client reads: whole frames numbered from 0 in order (the ring's dropped frames leave a gap only
        // after the last frame the kernel took), then the Close frame, intact.
        int expected = 0;
        while (true)
        {
            RawFrame frame = await client.ReceiveFrameAsync(TimeSpan.FromSeconds(30));
            if (frame.Opcode == 0x8)
            {
                Assert.Equal(1013, frame.CloseCode);
                break;
            }

            Assert.Equal(0x2, frame.Opcode);
            int number = BinaryPrimitives.ReadInt32LittleEndian(frame.Payload);
            Assert.True(number == expected, $"frame {number} arrived where {expected} was due");
            AssertNumbered(frame.Payload, number);
            expected++;
        }

        Assert.True(expected > 0 && expected < sent, $"read {expected} of {sent} frames before the Close");
        await client.SendCloseAsync(1013);
        Assert.Equal(ConnectionEndReason.SlowConsumer, await app.NextClosedAsync());
    }

    [Fact]
    public Task Direct_sends_allocate_nothing_per_message() => Task.Run(async () =>
    {
        // Inline output (as in the in-memory allocation tests): each TrySend drains on this thread, so every byte the
        // direct send path allocates is counted here and nothing else is. The clients read with one buffer each.
        var app = new TestApplication();
        var options = new TransportOptions();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, options, services =>
            services.AddSingleton(sp => new TransportServices(options, app, sp.GetRequiredService<ConnectionRegistry>(), inlineOutput: true)));
        using var reading = new CancellationTokenSource();
        var clients = new System.Net.Sockets.Socket[4];
        var readers = new Task[clients.Length];
        var connections = new TransportConnection[clients.Length];
        for (int i = 0; i < clients.Length; i++)
        {
            clients[i] = await UpgradeAsync(server.Port);
            connections[i] = (TransportConnection)await app.NextOpenedAsync();
            Assert.True(connections[i].WritesToSocket);
            readers[i] = DiscardAsync(clients[i], reading.Token);
        }

        byte[] payload = new byte[200];
        void Broadcast()
        {
            using OutboundMessage message = OutboundMessage.CreateBinary(payload);
            foreach (TransportConnection connection in connections)
            {
                connection.TrySend(message);
            }
        }

        for (int i = 0; i < 2_000; i++)
        {
            Broadcast();
        }

        const int measured = 10_000;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < measured; i++)
        {
            Broadcast();
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        int frames = measured * clients.Length;
        Assert.True(allocated == 0, $"{allocated} bytes allocated over {frames} frames sent straight to sockets ({(double)allocated / frames:F2} per frame)");
        reading.Cancel();
        foreach (System.Net.Sockets.Socket client in clients)
        {
            client.Dispose();
        }

        await Task.WhenAll(readers.Select(r => r.ContinueWith(_ => { }, TaskScheduler.Default)));
    });

    /// <summary>A plain socket with a completed upgrade (the allocation test reads it with one buffer).</summary>
    private static async Task<System.Net.Sockets.Socket> UpgradeAsync(int port)
    {
        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port));
        await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes(
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
        var head = new List<byte>();
        byte[] one = new byte[1];
        while (head.Count < 4 || head[^1] != '\n' || head[^2] != '\r' || head[^3] != '\n' || head[^4] != '\r')
        {
            Assert.Equal(1, await socket.ReceiveAsync(one));
            head.Add(one[0]);
        }

        Assert.StartsWith("HTTP/1.1 101 ", System.Text.Encoding.ASCII.GetString(head.ToArray()));
        return socket;
    }

    private static async Task DiscardAsync(System.Net.Sockets.Socket socket, CancellationToken cancellationToken)
    {
        byte[] buffer = new byte[64 * 1024];
        while (await socket.ReceiveAsync(buffer, System.Net.Sockets.SocketFlags.None, cancellationToken) > 0)
        {
        }
    }

    /// <summary>A binary frame whose payload is its number repeated: a frame cut or spliced anywhere fails the check.</summary>
    private static OutboundMessage Numbered(int number)
    {
        OutboundMessage message = OutboundMessage.CreateBinary(FrameBytes);
        Span<byte> span = message.GetSpan(FrameBytes)[..FrameBytes];
        for (int offset = 0; offset < FrameBytes; offset += 4)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[offset..], number);
        }

        message.Advance(FrameBytes);
        message.Complete();
        return message;
    }

    private static void AssertNumbered(byte[] payload, int number)
    {
        Assert.Equal(FrameBytes, payload.Length);
        for (int offset = 0; offset < FrameBytes; offset += 4)
        {
            if (BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(offset)) != number)
            {
                Assert.Fail($"frame {number} holds other bytes at offset {offset}");
            }
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string message)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, message);
            await Task.Delay(10);
        }
    }
}
