using Collab.Integration.Tests.Infrastructure;
using Collab.Protocol.V1;
using Collab.Server.Hosting;
using Collab.Server.Tests.Security.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Collab.Server.Tests.Hosting;

[CollectionDefinition(nameof(QuietCompactionCollection), DisableParallelization = true)]
public sealed class QuietCompactionCollection
{
}

/// <summary>
/// "Compact when quiet" (<see cref="QuietCompactionService"/>): the decision step by step on a clock that moves only when
/// told to (<see cref="QuietCompactionPolicy"/>), the real collection it runs, and the service inside a real server.
/// The tests that read the process's heap and its full collections run alone: another test's GC.Collect would move
/// the growth they measure.
/// </summary>
[Collection(nameof(QuietCompactionCollection))]
public sealed class QuietCompactionTests
{
    private const long MiB = 1024 * 1024;

    private static MemoryOptions Options(Action<MemoryOptions>? change = null)
    {
        var options = new MemoryOptions
        {
            CompactAfterHeapGrowth = 8 * MiB,
            QuietPeriod = TimeSpan.FromSeconds(10),
            QuietMaxEventsPerSecond = 5,
            MinInterval = TimeSpan.FromMinutes(5),
            CheckInterval = TimeSpan.FromSeconds(1),
        };
        change?.Invoke(options);
        return options;
    }

    /// <summary>Drives a policy one check a second, with a heap and an event total the test sets.</summary>
    private sealed class Checks
    {
        private readonly ManualTimeProvider _time = new();
        private readonly QuietCompactionPolicy _policy;

        public Checks(MemoryOptions options) => _policy = new QuietCompactionPolicy(options, _time);

        public long Events { get; set; }

        public long Heap { get; set; } = 100 * MiB;

        public QuietCompactionPolicy.Decision Last { get; private set; }

        /// <summary>Runs <paramref name="seconds"/> checks; the number of them that decided to compact (each recorded as run, the heap back to <paramref name="heapAfter"/>).</summary>
        public int Run(int seconds, long eventsPerSecond = 0, long? heapAfter = null, bool compactedByRuntime = false)
        {
            int compactions = 0;
            for (int i = 0; i < seconds; i++)
            {
                _time.Advance(TimeSpan.FromSeconds(1));
                Events += eventsPerSecond;
                Last = _policy.Observe(_time.GetTimestamp(), Events, Heap, compactedByRuntime && i == 0);
                if (Last.Compact)
                {
                    compactions++;
                    Heap = heapAfter ?? Heap;
                    _policy.Compacted(_time.GetTimestamp(), Heap);
                }
            }

            return compactions;
        }
    }

    [Fact]
    public void It_compacts_once_the_heap_has_grown_and_the_server_has_been_quiet_for_the_quiet_period()
    {
        var checks = new Checks(Options());
        Assert.Equal(0, checks.Run(1)); // the first check only starts counting
        checks.Heap += 20 * MiB; // a burst of connections
        Assert.Equal(0, checks.Run(9));
        Assert.False(checks.Last.Compact);
        Assert.Equal(20 * MiB, checks.Last.GrowthBytes);

        Assert.Equal(1, checks.Run(1, heapAfter: 105 * MiB)); // 10 s quiet
        Assert.Equal(0, checks.Run(600)); // nothing more grew
    }

    [Fact]
    public void It_does_not_compact_while_traffic_flows_however_much_the_heap_grew()
    {
        var checks = new Checks(Options());
        checks.Run(1);
        checks.Heap += 500 * MiB;
        Assert.Equal(0, checks.Run(600, eventsPerSecond: 6)); // just above 5 a second, for ten minutes
        Assert.Equal(TimeSpan.Zero, checks.Last.Quiet);

        // A single busy second restarts the quiet period.
        Assert.Equal(0, checks.Run(9));
        Assert.Equal(0, checks.Run(1, eventsPerSecond: 100));
        Assert.Equal(0, checks.Run(9));
        Assert.Equal(1, checks.Run(1));
    }

