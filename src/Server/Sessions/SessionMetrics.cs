using Prometheus;

namespace Collab.Server.Sessions;

/// <summary>Prometheus metrics of the session layer (prefix collab_).</summary>
internal static class SessionMetrics
{
    static SessionMetrics()
    {
        // Exported at 0 from the start, so an alert on an increase (deploy/prometheus: CollabDocumentFaults) has a
        // series to watch before the first fault.
        DocumentFaults.WithLabels("sequencer");
        DocumentFaults.WithLabels("replica");
    }

    public static readonly Gauge Sessions = Metrics.CreateGauge("collab_sessions", "Open protocol sessions (after Hello).");
    public static readonly Counter SessionsReplaced = Metrics.CreateCounter(
        "collab_sessions_replaced_total",
        "Sessions closed with 4009 because another connection said Hello with their client id (where: local = on this node, remote = on another node of the cluster).",
        new CounterConfiguration { LabelNames = ["where"] });

    public static readonly Gauge Subscriptions = Metrics.CreateGauge("collab_subscriptions", "Document subscriptions across all sessions.");
    public static readonly Gauge DocumentsOpen = Metrics.CreateGauge("collab_documents_open", "Documents open (sequencer loaded) on this node.");
    public static readonly Histogram DocumentLoadSeconds = Metrics.CreateHistogram(
        "collab_document_load_seconds", "Time to load a document from the store.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 14) });

    public static readonly Counter MessagesReceived = Metrics.CreateCounter(
        "collab_messages_received_total", "Client messages received, by kind.", new CounterConfiguration { LabelNames = ["kind"] });

    public static readonly Counter OpsSubmitted = Metrics.CreateCounter("collab_ops_submitted_total", "Ops submitted by clients.");
    public static readonly Counter OpsCommitted = Metrics.CreateCounter("collab_ops_committed_total", "Ops sequenced and durably committed.");
    public static readonly Counter SubmitSlotWaits = Metrics.CreateCounter(
        "collab_submit_slot_waits_total", "Times a connection's reading paused because it had Documents:MaxSubmitsInFlightPerConnection submits in flight.");
    public static readonly Counter DuplicateAcks = Metrics.CreateCounter("collab_ops_duplicate_total", "Resent ops recognised as already sequenced.");
    public static readonly Counter BroadcastFrames = Metrics.CreateCounter("collab_broadcast_frames_total", "Op frames encoded once and shared by all subscribers of a document.");
    public static readonly Counter DocumentFaults = Metrics.CreateCounter(
        "collab_document_faults_total",
        "Documents that stopped on an unexpected fault (cause: sequencer = the sequencer, its listener or the durability stage failed; replica = a replica could not follow the owner); each is reloaded from the op log and its subscribers resumed.",
        new CounterConfiguration { LabelNames = ["cause"] });

    public static readonly Counter SubscriptionsResumed = Metrics.CreateCounter(
        "collab_subscriptions_resumed_total",
        "Subscriptions of a failed or fenced document moved to its reload (outcome: resumed = in place, the client saw one continuous stream; reconnected = the client was told to reconnect instead).",
        new CounterConfiguration { LabelNames = ["outcome"] });

    public static readonly Counter OpenTimeouts = Metrics.CreateCounter(
        "collab_document_open_timeouts_total",
        "Subscribes answered UNAVAILABLE because their document did not open within Documents:OpenTimeout (the store or the cluster was unreachable).");

    public static readonly Counter SnapshotsWritten = Metrics.CreateCounter("collab_snapshots_written_total", "Document snapshots written.");

    public static readonly Counter Errors = Metrics.CreateCounter(
        "collab_errors_sent_total", "Error messages sent to clients, by code.", new CounterConfiguration { LabelNames = ["code"] });

    public static readonly Histogram SubmitToAckSeconds = Metrics.CreateHistogram(
        "collab_submit_ack_seconds", "Server-side time from receiving a submit to its acknowledgement (sequencing + durable commit).",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.00005, 2, 18) });
}
