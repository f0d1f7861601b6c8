namespace Collab.Engine.Sequencing;

/// <summary>
/// Limits and behaviour of <see cref="DocumentSequencer{TSnapshot, TOp}"/>s; one instance is usually shared by every
/// document. Sequencers read it while they run: configure it fully before creating the first one.
/// </summary>
public sealed class SequencerOptions
{
    /// <summary>
    /// Submissions accepted but not yet completed (queued, being sequenced, or waiting for their commit).
    /// Past this the caller gets <see cref="SubmitStatus.Overloaded"/> at once: this is the back-pressure
    /// that keeps a stalled durability stage from growing memory without bound.
    /// </summary>
    public int MaxPendingSubmissions { get; set; } = 4096;

    /// <summary>Most committed ops kept in memory for transforming stale submissions and catching up subscribers.</summary>
    public int HistoryMaxOps { get; set; } = 1024;

    /// <summary>Most bytes (<see cref="IOtType{TSnapshot, TOp}.SizeOf"/>) of committed ops kept in memory.</summary>
    public long HistoryMaxBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// How far behind the current version a submission may be when its base is older than the in-memory
    /// window and the ops must be read from <see cref="IHistorySource"/>; older bases get
    /// <see cref="SubmitStatus.VersionTooOld"/> without a read (bounds the transform work per submission).
    /// </summary>
    public int MaxHistoryReadOps { get; set; } = 10_000;

    /// <summary>
    /// How many ops below the in-memory window a resend of an older client seq (<see cref="DedupeDecision.Older"/>,
    /// <see cref="DedupeDecision.Expired"/>) may be looked up across in the op log (<see cref="IHistorySource.FindOpAsync"/>);
    /// a resend based further back is answered as if that part of the log were pruned. Bounds the work one submission can cause.
    /// </summary>
    public int MaxDedupeLookupOps { get; set; } = 100_000;

    /// <summary>Largest document, in the type's units (code points for text). An op that grows the document past it gets <see cref="SubmitStatus.DocTooLarge"/>.</summary>
    public long MaxDocumentLength { get; set; } = 16 * 1024 * 1024;

    /// <summary>Most clients whose last (client seq, version) is remembered for deduplication; the least recently sequenced client is forgotten first.</summary>
    public int DedupeMaxClients { get; set; } = 1000;

    /// <summary>
    /// A client whose last op is more than this many versions old is forgotten. A client that stayed away
    /// longer than that (or was pushed out by <see cref="DedupeMaxClients"/>) and resends an op it may have
    /// had sequenced has it looked up in the history; only when the op log no longer holds the ops after its base does it
    /// get <see cref="SubmitStatus.DedupeExpired"/> and must resync.
    /// </summary>
    public long DedupeRetentionVersions { get; set; } = 100_000;

    /// <summary>Most mailbox items one worker turn processes before it yields its thread-pool thread to other documents.</summary>
    public int MaxItemsPerTurn { get; set; } = 256;

    /// <summary>
    /// When true (the default) SubmitAsync continuations run on the thread pool, never on the sequencer's worker.
    /// False runs them inline on the worker: faster, but a slow continuation then delays the whole document.
    /// </summary>
    public bool RunContinuationsAsynchronously { get; set; } = true;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a value outside its valid range.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPendingSubmissions, 1, nameof(MaxPendingSubmissions));
        ArgumentOutOfRangeException.ThrowIfLessThan(HistoryMaxOps, 0, nameof(HistoryMaxOps));
        ArgumentOutOfRangeException.ThrowIfLessThan(HistoryMaxBytes, 0, nameof(HistoryMaxBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxHistoryReadOps, 0, nameof(MaxHistoryReadOps));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxDedupeLookupOps, 0, nameof(MaxDedupeLookupOps));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxDocumentLength, 0, nameof(MaxDocumentLength));
        ArgumentOutOfRangeException.ThrowIfLessThan(DedupeMaxClients, 1, nameof(DedupeMaxClients));
        ArgumentOutOfRangeException.ThrowIfLessThan(DedupeRetentionVersions, 1, nameof(DedupeRetentionVersions));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxItemsPerTurn, 1, nameof(MaxItemsPerTurn));
    }
}
