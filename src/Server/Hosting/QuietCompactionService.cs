using System.Diagnostics;
using System.Runtime.InteropServices;
using Collab.Server.Sessions;
using Collab.Server.Transport;

namespace Collab.Server.Hosting;

/// <summary>
/// Gives memory back after a burst ("compact when quiet", <see cref="MemoryOptions"/>). The runtime collects only when
/// allocations fill its budget, so a server that goes quiet after a burst (thousands of connections opened at once, a
/// load peak) keeps, for as long as it stays quiet, whatever the burst left: dead objects, free space between the live
/// ones, gen-0 space, Kestrel's evicted pool blocks. At 19,000 idle connections that was ~1.1 KiB of the 7.85 KiB
/// resident per connection (docs/PERFORMANCE.md, "Idle memory per connection").
/// <para>
/// Every <see cref="MemoryOptions.CheckInterval"/> this reads the server's own traffic counters and the heap size
/// (<see cref="QuietCompactionPolicy"/>); when the heap has grown by <see cref="MemoryOptions.CompactAfterHeapGrowth"/>
/// since the last compacting full collection, the server has been quiet for <see cref="MemoryOptions.QuietPeriod"/>, and
/// <see cref="MemoryOptions.MinInterval"/> has passed since the last run, it runs one blocking compacting full
/// collection. That pauses every thread (tens to a few hundred milliseconds for a heap of a few hundred MB on one
/// core), which is why it never runs while traffic flows: a latency-sensitive client would see the pause in its p99.
/// </para>
/// </summary>
internal sealed partial class QuietCompactionService : BackgroundService
{
    private readonly MemoryOptions _options;
    private readonly TimeProvider _time;
    private readonly Func<long> _events;
    private readonly ILogger _logger;
    private readonly QuietCompactionPolicy _policy;
    private long _lastFullBlockingIndex;

    public QuietCompactionService(MemoryOptions options, ILogger<QuietCompactionService> logger)
        : this(options, TimeProvider.System, ServerEvents, logger)
    {
    }

    /// <summary>For tests: a clock and an activity source of their own.</summary>
    internal QuietCompactionService(MemoryOptions options, TimeProvider time, Func<long> events, ILogger logger)
    {
        options.Validate();
        _options = options;
        _time = time;
        _events = events;
        _logger = logger;
        _policy = new QuietCompactionPolicy(options, time);
        _lastFullBlockingIndex = GC.GetGCMemoryInfo(GCKind.FullBlocking).Index;
    }

    /// <summary>
    /// The server's activity so far: WebSocket messages received (published by the transport's heartbeat), connections
    /// accepted, ops committed (the HTTP API's included). Control frames (keep-alive pings and pongs) are not counted:
    /// an idle server with thousands of connections answers hundreds of them a second and is still idle.
    /// </summary>
    internal static long ServerEvents() =>
        (long)(TransportMetrics.MessagesReceived.Value + TransportMetrics.ConnectionsTotal.Value + SessionMetrics.OpsCommitted.Value);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.CompactWhenQuiet)
        {
            return;
        }

        using var timer = new PeriodicTimer(_options.CheckInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                CheckOnce();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Host stopping.
        }
    }

    /// <summary>One check (what each tick runs): samples the counters and the heap, compacts when the policy says so. True when it compacted.</summary>
    internal bool CheckOnce()
    {
        long heap = GC.GetTotalMemory(forceFullCollection: false);

        // A blocking compacting full collection the runtime ran itself (or someone's GC.Collect) starts the growth afresh.
        GCMemoryInfo lastFull = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        bool compactedByRuntime = lastFull.Index != _lastFullBlockingIndex && lastFull.Compacted;
        _lastFullBlockingIndex = lastFull.Index;

        QuietCompactionPolicy.Decision decision = _policy.Observe(_time.GetTimestamp(), _events(), heap, compactedByRuntime);
        if (!decision.Compact)
        {
            return false;
        }

        long committedBefore = GC.GetGCMemoryInfo().TotalCommittedBytes;
        long residentBefore = Environment.WorkingSet;
        long started = Stopwatch.GetTimestamp();

        // Aggressive compacts every generation and the large object heap, and decommits the free space it leaves (at
        // 19,000 idle connections the GC's committed bytes went 138.7 → 114.1 MB; a forced compacting collection with the
        // large object heap compacted once, 136.0 → 134.2 MB, kept the free regions and the gen-0 budget committed). It
        // requires the oldest generation, blocking and compacting.
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        TimeSpan pause = Stopwatch.GetElapsedTime(started);
        long residentAfterCollection = Environment.WorkingSet;

        // Then the C library returns the free pages of its malloc arenas (native allocations of the burst, which no
        // collection touches). The process is not paused for it.
        TrimNativeHeap();
        long residentAfter = Environment.WorkingSet;
        long heapAfter = GC.GetTotalMemory(forceFullCollection: false);
        long committedAfter = GC.GetGCMemoryInfo().TotalCommittedBytes;
        _lastFullBlockingIndex = GC.GetGCMemoryInfo(GCKind.FullBlocking).Index;
        _policy.Compacted(_time.GetTimestamp(), heapAfter);

        MemoryMetrics.Compactions.Inc();
        MemoryMetrics.PauseSeconds.Observe(pause.TotalSeconds);
        MemoryMetrics.ReleasedBytes.Inc(Math.Max(0, committedBefore - committedAfter));
        HostingLog.QuietCompaction(
            _logger, heap, heapAfter, committedBefore, committedAfter, residentBefore, residentAfterCollection, residentAfter, pause.TotalMilliseconds, decision.GrowthBytes, decision.Quiet.TotalSeconds);
        return true;
    }

    private static int s_mallocTrim = OperatingSystem.IsLinux() ? 1 : 0;

    private static void TrimNativeHeap()
    {
        if (Volatile.Read(ref s_mallocTrim) == 0)
        {
            return;
        }

        try
        {
            _ = MallocTrim(0);
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            // Not glibc (musl has no malloc_trim): nothing to trim this way.
            Volatile.Write(ref s_mallocTrim, 0);
        }
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}

