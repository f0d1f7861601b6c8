using Prometheus;

namespace Collab.Server.Hosting;

/// <summary>The quiet-time compaction's metrics (<see cref="QuietCompactionService"/>; docs/OPERATIONS.md, "Process and runtime").</summary>
internal static class MemoryMetrics
{
    public static readonly Counter Compactions = Metrics.CreateCounter(
        "collab_gc_quiet_compactions_total",
        "Blocking compacting full collections run because the managed heap had grown and the server was quiet (Memory:CompactWhenQuiet).");

    public static readonly Histogram PauseSeconds = Metrics.CreateHistogram(
        "collab_gc_quiet_compaction_pause_seconds",
        "How long each quiet-time compaction blocked the process (every thread is paused for it).",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 14) }); // 1 ms .. 8.2 s

    public static readonly Counter ReleasedBytes = Metrics.CreateCounter(
        "collab_gc_quiet_compaction_released_bytes_total",
        "Bytes of GC heap committed memory given back by the quiet-time compactions (committed before minus after).");
}
