using Collab.Engine.Sequencing;

namespace Collab.Server.Storage;

/// <summary>
/// What the HTTP API reads and writes besides the op log itself: the document catalogue (type, creation, tombstone),
/// the history bounds, snapshots at or before a version, the version at a point in time, and the purge of deleted
/// documents. Implemented by both op stores; the API reads explicit past versions through it from a PostgreSQL
/// streaming replica too (<c>Storage:ReadReplicaConnectionString</c>).
/// </summary>
public interface IDocumentHistory
{
    /// <summary>The catalogue row of a document; null when it was never created (no PUT, no op, no snapshot).</summary>
    ValueTask<DocumentInfo?> GetDocumentAsync(string docId, CancellationToken cancellationToken);

    /// <summary>Creates the catalogue row with its type; false when one exists already (live or deleted).</summary>
    ValueTask<bool> CreateDocumentAsync(string docId, string type, long createdMs, CancellationToken cancellationToken);

    /// <summary>Tombstones a live document; false when there is no live one.</summary>
    ValueTask<bool> DeleteDocumentAsync(string docId, long deletedMs, CancellationToken cancellationToken);

    /// <summary>Live documents whose id starts with <paramref name="prefix"/>, after <paramref name="after"/> in id order, at most <paramref name="limit"/>.</summary>
    ValueTask<IReadOnlyList<DocumentSummary>> ListDocumentsAsync(string prefix, string? after, int limit, CancellationToken cancellationToken);

    /// <summary>The newest stored snapshot at or before <paramref name="version"/>, or null.</summary>
    ValueTask<SnapshotRecord?> ReadSnapshotAtOrBeforeAsync(string docId, long version, CancellationToken cancellationToken);

    /// <summary>What the store holds of a document's history.</summary>
    ValueTask<HistoryBounds> GetBoundsAsync(string docId, CancellationToken cancellationToken);

    /// <summary>
    /// The document's version as it was at <paramref name="timestampMs"/>: the version just before the first op committed
    /// after that time (the ops' own timestamps, so the answer is a prefix of the history), or the head when none was.
    /// </summary>
    ValueTask<long> VersionAtAsync(string docId, long timestampMs, CancellationToken cancellationToken);

    /// <summary>Removes the ops, snapshots and catalogue rows of documents deleted before <paramref name="cutoffMs"/>; returns the documents purged.</summary>
    ValueTask<int> PurgeDeletedAsync(long cutoffMs, CancellationToken cancellationToken);
}

/// <summary>A document's catalogue row. <paramref name="DeletedMs"/> is set once it is tombstoned.</summary>
public sealed record DocumentInfo(string Id, string Type, long CreatedMs, long? DeletedMs)
{
    public bool IsDeleted => DeletedMs is not null;
}

/// <summary>One entry of a document listing: id, type and head version (0 before the first op).</summary>
public sealed record DocumentSummary(string Id, string Type, long Version, long CreatedMs);

/// <summary>
/// A document's stored history: the first and last op versions held (null when no op is), the newest snapshot version
/// (null when none), and the oldest version that can be rebuilt: 0 while the log starts at version 1, else the oldest
/// snapshot at or after where the pruned log now starts.
/// </summary>
public readonly record struct HistoryBounds(long? FirstOp, long? LastOp, long? LastSnapshot, long EarliestReadable)
{
    /// <summary>The newest version the store knows.</summary>
    public long Head => Math.Max(LastOp ?? 0, LastSnapshot ?? 0);
}

/// <summary>The names of the OT types (ShareDB's names for them); documents record theirs in the catalogue when created.</summary>
public static class DocumentTypes
{
    /// <summary>Plain text, positions in code points (the default).</summary>
    public const string TextUnicode = "text-unicode";

    /// <summary>Quill Delta rich text, positions in UTF-16 units (docs/OT.md).</summary>
    public const string RichText = "rich-text";

    /// <summary>Whether this server can host documents of <paramref name="type"/>.</summary>
    public static bool IsKnown(string? type) => type is TextUnicode or RichText;
}
