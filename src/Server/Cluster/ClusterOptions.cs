using Microsoft.Extensions.Options;

namespace Collab.Server.Cluster;

/// <summary>
/// Cluster mode (configuration section "Cluster"): several nodes share the documents through NATS, with one owner
/// (sequencer) per document at a time, chosen by rendezvous hashing and held by a lease in PostgreSQL. See docs/CLUSTER.md.
/// The node's identity is <see cref="NodeOptions.NodeId"/>; it must be unique and stable per process in the cluster.
/// </summary>
public sealed class ClusterOptions
{
    /// <summary>Configuration section name (<c>Cluster</c>).</summary>
    public const string Section = "Cluster";

    /// <summary>Run as a cluster node. Requires the PostgreSQL store. Default false: a single node, nothing leaves the process.</summary>
    public bool Enabled { get; set; }

    /// <summary>The NATS server(s), comma-separated (<c>nats://127.0.0.1:4222</c>).</summary>
    public string NatsUrl { get; set; } = "nats://127.0.0.1:4222";

    /// <summary>
    /// How long a document lease lasts without renewal. After the owner dies, another node takes the document over once the
    /// lease has expired, so this bounds the failover time together with <see cref="NodeExpiry"/>. Default 4 s.
    /// </summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(4);

    /// <summary>How often the owner renews all its leases (one statement). Default 1 s.</summary>
    public TimeSpan RenewInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The owner stops sequencing a document this long before its lease could expire when renewals failed (measured on the
    /// node's monotonic clock from the moment the last successful renewal was sent). Covers clock-rate drift and the time
    /// a write needs to reach the database. Default 1 s.
    /// </summary>
    public TimeSpan LeaseSafetyMargin { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How often a node announces itself on <c>collab.v1.nodes.heartbeat</c>. Default 500 ms.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>A node not heard from for this long is considered gone: its documents move to the others. Default 2 s.</summary>
    public TimeSpan NodeExpiry { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// A node that joined must have been heard from for this long before documents move to it, so a flapping node does not
    /// make documents bounce. Default 2 s.
    /// </summary>
    public TimeSpan JoinGracePeriod { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How often ownership is reconciled with the membership (take over orphaned documents, hand off to joiners). Default 250 ms.</summary>
    public TimeSpan ReconcileInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Budget for forwarding one submit to the owner, including finding or electing an owner. A submit that cannot be
    /// placed in time is answered with a retryable UNAVAILABLE error (the client resends; dedupe makes that safe). Default 3 s.
    /// </summary>
    public TimeSpan ForwardTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// While a document is active its owner publishes its committed version this often (a tick), so a replica that lost
    /// the last batch (core NATS is at-most-once) notices and fills the gap. Default 1 s.
    /// </summary>
    public TimeSpan VersionTickInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Ticks keep being published for this many intervals after the document's last commit. Default 3.</summary>
    public int VersionTicksAfterActivity { get; set; } = 3;

    /// <summary>
    /// A forwarded op acknowledged by the owner that has not arrived on the document's stream after this long is fetched
    /// from the op log (the batch carrying it was lost). Default 250 ms.
    /// </summary>
    public TimeSpan ReplicaGapGrace { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Each node republishes its clients' presence this often (unchanged entries reach no client), so a lost update is
    /// repaired and a receiver can tell a lost clear from a quiet client. Default 10 s.
    /// </summary>
    public TimeSpan PresenceRefreshInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A remote client's presence not republished by its node for this long is dropped (its clear was lost: core NATS is
    /// at most once). Must exceed twice <see cref="PresenceRefreshInterval"/>, so one lost refresh does not drop it. Default 30 s.
    /// </summary>
    public TimeSpan PresenceExpiry { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Committed batches waiting to be published to NATS before further ones are dropped (replicas refill gaps). Default 65536.</summary>
    public int MaxPublishQueue { get; set; } = 65_536;

    /// <summary>Messages buffered per NATS subscription (NATS.Client.Core drops the newest beyond it; replicas refill gaps). Default 16384.</summary>
    public int SubscriptionPendingMessages { get; set; } = 16_384;

    /// <summary>Checks every setting and throws one <see cref="OptionsValidationException"/> listing all problems.</summary>
    public void Validate()
    {
        var errors = new SettingErrors(Section, typeof(ClusterOptions));
        if (Enabled && string.IsNullOrWhiteSpace(NatsUrl))
        {
            errors.Add(nameof(NatsUrl), "is required in cluster mode.");
        }

        errors.Positive(LeaseDuration, nameof(LeaseDuration));
        errors.Positive(RenewInterval, nameof(RenewInterval));
        errors.Positive(HeartbeatInterval, nameof(HeartbeatInterval));
        errors.Positive(NodeExpiry, nameof(NodeExpiry));
        errors.Positive(ReconcileInterval, nameof(ReconcileInterval));
        errors.Positive(ForwardTimeout, nameof(ForwardTimeout));
        errors.Positive(VersionTickInterval, nameof(VersionTickInterval));
        errors.Positive(ReplicaGapGrace, nameof(ReplicaGapGrace));
        errors.Positive(PresenceRefreshInterval, nameof(PresenceRefreshInterval));
        if (PresenceExpiry <= PresenceRefreshInterval * 2)
        {
            errors.Add(nameof(PresenceExpiry), $"must be more than twice {nameof(PresenceRefreshInterval)} ({PresenceRefreshInterval}) (was {PresenceExpiry}).");
        }

        if (JoinGracePeriod < TimeSpan.Zero)
        {
            errors.Add(nameof(JoinGracePeriod), $"must not be negative (was {JoinGracePeriod}).");
        }

        if (LeaseSafetyMargin < TimeSpan.Zero)
        {
            errors.Add(nameof(LeaseSafetyMargin), $"must not be negative (was {LeaseSafetyMargin}).");
        }

        // A lease must survive at least one failed renewal, and the owner must stop before it can expire.
        if (RenewInterval * 2 + LeaseSafetyMargin > LeaseDuration)
        {
            errors.Add(nameof(LeaseDuration), $"must be at least twice {nameof(RenewInterval)} ({RenewInterval}) plus {nameof(LeaseSafetyMargin)} ({LeaseSafetyMargin}) (was {LeaseDuration}).");
        }

        if (NodeExpiry <= HeartbeatInterval * 2)
        {
            errors.Add(nameof(NodeExpiry), $"must be more than twice {nameof(HeartbeatInterval)} ({HeartbeatInterval}) (was {NodeExpiry}).");
        }

        if (VersionTicksAfterActivity < 1)
        {
            errors.Add(nameof(VersionTicksAfterActivity), $"must be at least 1 (was {VersionTicksAfterActivity}).");
        }

        if (MaxPublishQueue < 1)
        {
            errors.Add(nameof(MaxPublishQueue), $"must be positive (was {MaxPublishQueue}).");
        }

        if (SubscriptionPendingMessages < 16)
        {
            errors.Add(nameof(SubscriptionPendingMessages), $"must be at least 16 (was {SubscriptionPendingMessages}).");
        }

        errors.ThrowIfAny();
    }
}
