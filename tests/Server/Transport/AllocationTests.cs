using System.Buffers;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;

namespace Collab.Server.Tests.Transport;

[CollectionDefinition(nameof(AllocationCollection), DisableParallelization = true)]
public sealed class AllocationCollection
{
}

/// <summary>
/// After warm-up, receiving and sending messages allocates nothing in the transport. Measured on the one
/// thread that drives an in-memory connection (inline pipe schedulers, inline output), so every byte the
/// transport allocates for a message is counted, and nothing else is. The bodies run under Task.Run:
/// xunit executes tests on its own TaskScheduler, under which completed async methods resume their
/// callers on the thread pool instead of inline, which would move work off the measured thread.
/// They run alone (no parallel tests): other tests draining ArrayPool.Shared's buckets would make a
/// rent miss and allocate, which is the pool's behaviour under contention, not a per-message cost.
/// </summary>
[Collection(nameof(AllocationCollection))]
public sealed class AllocationTests
{
    private const int WarmUp = 2_000;
    private const int Measured = 10_000;

    public static TheoryData<string, byte[][]> Traffic() => new()
    {
        { "small binary", new[] { RawWebSocketClient.EncodeFrame(0x2, new byte[64]) } },
        { "text with multibyte characters", new[] { RawWebSocketClient.EncodeFrame(0x1, "héllo wörld 😀"u8) } },
        { "16-bit length binary", new[] { RawWebSocketClient.EncodeFrame(0x2, new byte[4000]) } },
        { "assembled 100 KiB binary", new[] { RawWebSocketClient.EncodeFrame(0x2, new byte[100 * 1024]) } },
        {
            "fragmented text with a ping in the middle",
            new[]
            {
                RawWebSocketClient.EncodeFrame(0x1, "frag"u8, fin: false),
                RawWebSocketClient.EncodeFrame(0x9, "p"u8),
                RawWebSocketClient.EncodeFrame(0x0, "ment"u8),
            }
        },
    };

    [Theory]
    [MemberData(nameof(Traffic))]
    public Task Echo_round_trip_allocates_nothing_per_message(string name, byte[][] frames) => Task.Run(async () =>
    {
        var app = new TestApplication();
        await using var connection = new InMemoryConnection(app);
        connection.Handshake();

        long bytesOut = 0;
        for (int i = 0; i < WarmUp; i++)
        {
            bytesOut += RoundTrip(connection, frames);
        }

        Assert.True(bytesOut > 0, name);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Measured; i++)
        {
            RoundTrip(connection, frames);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated == 0, $"{name}: {allocated} bytes allocated over {Measured} messages ({(double)allocated / Measured:F2} per message)");
    });

    [Fact]
    public Task Broadcast_to_many_connections_allocates_nothing_per_message() => Task.Run(async () =>
    {
        var app = new TestApplication();
        var connections = new InMemoryConnection[50];
        for (int i = 0; i < connections.Length; i++)
        {
            connections[i] = new InMemoryConnection(app);
            connections[i].Handshake();
        }

        IWebSocketConnection[] handles = app.Open.Values.ToArray();
        byte[] payload = new byte[200];
        void Broadcast()
        {
            using OutboundMessage message = OutboundMessage.CreateBinary(payload.Length);
            payload.CopyTo(message.GetSpan(payload.Length));
            message.Advance(payload.Length);
            message.Complete();
            foreach (IWebSocketConnection handle in handles)
            {
                handle.TrySend(message);
            }

            foreach (InMemoryConnection connection in connections)
            {
                connection.Discard();
            }
        }

        for (int i = 0; i < WarmUp; i++)
        {
            Broadcast();
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Measured / 10; i++)
        {
            Broadcast();
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated == 0, $"{allocated} bytes allocated over {Measured / 10} broadcasts to {handles.Length} connections");
        foreach (InMemoryConnection connection in connections)
        {
            await connection.DisposeAsync();
        }
    });

    [Fact]
    public Task Ack_frames_with_op_timestamps_are_observed_and_allocate_nothing_per_message() => Task.Run(async () =>
    {
        // The latency breakdown (Hosting.LatencyMetrics): an Ack frame carries its op's timestamps and the connection
        // observes its stages after the flush that wrote it. That must cost no allocation per op either.
        var app = new TestApplication();
        await using var connection = new InMemoryConnection(app);
        connection.Handshake();
        IWebSocketConnection handle = app.Open.Values.Single();
        byte[] payload = new byte[24];
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        var stamps = new Collab.Engine.Sequencing.OpTimestamps(now - 300, now - 200, now - 100);
        void SendAck()
        {
            using OutboundMessage message = OutboundMessage.CreateBinary(payload.Length);
            payload.CopyTo(message.GetSpan(payload.Length));
            message.Advance(payload.Length);
            message.Complete();
            handle.TrySend(message.WithTimestamps(stamps));
            connection.Discard();
        }

        for (int i = 0; i < WarmUp; i++)
        {
            SendAck();
        }

        double observedBefore = Collab.Server.Hosting.LatencyMetrics.AckWrittenSeconds.Count;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Measured; i++)
        {
            SendAck();
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated == 0, $"{allocated} bytes allocated over {Measured} stamped acks");
        Assert.True(Collab.Server.Hosting.LatencyMetrics.AckWrittenSeconds.Count - observedBefore >= Measured, "the stamped acks were not observed");
    });

    [Fact]
    public Task Harness_detects_a_per_message_allocation() => Task.Run(async () =>
    {
        // Guards the tests above against measuring nothing: an application that allocates 24+ bytes per message is caught.
        var app = new TestApplication { OnMessage = (_, payload, _) => new ValueTask(Task.FromResult(payload.ToArray())) };
        await using var connection = new InMemoryConnection(app);
        connection.Handshake();
        byte[] frame = RawWebSocketClient.EncodeFrame(0x2, new byte[16]);
        for (int i = 0; i < WarmUp; i++)
        {
            connection.Write(frame);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            connection.Write(frame);
        }

        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before >= 1000 * 24);
    });

    private static long RoundTrip(InMemoryConnection connection, byte[][] frames)
    {
        foreach (byte[] frame in frames)
        {
            connection.Write(frame);
        }

        return connection.Discard();
    }
}
