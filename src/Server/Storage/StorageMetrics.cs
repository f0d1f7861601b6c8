using Prometheus;

namespace Collab.Server.Storage;

/// <summary>
/// Prometheus metrics of the group-commit stage (prefix collab_storage_). Declared like every metrics class of the server
/// (one class per concern, names, help and labels in one place; docs/OPERATIONS.md, "Metrics in the code"), with one
/// difference: an instance per stage and registry (the server's one stage uses the process-wide registry), because its
/// series describe one stage (collab_storage_ready is that stage's health) and a process may hold several stages (the
/// storage tests, the benchmarks), each of which must be observable alone.
/// </summary>
public sealed class StorageMetrics
{
    /// <summary>Creates (or reuses) the storage metrics in <paramref name="registry"/> (default: <see cref="Metrics.DefaultRegistry"/>).</summary>
    public StorageMetrics(CollectorRegistry? registry = null)
    {
        var factory = Metrics.WithCustomRegistry(registry ?? Metrics.DefaultRegistry);
        Ready = factory.CreateGauge("collab_storage_ready", "1 while commits to the op store succeed, 0 while they fail and are being retried.");
        Batches = factory.CreateCounter("collab_storage_batches_total", "Batches committed to the op store.");
        Ops = factory.CreateCounter("collab_storage_ops_total", "Ops committed to the op store.");
        CommitSeconds = factory.CreateHistogram(
            "collab_storage_commit_seconds",
            "Time to commit one batch (one successful store append, fsync included).",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.00025, 2, 16) });
        BatchOps = factory.CreateHistogram(
            "collab_storage_batch_ops",
            "Ops per committed batch.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(1, 4, 10) });
        Failures = factory.CreateCounter("collab_storage_commit_failures_total", "Failed commit attempts (retried with back-off).");
        Conflicts = factory.CreateCounter("collab_storage_conflicts_total", "Commit calls failed with a version conflict (fenced documents).");
        QueuedOps = factory.CreateGauge("collab_storage_queued_ops", "Ops waiting for the next batch.");
        Ready.Set(1);
    }

    /// <summary>collab_storage_ready.</summary>
    public Gauge Ready { get; }

    /// <summary>collab_storage_batches_total.</summary>
    public Counter Batches { get; }

    /// <summary>collab_storage_ops_total.</summary>
    public Counter Ops { get; }

    /// <summary>collab_storage_commit_seconds.</summary>
    public Histogram CommitSeconds { get; }

    /// <summary>collab_storage_batch_ops.</summary>
    public Histogram BatchOps { get; }

    /// <summary>collab_storage_commit_failures_total.</summary>
    public Counter Failures { get; }

    /// <summary>collab_storage_conflicts_total.</summary>
    public Counter Conflicts { get; }

    /// <summary>collab_storage_queued_ops.</summary>
    public Gauge QueuedOps { get; }
}
