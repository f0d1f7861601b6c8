using Prometheus;

namespace Collab.Server.Cluster;

/// <summary>Prometheus metrics of cluster mode (prefix collab_cluster_).</summary>
internal static class ClusterMetrics
{
    public static readonly Gauge NatsConnected = Metrics.CreateGauge("collab_cluster_nats_connected", "1 while the node's NATS connection is open.");
    public static readonly Gauge LiveNodes = Metrics.CreateGauge("collab_cluster_live_nodes", "Nodes this node currently sees alive (itself included).");
    public static readonly Gauge OwnedDocuments = Metrics.CreateGauge("collab_cluster_owned_documents", "Documents this node sequences (holds the lease of).");
    public static readonly Gauge ReplicaDocuments = Metrics.CreateGauge("collab_cluster_replica_documents", "Documents this node follows as a replica of another node.");

    public static readonly Counter ForwardedSubmits = Metrics.CreateCounter(
        "collab_cluster_forwarded_submits_total", "Client submits forwarded to the owner, by outcome.", new CounterConfiguration { LabelNames = ["outcome"] });

    public static readonly Histogram ForwardSeconds = Metrics.CreateHistogram(
        "collab_cluster_forward_seconds", "Time from forwarding a submit to the owner's answer (sequencing and commit included).",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0001, 2, 16) });

    public static readonly Counter ServedSubmits = Metrics.CreateCounter("collab_cluster_served_submits_total", "Forwarded submits this node sequenced as owner.");
    public static readonly Counter PublishedBatches = Metrics.CreateCounter("collab_cluster_published_batches_total", "Committed batches published to the document streams.");
    public static readonly Counter PublishDropped = Metrics.CreateCounter("collab_cluster_publish_dropped_total", "Batches and ticks not published (NATS down or queue full); replicas refill the gap from the op log.");
    public static readonly Counter PublishedPresence = Metrics.CreateCounter("collab_cluster_presence_published_total", "Presence changes of local clients (and sync requests) published to the other nodes.");
    public static readonly Counter PresenceExpired = Metrics.CreateCounter("collab_cluster_presence_expired_total", "Remote clients' presence dropped because their node stopped republishing it (a clear that was lost).");
    public static readonly Counter PresenceDropped = Metrics.CreateCounter("collab_cluster_presence_dropped_total", "Presence messages not published (NATS down or queue full); the client's next update repairs it.");
    public static readonly Counter ReplicatedOps = Metrics.CreateCounter("collab_cluster_replicated_ops_total", "Ops applied to replicas from the owners' streams or the op log.");
    public static readonly Counter NatsDropped = Metrics.CreateCounter("collab_cluster_nats_dropped_total", "Messages NATS.Client.Core dropped because a subscription's buffer was full (the newest are dropped).");
    public static readonly Counter GapFills = Metrics.CreateCounter("collab_cluster_gap_fills_total", "Version gaps a replica filled from the op log (lost or dropped messages).");
    public static readonly Counter GapFillOps = Metrics.CreateCounter("collab_cluster_gap_fill_ops_total", "Ops read from the op log to fill replica gaps.");
    public static readonly Counter LeaseRenewFailures = Metrics.CreateCounter("collab_cluster_lease_renew_failures_total", "Lease renewal rounds that failed (database unreachable).");
    public static readonly Counter LeasesLost = Metrics.CreateCounter("collab_cluster_leases_lost_total", "Leases lost (not renewed in time, or taken over): the document stopped sequencing here.");

    public static readonly Counter OwnershipChanges = Metrics.CreateCounter(
        "collab_cluster_ownership_changes_total", "Documents this node started or stopped owning, by reason.", new CounterConfiguration { LabelNames = ["change"] });
}
