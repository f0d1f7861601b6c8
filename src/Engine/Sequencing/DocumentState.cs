namespace Collab.Engine.Sequencing;

/// <summary>
/// What a <see cref="DocumentSequencer{TSnapshot, TOp}"/> starts from: the document at <see cref="Version"/>, the most recent
/// committed ops (seeding the in-memory history window) and the dedupe state. Build it with
/// <see cref="DocumentState.Load"/> from storage or <see cref="DocumentState.Empty"/> for a new document. The sequencer takes
/// ownership of <see cref="Dedupe"/>: give each sequencer its own state.
/// </summary>
public sealed class DocumentState<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    /// <param name="snapshot">The document at <paramref name="version"/>.</param>
    /// <param name="version">The committed version.</param>
    /// <param name="dedupe">Dedupe state at <paramref name="version"/>.</param>
    /// <param name="recentOps">Committed ops ending at <paramref name="version"/>, contiguous, oldest first (may be empty).</param>
    internal DocumentState(TSnapshot snapshot, long version, DedupeState dedupe, IReadOnlyList<SequencedOp<TOp>>? recentOps = null)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(dedupe);
        ArgumentOutOfRangeException.ThrowIfNegative(version);
        recentOps ??= [];
        for (int i = 0; i < recentOps.Count; i++)
        {
            long expected = version - recentOps.Count + 1 + i;
            if (recentOps[i].Record.Version != expected)
            {
                throw new ArgumentException($"Recent ops must be contiguous and end at version {version}; found version {recentOps[i].Record.Version} where {expected} was expected.", nameof(recentOps));
            }
        }

        Snapshot = snapshot;
        Version = version;
        Dedupe = dedupe;
        RecentOps = recentOps;
    }

    /// <summary>The document at <see cref="Version"/>.</summary>
    public TSnapshot Snapshot { get; }

    /// <summary>The committed version the document is at.</summary>
    public long Version { get; }

    internal DedupeState Dedupe { get; }

    /// <summary>Committed ops ending at <see cref="Version"/>, contiguous, oldest first (may be empty): they seed the history window.</summary>
    public IReadOnlyList<SequencedOp<TOp>> RecentOps { get; }
}

/// <summary>Builders for <see cref="DocumentState{TSnapshot, TOp}"/>.</summary>
public static class DocumentState
{
    /// <summary>A document that has no ops yet (version 0, <see cref="IOtType{TSnapshot, TOp}.Empty"/>).</summary>
    public static DocumentState<TSnapshot, TOp> Empty<TSnapshot, TOp>(IOtType<TSnapshot, TOp> type, SequencerOptions options)
        where TSnapshot : notnull
        where TOp : notnull
    {
        ArgumentNullException.ThrowIfNull(type);
        ArgumentNullException.ThrowIfNull(options);
        return new DocumentState<TSnapshot, TOp>(type.Empty, 0, new DedupeState(options));
    }

    /// <summary>
    /// Rebuilds a document from storage: the latest snapshot (null when none was taken) and every committed op after it,
    /// in version order. The ops are decoded and applied, the dedupe state is decoded from the snapshot's
    /// <see cref="SnapshotRecord.Meta"/> and brought up to date with the ops' (client id, client seq), and the newest ops
    /// (within the history bounds of <paramref name="options"/>) seed the window.
    /// </summary>
    /// <exception cref="ArgumentException">The ops do not continue the snapshot contiguously.</exception>
    /// <exception cref="OtException">An op or the metadata does not decode, or an op does not apply (the log is corrupt).</exception>
    public static DocumentState<TSnapshot, TOp> Load<TSnapshot, TOp>(
        IOtType<TSnapshot, TOp> type,
        SnapshotRecord? snapshot,
        IReadOnlyList<OpRecord> opsAfter,
        SequencerOptions options)
        where TSnapshot : notnull
        where TOp : notnull
    {
        ArgumentNullException.ThrowIfNull(type);
        ArgumentNullException.ThrowIfNull(opsAfter);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();

        TSnapshot document = snapshot is null ? type.Empty : type.FromText(snapshot.Text);
        long version = snapshot?.Version ?? 0;
        DedupeState dedupe = snapshot is null ? new DedupeState(options) : DedupeState.Decode(snapshot.Meta.Span, options);

        // Only the newest ops that fit the window are kept; sizes are known after decoding, so find the cut from the end.
        var decoded = new TOp[opsAfter.Count];
        for (int i = 0; i < opsAfter.Count; i++)
        {
            OpRecord record = opsAfter[i];
            if (record.Version != version + 1)
            {
                throw new ArgumentException($"Op versions must continue the snapshot contiguously: expected {version + 1}, found {record.Version}.", nameof(opsAfter));
            }

            TOp op = type.Decode(record.Op.Span);
            type.Validate(op, document);
            document = type.Apply(document, op);
            version = record.Version;
            decoded[i] = op;

            // Ops written by the server itself (no client) take part in nothing dedupe tracks.
            if (!string.IsNullOrEmpty(record.ClientId) && record.ClientSeq > 0)
            {
                dedupe.Record(record.ClientId, record.ClientSeq, record.Version);
            }
        }

        int keepFrom = opsAfter.Count;
        long bytes = 0;
        while (keepFrom > 0 && opsAfter.Count - keepFrom < options.HistoryMaxOps)
        {
            long size = type.SizeOf(decoded[keepFrom - 1]);
            if (bytes + size > options.HistoryMaxBytes)
            {
                break;
            }

            bytes += size;
            keepFrom--;
        }

        var recent = new SequencedOp<TOp>[opsAfter.Count - keepFrom];
        for (int i = keepFrom; i < opsAfter.Count; i++)
        {
            recent[i - keepFrom] = new SequencedOp<TOp>(opsAfter[i], decoded[i]);
        }

        return new DocumentState<TSnapshot, TOp>(document, version, dedupe, recent);
    }
}
