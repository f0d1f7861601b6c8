using Prometheus;

namespace Collab.Server.Storage;

/// <summary>Prometheus metrics of retention (<see cref="RetentionService"/>; prefix collab_storage_).</summary>
internal static class RetentionMetrics
{
    public static readonly Counter PrunedOps = Metrics.CreateCounter("collab_storage_pruned_ops_total", "Ops removed from the op log by retention.");
    public static readonly Counter PurgedDocuments = Metrics.CreateCounter("collab_storage_purged_documents_total", "Deleted documents whose data retention removed.");
}
