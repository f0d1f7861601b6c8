using System.Diagnostics;
using Collab.Engine.Sequencing;
using Prometheus;

namespace Collab.Server.Hosting;

/// <summary>
/// Where a submit's time goes inside the server, for attributing a client's p99 (docs/OPERATIONS.md, "Attributing
/// submit latency"). Every op submitted on a WebSocket connection carries <see cref="OpTimestamps"/> from the session's
/// read loop through the sequencer; the transport adds the moment its Ack frame is written and observes the four
/// intervals here, after the flush of the batch the Ack went out in (not on the sequencer's worker).
/// <list type="bullet">
/// <item><c>sequence</c>: received (the Submit dispatched by the session) → sequenced: waiting for the document's
/// worker (a thread-pool hop, behind other submits of the document), transforming and applying.</item>
/// <item><c>commit</c>: sequenced → committed: waiting for the group commit to form a batch, the store's append and
/// its fsync, and the hand-off to the completion loop.</item>
/// <item><c>ack</c>: committed → Ack written: the completion's trip back to the document's worker, publishing, the
/// connection's outbound queue and its drain into the socket pipe (the kernel send follows on Kestrel's socket
/// thread).</item>
/// </list>
/// The three add up, op by op, to <c>collab_submit_ack_written_seconds</c>. Observing costs four histogram updates per
/// acknowledged op and allocates nothing. Forwarded submits in a cluster (sequenced on another node, whose clock
/// differs) and ops from the HTTP API are not stamped and not counted.
/// </summary>
internal static class LatencyMetrics
{
    private static readonly double[] Buckets = Histogram.ExponentialBuckets(0.00001, 2, 20); // 10 µs .. 5.2 s

    public static readonly Histogram StageSeconds = Metrics.CreateHistogram(
        "collab_submit_stage_seconds",
        "Time a submitted op spent in each stage inside the server (stage: sequence = received to sequenced, commit = sequenced to durably committed, ack = committed to its Ack written to the socket); the stages of an op add up to collab_submit_ack_written_seconds.",
        new HistogramConfiguration { LabelNames = ["stage"], Buckets = Buckets });

    public static readonly Histogram AckWrittenSeconds = Metrics.CreateHistogram(
        "collab_submit_ack_written_seconds",
        "Time from receiving a submit to writing its Ack to the socket, inside the server (the sum of its collab_submit_stage_seconds).",
        new HistogramConfiguration { Buckets = Buckets });

    // Label children resolved once: an observation is then a bucket search and two atomic adds, no lookup.
    private static readonly Histogram.Child Sequence = StageSeconds.WithLabels("sequence");
    private static readonly Histogram.Child Commit = StageSeconds.WithLabels("commit");
    private static readonly Histogram.Child Ack = StageSeconds.WithLabels("ack");

    private static readonly double SecondsPerTick = 1.0 / Stopwatch.Frequency;

    /// <summary>Observes the Acks written at <paramref name="writtenAt"/> (a Stopwatch timestamp); unstamped entries are skipped.</summary>
    public static void ObserveWritten(ReadOnlySpan<OpTimestamps> acks, long writtenAt)
    {
        foreach (ref readonly OpTimestamps op in acks)
        {
            ObserveWritten(op, writtenAt);
        }
    }

    /// <summary>Observes one Ack written at <paramref name="writtenAt"/>; nothing for an unstamped op.</summary>
    public static void ObserveWritten(in OpTimestamps op, long writtenAt)
    {
        if (!op.IsSet || op.Sequenced == 0 || op.Committed == 0)
        {
            return;
        }

        Sequence.Observe((op.Sequenced - op.Received) * SecondsPerTick);
        Commit.Observe((op.Committed - op.Sequenced) * SecondsPerTick);
        Ack.Observe((writtenAt - op.Committed) * SecondsPerTick);
        AckWrittenSeconds.Observe((writtenAt - op.Received) * SecondsPerTick);
    }
}
