namespace Collab.Engine.Sequencing;

/// <summary>
/// The committed state of a document as seen from inside <see cref="DocumentSequencer{TSnapshot, TOp}.RunExclusiveAsync{T}"/>:
/// consistent with the <see cref="ISequencerListener{TSnapshot, TOp}.OnCommitted"/> calls (every op up to
/// <see cref="Version"/> has been published, none after it). A ref struct, so it cannot outlive the action.
/// </summary>
public readonly ref struct CommittedView<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    private readonly DocumentSequencer<TSnapshot, TOp> _owner;

    internal CommittedView(DocumentSequencer<TSnapshot, TOp> owner) => _owner = owner;

    /// <summary>The document this view reads.</summary>
    public string DocId => _owner.DocId;

    /// <summary>The committed version: the last version published to the listener.</summary>
    public long Version => _owner.CommittedVersionOnWorker;

    /// <summary>The document at <see cref="Version"/> (an immutable value; safe to keep and use after the action).</summary>
    public TSnapshot Snapshot => _owner.CommittedSnapshot;

    /// <summary>The sequencer's state; anything but <see cref="SequencerState.Active"/> means no more OnCommitted calls will come.</summary>
    public SequencerState State => _owner.State;

    /// <summary>The oldest version v for which <see cref="TryGetOpsAfter"/>(v) succeeds.</summary>
    public long OldestAvailableVersion => Math.Min(_owner.Window.FirstVersion - 1, Version);

    /// <summary>
    /// The committed ops with versions in (<paramref name="fromVersion"/>, <see cref="Version"/>], oldest first, copied
    /// (the caller may keep them). False when the in-memory window no longer holds them (read the op store instead) or
    /// <paramref name="fromVersion"/> is newer than <see cref="Version"/>.
    /// </summary>
    public bool TryGetOpsAfter(long fromVersion, out IReadOnlyList<OpRecord> ops)
    {
        long version = Version;
        HistoryWindow<TOp> window = _owner.Window;
        if (fromVersion > version || fromVersion < window.FirstVersion - 1)
        {
            ops = [];
            return false;
        }

        var result = new OpRecord[version - fromVersion];
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = window[fromVersion + 1 + i].Record;
        }

        ops = result;
        return true;
    }

    /// <summary>The committed op (as applied) that made <paramref name="version"/>; false when the in-memory window no longer holds it.</summary>
    public bool TryGetOp(long version, out TOp op)
    {
        HistoryWindow<TOp> window = _owner.Window;
        if (version < window.FirstVersion || version > Version)
        {
            op = default!;
            return false;
        }

        op = window[version].Op;
        return true;
    }

    /// <summary>
    /// Moves a cursor made against <paramref name="baseVersion"/> through the committed ops after it, one by one, to
    /// <see cref="Version"/>. Ops by <paramref name="ownerClientId"/> count as the cursor owner's own (the cursor goes
    /// after their inserts). False when the ops are no longer in memory or the base version is newer than <see cref="Version"/>.
    /// </summary>
    public bool TryTransformCursor(long baseVersion, int cursor, string? ownerClientId, out int transformed)
    {
        transformed = cursor;
        if (!Covers(baseVersion))
        {
            return false;
        }

        HistoryWindow<TOp> window = _owner.Window;
        IOtType<TSnapshot, TOp> type = _owner.Type;
        for (long v = baseVersion + 1; v <= Version; v++)
        {
            ref readonly HistoryWindow<TOp>.Entry entry = ref window[v];
            transformed = type.TransformCursor(transformed, entry.Op, IsOwn(entry.Record, ownerClientId));
        }

        return true;
    }

    /// <summary>Like <see cref="TryTransformCursor"/> for a selection (both ends moved through the same ops).</summary>
    public bool TryTransformSelection(long baseVersion, int anchor, int head, string? ownerClientId, out int newAnchor, out int newHead)
    {
        newAnchor = anchor;
        newHead = head;
        if (!Covers(baseVersion))
        {
            return false;
        }

        HistoryWindow<TOp> window = _owner.Window;
        IOtType<TSnapshot, TOp> type = _owner.Type;
        for (long v = baseVersion + 1; v <= Version; v++)
        {
            ref readonly HistoryWindow<TOp>.Entry entry = ref window[v];
            bool own = IsOwn(entry.Record, ownerClientId);
            newAnchor = type.TransformCursor(newAnchor, entry.Op, own);
            newHead = type.TransformCursor(newHead, entry.Op, own);
        }

        return true;
    }

    /// <summary>The dedupe state at <see cref="Version"/>, encoded for <see cref="SnapshotRecord.Meta"/>.</summary>
    public byte[] EncodeDedupeState() => _owner.Dedupe.Encode();

    /// <summary>
    /// A snapshot of the committed document for the snapshot store: the text at <see cref="Version"/> and the dedupe state.
    /// Converts the whole document to text on the worker; for very large documents take <see cref="Snapshot"/> and
    /// <see cref="EncodeDedupeState"/> here and call <see cref="IOtType{TSnapshot, TOp}.ToText"/> outside.
    /// </summary>
    public SnapshotRecord CreateSnapshotRecord() =>
        new(DocId, Version, _owner.Type.ToText(Snapshot), EncodeDedupeState(), _owner.NowMilliseconds());

    private bool Covers(long baseVersion) => baseVersion <= Version && baseVersion >= _owner.Window.FirstVersion - 1;

    private static bool IsOwn(in OpRecord record, string? ownerClientId) =>
        ownerClientId is not null && string.Equals(record.ClientId, ownerClientId, StringComparison.Ordinal);
}
