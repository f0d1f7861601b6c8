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
        InMemoryConnection[] connections = OpenWebSockets(5, app, options, registry);

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
            await DisposeAllAsync(connections);
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

    [Fact]
    public async Task A_tick_pings_at_most_its_budget_and_the_deferred_connections_follow_in_the_next_ticks()
    {
        // Budget: 2 x 5 connections x 50 ms / 500 ms = 1, raised to the floor of 2 per tick.
        var options = new TransportOptions
        {
            PingInterval = TimeSpan.FromMilliseconds(500),
            HeartbeatInterval = TimeSpan.FromMilliseconds(50),
        };
        using var registry = new ConnectionRegistry(options) { MinPingsPerTick = 2 };
        Assert.Equal(2, registry.PingBudget(5));
        var app = new TestApplication();
        InMemoryConnection[] connections = OpenWebSockets(5, app, options, registry);

        try
        {
            double deferredBefore = TransportMetrics.PingsDeferred.Value;
            await Task.Delay(600);
            var pingedIn = new int[connections.Length];
            for (int tick = 1; tick <= 4; tick++)
            {
                registry.Tick();
                int pinged = 0;
                for (int i = 0; i < connections.Length; i++)
                {
                    byte[] written = connections[i].ReadAll();
                    if (written.Length > 0)
                    {
                        Assert.Equal(0x89, written[0]);
                        Assert.Equal(0, pingedIn[i]); // nobody twice
                        pingedIn[i] = tick;
                        pinged++;
                    }
                }

                // 2, 2, 1, then nothing: every due connection was pinged once, none waited more than two extra ticks.
                Assert.Equal(tick switch { 1 => 2, 2 => 2, 3 => 1, _ => 0 }, pinged);
            }

            Assert.All(pingedIn, tick => Assert.InRange(tick, 1, 3));

            // Three were deferred by the first tick and one by the second; a deferral is not a missed pong, so no
            // connection was closed.
            Assert.True(TransportMetrics.PingsDeferred.Value - deferredBefore >= 4);
            Assert.Equal(0, app.ClosedCount);
        }
        finally
        {
            await DisposeAllAsync(connections);
        }
    }

    [Fact]
    public void The_budget_is_twice_the_steady_ping_rate_and_never_below_the_floor()
    {
        var options = new TransportOptions { PingInterval = TimeSpan.FromSeconds(30), HeartbeatInterval = TimeSpan.FromSeconds(1) };
        using var registry = new ConnectionRegistry(options);
        Assert.Equal(256, registry.PingBudget(0));
        Assert.Equal(256, registry.PingBudget(3_000)); // 200 per tick: the floor
        Assert.Equal(1_267, registry.PingBudget(19_000)); // 19,000 / 30 s x 2, rounded up
        Assert.Equal(66_667, registry.PingBudget(1_000_000));
    }

    [Fact]
    public async Task A_tick_writes_its_pings_in_slices_each_connection_once()
    {
        // Budget 6 (the floor), slices of 2: five due connections are pinged 2, 2, 1, and the tick ends with the last
        // slice. Nobody is pinged twice, nobody is deferred to the next tick.
        var options = new TransportOptions { PingInterval = TimeSpan.FromMilliseconds(500), HeartbeatInterval = TimeSpan.FromMilliseconds(50) };
        using var registry = new ConnectionRegistry(options) { MinPingsPerTick = 6, MinPingsPerSlice = 2 };
        Assert.Equal(2, registry.PingsPerSlice(registry.PingBudget(5)));
        var app = new TestApplication();
        InMemoryConnection[] connections = OpenWebSockets(5, app, options, registry);
        try
        {
            await Task.Delay(600);
            double deferredBefore = TransportMetrics.PingsDeferred.Value;
            Assert.False(registry.TickSlice()); // no tick in progress: nothing to do
            Assert.True(registry.BeginTick());
            Assert.False(registry.BeginTick()); // one tick at a time
            var pingedIn = new int[connections.Length];
            bool[] more = new bool[3];
            for (int slice = 1; slice <= 3; slice++)
            {
                more[slice - 1] = registry.TickSlice();
                int pinged = 0;
                for (int i = 0; i < connections.Length; i++)
                {
                    byte[] written = connections[i].ReadAll();
                    if (written.Length > 0)
                    {
                        Assert.Equal(0x89, written[0]);
                        Assert.Equal(0, pingedIn[i]);
                        pingedIn[i] = slice;
                        pinged++;
                    }
                }

                Assert.Equal(slice == 3 ? 1 : 2, pinged);
            }

            Assert.Equal([true, true, false], more);
            Assert.All(pingedIn, slice => Assert.InRange(slice, 1, 3));
            Assert.Equal(deferredBefore, TransportMetrics.PingsDeferred.Value);
            Assert.True(registry.BeginTick()); // the sliced tick has ended
            Assert.False(registry.TickSlice());
        }
        finally
        {
            await DisposeAllAsync(connections);
        }
    }

    [Fact]
    public async Task The_running_heartbeat_reaches_every_connection_through_its_slices()
    {
        // Started for real: slices of one ping each, armed by the slice timer a tenth of the interval apart.
        var options = new TransportOptions
        {
            PingInterval = TimeSpan.FromMilliseconds(300),
            HeartbeatInterval = TimeSpan.FromMilliseconds(100),
        };
        using var registry = new ConnectionRegistry(options) { MinPingsPerSlice = 1 };
        var app = new TestApplication();
        InMemoryConnection[] connections = OpenWebSockets(6, app, options, registry);
        try
        {
            registry.Start();
            var pinged = new bool[connections.Length];
            long deadline = Environment.TickCount64 + 10_000;
            while (pinged.Contains(false) && Environment.TickCount64 < deadline)
            {
                await Task.Delay(20);
                for (int i = 0; i < connections.Length; i++)
                {
                    byte[] written = connections[i].ReadAll();
                    pinged[i] |= written.Length > 0 && written[0] == 0x89;
                }
            }

            Assert.All(pinged, Assert.True);
        }
        finally
        {
            registry.Dispose();
            await DisposeAllAsync(connections);
        }
    }

    [Fact]
    public void A_ticks_slices_share_its_budget_eight_ways()
    {
        var options = new TransportOptions { PingInterval = TimeSpan.FromSeconds(30), HeartbeatInterval = TimeSpan.FromSeconds(1) };
        using var registry = new ConnectionRegistry(options);
        Assert.Equal(159, registry.PingsPerSlice(registry.PingBudget(19_000))); // 1,267 / 8, rounded up
        Assert.Equal(32, registry.PingsPerSlice(registry.PingBudget(0))); // 256 / 8
        Assert.Equal(32, registry.PingsPerSlice(100)); // the floor
    }

    /// <summary>Connections of one (never started) registry, each past its WebSocket handshake.</summary>
    private static InMemoryConnection[] OpenWebSockets(int count, TestApplication app, TransportOptions options, ConnectionRegistry registry)
    {
        var connections = new InMemoryConnection[count];
        for (int i = 0; i < count; i++)
        {
            connections[i] = new InMemoryConnection(app, options, registry);
            connections[i].Handshake();
        }

        return connections;
    }

    private static async Task DisposeAllAsync(IEnumerable<InMemoryConnection> connections)
    {
        foreach (InMemoryConnection connection in connections)
        {
            await connection.DisposeAsync();
        }
    }
}
