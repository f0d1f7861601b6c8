using Prometheus;

namespace Collab.Server.Api;

/// <summary>Prometheus metrics of the HTTP API's history reads (prefix collab_api_).</summary>
internal static class ApiMetrics
{
    public static readonly Counter HistoryReads = Metrics.CreateCounter(
        "collab_api_history_reads_total", "Reads of a past document version by the HTTP API, by the store that served them.", "source");

    public static readonly Counter.Child HistoryReadsFromPrimary = HistoryReads.WithLabels("primary");
    public static readonly Counter.Child HistoryReadsFromReplica = HistoryReads.WithLabels("replica");

    public static readonly Counter ReplicaFailures = Metrics.CreateCounter(
        "collab_api_replica_failures_total", "Reads of a past version that the read replica could not serve (unreachable or failing), answered from the primary.");

    public static readonly Histogram HistoryReplayedOps = Metrics.CreateHistogram(
        "collab_api_history_replayed_ops", "Ops replayed on a snapshot to read one past version.",
        new HistogramConfiguration { Buckets = [0, 10, 100, 500, 1_000, 2_000, 5_000, 10_000] });
}
