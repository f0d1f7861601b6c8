namespace Collab.Engine.Sequencing;

/// <summary>
/// Receives a document's committed ops in version order (the session layer: broadcast to subscribers).
/// Every call happens on the sequencer's worker, one at a time, serialized with
/// <see cref="DocumentSequencer{TSnapshot, TOp}.RunExclusiveAsync{T}"/> actions.
/// </summary>
/// <remarks>
/// Implementations must be quick and must not block (they hold up the document) and must not throw: an exception means
/// subscribers may have missed ops, so the sequencer stops (<see cref="SequencerState.Faulted"/>) and
/// <see cref="OnFaulted"/> is called. They must not synchronously wait for the sequencer (RunExclusiveAsync, DisposeAsync):
/// that deadlocks the worker.
/// </remarks>
public interface ISequencerListener<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    /// <summary>
    /// Consecutive ops that just became durable, with no gap after the previous batch. Called before the batch's
    /// SubmitAsync calls complete, so a broadcast queued here precedes the acknowledgements. The spans are only valid
    /// during the call; the <see cref="OpRecord"/>s and ops themselves are immutable and may be kept.
    /// </summary>
    void OnCommitted(in CommittedBatch<TSnapshot, TOp> batch);

    /// <summary>Another sequencer owns the document; this one has stopped for good. Called at most once; the owner should reload the document.</summary>
    void OnFenced(VersionConflictException conflict);

    /// <summary>The sequencer stopped for another reason (the durability stage failed outside its contract, or the listener threw). Called at most once; the owner should reload the document.</summary>
    void OnFaulted(Exception error);
}

/// <summary>Consecutive committed ops of one document, delivered by <see cref="ISequencerListener{TSnapshot, TOp}.OnCommitted"/>.</summary>
public readonly ref struct CommittedBatch<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    internal CommittedBatch(string docId, ReadOnlySpan<OpRecord> records, ReadOnlySpan<TOp> ops, TSnapshot snapshot, ReadOnlySpan<OpTimestamps> timestamps = default)
    {
        DocId = docId;
        Records = records;
        Ops = ops;
        Timestamps = timestamps;
        Snapshot = snapshot;
    }

    public string DocId { get; }

    /// <summary>The ops as encoded once by the sequencer: the bytes that were stored, ready to frame for the wire.</summary>
    public ReadOnlySpan<OpRecord> Records { get; }

    /// <summary>The same ops decoded (as applied), index for index with <see cref="Records"/>.</summary>
    public ReadOnlySpan<TOp> Ops { get; }

    /// <summary>
    /// When each op was received, sequenced and committed, index for index with <see cref="Records"/> (an entry is unset for an
    /// op submitted without a receive timestamp, e.g. replayed or forwarded from another node).
    /// </summary>
    public ReadOnlySpan<OpTimestamps> Timestamps { get; }

    /// <summary>The version of the first op in the batch.</summary>
    public long FirstVersion => Records[0].Version;

    /// <summary>The new committed version (the last op's).</summary>
    public long Version => Records[^1].Version;

    /// <summary>The document at <see cref="Version"/>.</summary>
    public TSnapshot Snapshot { get; }
}
