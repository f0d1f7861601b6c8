namespace Collab.Server.Cluster;

/// <summary>Source-generated log messages of cluster mode, with stable event ids (3000–3099).</summary>
internal sealed partial class ClusterLog(ILogger logger)
{
    private readonly ILogger _logger = logger;

    /// <summary>The logger behind these messages, for <see cref="FireAndForget"/>.</summary>
    public ILogger Logger => _logger;

    [LoggerMessage(3000, LogLevel.Information, "Cluster node {NodeId} joining through NATS at {NatsUrl}")]
    public partial void Starting(string nodeId, string natsUrl);

    [LoggerMessage(3001, LogLevel.Information, "NATS connection open")]
    public partial void NatsConnected();

    [LoggerMessage(3002, LogLevel.Warning, "NATS connection lost ({Reason}); sessions stay open, the node reconnects by itself")]
    public partial void NatsDisconnected(string reason);

    [LoggerMessage(3003, LogLevel.Information, "Node {NodeId} joined the cluster")]
    public partial void NodeJoined(string nodeId);

    [LoggerMessage(3004, LogLevel.Information, "Node {NodeId} left the cluster ({Reason})")]
    public partial void NodeLeft(string nodeId, string reason);

    [LoggerMessage(3005, LogLevel.Information, "Document {DocId}: now owned here (epoch {Epoch}, version {Version})")]
    public partial void Owning(string docId, long epoch, long version);

    [LoggerMessage(3006, LogLevel.Information, "Document {DocId}: stopped owning it (epoch {Epoch}, version {Version}): {Reason}")]
    public partial void Disowned(string docId, long epoch, long version, string reason);

    [LoggerMessage(3007, LogLevel.Warning, "Document {DocId}: lease epoch {Epoch} lost; sequencing stopped here")]
    public partial void LeaseLost(string docId, long epoch);

    [LoggerMessage(3008, LogLevel.Warning, "Lease renewal failed; leases stop {Margin} before they could expire unless a renewal succeeds")]
    public partial void RenewFailed(TimeSpan margin, Exception exception);

    [LoggerMessage(3009, LogLevel.Debug, "Document {DocId}: filled gap after version {From} up to {To} from the op log")]
    public partial void GapFilled(string docId, long from, long to);

    [LoggerMessage(3010, LogLevel.Warning, "Document {DocId}: the replica cannot follow the owner; the document is reloaded and its subscribers resumed")]
    public partial void ReplicaFailed(string docId, Exception exception);

    [LoggerMessage(3011, LogLevel.Warning, "Document {DocId}: taking ownership failed")]
    public partial void PromotionFailed(string docId, Exception exception);

    [LoggerMessage(3012, LogLevel.Warning, "Document {DocId}: could not serve a forwarded submit")]
    public partial void ServeFailed(string docId, Exception exception);

    [LoggerMessage(3013, LogLevel.Warning, "Cluster background task {Task} failed; it continues")]
    public partial void LoopFailed(string task, Exception exception);

    [LoggerMessage(3014, LogLevel.Debug, "Document {DocId}: open request from {Origin} could not be served")]
    public partial void OpenFailed(string docId, string origin, Exception exception);

    [LoggerMessage(3015, LogLevel.Information, "Node {NodeId} leaving the cluster: announcing and handing its documents off")]
    public partial void Leaving(string nodeId);
}