/// <summary>
/// The decision of <see cref="QuietCompactionService"/>, apart from the GC so that it can be tested step by step:
/// quiet means every check since <see cref="MemoryOptions.QuietPeriod"/> ago saw at most
/// <see cref="MemoryOptions.QuietMaxEventsPerSecond"/>; growth is measured from the heap's lowest point since the last
/// compacting full collection (so a heap that shrank as connections left and grew again counts its new growth).
/// </summary>
internal sealed class QuietCompactionPolicy(MemoryOptions options, TimeProvider time)
{
    private bool _started;
    private long _lastCheck;
    private long _lastEvents;
    private long _quietSince;
    private long _lastRun;
    private bool _ran;
    private long _lowWater;

    /// <summary>What one check concluded.</summary>
    public readonly record struct Decision(bool Compact, long GrowthBytes, TimeSpan Quiet);

    /// <summary>
    /// One check at <paramref name="now"/> (a <see cref="TimeProvider.GetTimestamp"/>), with the activity counter's total
    /// <paramref name="events"/> and the heap's size; <paramref name="compactedByRuntime"/> when a compacting full
    /// collection ran since the previous check.
    /// </summary>
    public Decision Observe(long now, long events, long heapBytes, bool compactedByRuntime)
    {
        if (!_started || compactedByRuntime)
        {
            _lowWater = heapBytes;
        }
        else
        {
            _lowWater = Math.Min(_lowWater, heapBytes);
        }

        if (!_started)
        {
            // Nothing is known of the traffic before the first check: quiet is counted from here.
            _started = true;
            _lastCheck = now;
            _lastEvents = events;
            _quietSince = now;
            return new Decision(false, 0, TimeSpan.Zero);
        }

        TimeSpan sinceLastCheck = time.GetElapsedTime(_lastCheck, now);
        long delta = events - _lastEvents;
        _lastCheck = now;
        _lastEvents = events;
        if (delta > options.QuietMaxEventsPerSecond * Math.Max(sinceLastCheck.TotalSeconds, options.CheckInterval.TotalSeconds))
        {
            _quietSince = now;
        }

        TimeSpan quiet = time.GetElapsedTime(_quietSince, now);
        long growth = heapBytes - _lowWater;
        bool compact = growth >= options.CompactAfterHeapGrowth
            && quiet >= options.QuietPeriod
            && (!_ran || time.GetElapsedTime(_lastRun, now) >= options.MinInterval);
        return new Decision(compact, growth, quiet);
    }

    /// <summary>Records a compaction at <paramref name="now"/> that left the heap at <paramref name="heapBytes"/>.</summary>
    public void Compacted(long now, long heapBytes)
    {
        _ran = true;
        _lastRun = now;
        _lowWater = heapBytes;
    }
}
