using System.Buffers.Binary;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;

namespace Collab.Server.Tests.Transport;

/// <summary>
/// The registry's heartbeat, driven tick by tick: every connection silent past the ping interval is pinged in
/// the tick that finds it so, all with one frame carrying the tick's timestamp, and the frame outlives the tick
/// for connections that write it later.
/// </summary>
public sealed class HeartbeatTests
{
    [Fact]
    public async Task Every_silent_connection_gets_the_same_ping_in_one_tick_and_an_active_one_none()
    {
        // The registry is never started: the test ticks it.
        var options = new TransportOptions { PingInterval = TimeSpan.FromMilliseconds(500) };
        using var registry = new ConnectionRegistry(options);
        var app = new TestApplication();
        var connections = new InMemoryConnection[5];
        for (int i = 0; i < connections.Length; i++)
        {
            connections[i] = new InMemoryConnection(app, options, registry);
            connections[i].Handshake();
        }

        try
        {
            await Task.Delay(600);
            long before = Environment.TickCount64;
            registry.Tick();
            long after = Environment.TickCount64;

            byte[] first = connections[0].ReadAll();
            Assert.Equal(10, first.Length);
            Assert.Equal(0x89, first[0]); // FIN + ping, unmasked
            Assert.Equal(8, first[1]);
            long stamp = BinaryPrimitives.ReadInt64BigEndian(first.AsSpan(2));
            Assert.InRange(stamp, before, after);
            for (int i = 1; i < connections.Length; i++)
            {
                Assert.Equal(first, connections[i].ReadAll());
            }

            // An unanswered ping is not repeated before another interval; then a connection that was just heard
            // from (its pong) is left alone while the silent ones are pinged again.
            registry.Tick();
            Assert.All(connections, c => Assert.Empty(c.ReadAll()));
            await Task.Delay(600);
            connections[0].Write(RawWebSocketClient.EncodeFrame(0xA, first.AsSpan(2), mask: true));
            registry.Tick();
            Assert.Empty(connections[0].ReadAll());
            for (int i = 1; i < connections.Length; i++)
            {
                Assert.Equal(0x89, connections[i].ReadAll()[0]);
            }
        }
        finally
        {
            foreach (InMemoryConnection connection in connections)
            {
                await connection.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task The_shared_ping_stays_intact_for_connections_that_write_it_after_the_tick()
    {
        // Drains on the thread pool (not inline): most connections copy the frame after Tick has dropped its reference.
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            PingInterval = TimeSpan.FromMilliseconds(200),
            HeartbeatInterval = TimeSpan.FromMilliseconds(50),
        });
        var clients = new List<RawWebSocketClient>();
        try
        {
            for (int i = 0; i < 20; i++)
            {
                clients.Add(await RawWebSocketClient.ConnectAsync(server.Port));
            }

            // Every client is pinged, each frame a well-formed ping carrying a timestamp of this run (a buffer
            // recycled too early would show as another frame's bytes or a garbage length).
            long started = Environment.TickCount64;
            foreach (RawWebSocketClient client in clients)
            {
                RawFrame ping = await client.ReceiveFrameAsync();
                Assert.Equal(0x9, ping.Opcode);
                Assert.Equal(8, ping.Payload.Length);
                Assert.InRange(BinaryPrimitives.ReadInt64BigEndian(ping.Payload), started - 60_000, Environment.TickCount64);
                await client.SendFrameAsync(0xA, ping.Payload);
            }

            Assert.Equal(0, app.ClosedCount);
        }
        finally
        {
            foreach (RawWebSocketClient client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }
}