    [Fact]
    public void A_few_events_a_second_still_count_as_quiet()
    {
        var checks = new Checks(Options());
        checks.Run(1);
        checks.Heap += 20 * MiB;
        Assert.Equal(1, checks.Run(10, eventsPerSecond: 5));
    }

    [Fact]
    public void It_does_not_compact_more_often_than_the_floor()
    {
        var checks = new Checks(Options(o => o.MinInterval = TimeSpan.FromMinutes(5)));
        checks.Run(1);
        checks.Heap += 20 * MiB;
        Assert.Equal(1, checks.Run(10, heapAfter: 90 * MiB)); // at the 11th check

        // Grows again and goes quiet at once: not before five minutes after the first run.
        checks.Heap += 50 * MiB;
        Assert.Equal(0, checks.Run(299));
        Assert.Equal(1, checks.Run(1, heapAfter: 95 * MiB));
    }

    [Fact]
    public void Growth_counts_from_the_lowest_heap_since_the_last_compaction_and_a_runtime_compaction_restarts_it()
    {
        var checks = new Checks(Options());
        checks.Run(1);
        checks.Heap -= 60 * MiB; // connections left; background collections freed their objects
        checks.Run(1, eventsPerSecond: 100);
        checks.Heap += 10 * MiB; // and new ones came: 10 MiB above the low point, below the start
        Assert.Equal(1, checks.Run(10));

        var other = new Checks(Options());
        other.Run(1);
        other.Heap += 20 * MiB;
        Assert.Equal(0, other.Run(1, eventsPerSecond: 100, compactedByRuntime: true)); // the runtime compacted at the new size
        Assert.Equal(0, other.Run(20));
        Assert.Equal(0, other.Last.GrowthBytes);
    }

    [Fact]
    public void It_runs_a_blocking_compacting_full_collection_and_records_it()
    {
        var time = new ManualTimeProvider();
        long events = 0;
        var service = new QuietCompactionService(Options(o => o.CompactAfterHeapGrowth = 16 * MiB), time, () => events, NullLogger.Instance);
        Assert.False(service.CheckOnce());
        double runsBefore = MemoryMetrics.Compactions.Value;
        long pausesBefore = MemoryMetrics.PauseSeconds.Count;

        // 32 MiB of small arrays (the small object heap, where fragmentation and dead objects stay), then dropped.
        var burst = new List<byte[]>();
        for (int i = 0; i < 32 * 1024; i++)
        {
            burst.Add(new byte[1024]);
        }

        GC.KeepAlive(burst);
        long heapWithBurst = GC.GetTotalMemory(forceFullCollection: false);
        burst = null;

        time.Advance(TimeSpan.FromSeconds(5));
        events += 1_000; // a busy check
        Assert.False(service.CheckOnce());

        time.Advance(TimeSpan.FromSeconds(10));
        int fullBefore = GC.CollectionCount(2);
        Assert.True(service.CheckOnce());

        Assert.True(GC.CollectionCount(2) > fullBefore);
        GCMemoryInfo full = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        Assert.True(full.Compacted);
        Assert.True(GC.GetTotalMemory(forceFullCollection: false) < heapWithBurst - (16 * MiB), "the burst's arrays were not collected");
        Assert.Equal(runsBefore + 1, MemoryMetrics.Compactions.Value);
        Assert.Equal(pausesBefore + 1, MemoryMetrics.PauseSeconds.Count);

        // Nothing has grown since: the next quiet checks do not collect again.
        time.Advance(TimeSpan.FromMinutes(10));
        Assert.False(service.CheckOnce());
    }

    [Fact]
    public async Task The_server_runs_it_and_counts_its_own_traffic()
    {
        double runsBefore = MemoryMetrics.Compactions.Value;
        await using InProcessServer server = await InProcessServer.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Memory:CheckInterval"] = "00:00:00.100",
            ["Memory:QuietPeriod"] = "00:00:00.500",
            ["Memory:CompactAfterHeapGrowth"] = "1",
            ["Memory:MinInterval"] = "01:00:00",
        });

        // Traffic moves the counters the service reads: a connection accepted, a Hello and a Subscribe received (the
        // transport publishes its message count on its heartbeat), an op committed.
        long before = QuietCompactionService.ServerEvents();
        await using (RawProtocolClient client = await RawProtocolClient.ConnectAsync(server.WebSocketUri))
        {
            await client.SendAsync(new ClientMessage { Subscribe = new Subscribe { DocId = "quiet-doc" } });
            await client.ReceiveAsync(ServerMessage.BodyOneofCase.Subscribed);
            await client.SendAsync(new ClientMessage { Submit = new Submit { DocId = "quiet-doc", ClientSeq = 1, BaseVersion = 0, Op = SessionHarness.Insert(0, "x") } });
            await client.ReceiveAsync(ServerMessage.BodyOneofCase.Ack);
        }

        await WaitUntilAsync(() => QuietCompactionService.ServerEvents() >= before + 4, "the connection, its Hello and Subscribe and the op");

        // Then quiet, with a heap that grew since start: one compaction, and only one within the floor.
        await WaitUntilAsync(() => MemoryMetrics.Compactions.Value >= runsBefore + 1, "a quiet-time compaction");
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Assert.Equal(runsBefore + 1, MemoryMetrics.Compactions.Value);
    }

    [Fact]
    public async Task Switched_off_it_does_not_run_at_all()
    {
        var time = new ManualTimeProvider();
        using var off = new QuietCompactionService(Options(o => o.CompactWhenQuiet = false), time, () => 0, NullLogger.Instance);
        using var on = new QuietCompactionService(Options(), time, () => 0, NullLogger.Instance);
        await off.StartAsync(CancellationToken.None);
        await on.StartAsync(CancellationToken.None);

        await off.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(10)); // returns at once: no timer, no checks
        Assert.False(on.ExecuteTask!.IsCompleted);
        await on.StopAsync(CancellationToken.None);
        Assert.True(on.ExecuteTask.IsCompleted);
    }

    [Fact]
    public void Its_settings_are_validated_with_the_other_sections()
    {
        IConfiguration config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Memory:CompactAfterHeapGrowth"] = "0",
            ["Memory:CheckInterval"] = "00:00:00",
            ["Memory:QuietMaxEventsPerSecond"] = "-1",
            ["Memory:MinInterval"] = "-00:00:01",
            ["Memory:CompactWhenQuiet"] = "yes",
        }).Build();

        // A value that does not convert, then (once it does) the rules of the section, reported together.
        string[] failures = [.. Assert.Throws<OptionsValidationException>(() => CollabSettings.Read(config)).Failures];
        Assert.Contains(failures, f => f.StartsWith("Memory:CompactWhenQuiet: 'yes' is not", StringComparison.Ordinal));
        config["Memory:CompactWhenQuiet"] = "false";
        failures = [.. Assert.Throws<OptionsValidationException>(() => CollabSettings.Read(config)).Failures];
        Assert.Equal(
            [
                "Memory:CompactAfterHeapGrowth: must be positive (was 0).",
                "Memory:MinInterval: must be zero or positive (was -00:00:01).",
                "Memory:CheckInterval: must be positive (was 00:00:00).",
                "Memory:QuietMaxEventsPerSecond: must be a finite number, zero or positive (was -1).",
            ],
            failures);

        Assert.Equal(
            ["Memory:CheckInterval: (00:00:05) must not be longer than Memory:QuietPeriod (00:00:02): quiet is judged check by check."],
            Assert.Throws<OptionsValidationException>(() => new MemoryOptions { CheckInterval = TimeSpan.FromSeconds(5), QuietPeriod = TimeSpan.FromSeconds(2) }.Validate()).Failures);
        new MemoryOptions().Validate(); // the defaults
        Assert.False(CollabSettings.Read(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Memory:CompactWhenQuiet"] = "false" }).Build()).Memory.CompactWhenQuiet);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(50);
        }
    }
}
