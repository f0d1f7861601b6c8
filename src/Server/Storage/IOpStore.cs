using Collab.Engine.Sequencing;

namespace Collab.Server.Storage;

/// <summary>
/// The op log and snapshot store behind the group-commit stage. Implementations: the embedded
/// SQLite store (single node, default) and PostgreSQL. Every implementation passes the shared
/// conformance suite in tests (OpStoreConformance).
/// </summary>
public interface IOpStore : IAsyncDisposable
{
    /// <summary>Creates or upgrades the schema (versioned, idempotent migrations).</summary>
    ValueTask InitializeAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Appends a batch from any number of documents in one transaction. A (doc id, version) that
    /// already exists fences that document: its records are left out and it is reported in
    /// <see cref="AppendResult.ConflictedDocs"/>; every other document's records are committed.
    /// Throws on infrastructure failure (nothing committed), never commits partially otherwise.
    /// </summary>
    /// <remarks>
    /// A record whose (doc id, version) already exists with the same client id and client seq is the
    /// same op committed by an earlier attempt whose acknowledgement was lost (connection dropped during
    /// COMMIT): it counts as committed, so retrying a batch is idempotent. One document's records must be
    /// in ascending version order. The list is only read during the call; the caller may reuse it afterwards.
    /// Records are validated first (<see cref="ArgumentException"/>, nothing written).
    /// </remarks>
    ValueTask<AppendResult> AppendAsync(IReadOnlyList<OpRecord> batch, CancellationToken cancellationToken);

    /// <summary>The latest snapshot (or null) and every op after it, in version order; null when the document has never been written.</summary>
    ValueTask<DocumentLoad?> LoadAsync(string docId, CancellationToken cancellationToken);

    /// <summary>Ops with afterVersion &lt; version &lt;= toVersion, in version order, at most <paramref name="limit"/>.</summary>
    ValueTask<IReadOnlyList<OpRecord>> ReadOpsAsync(string docId, long afterVersion, long toVersion, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Looks the op (<paramref name="clientId"/>, <paramref name="clientSeq"/>) up among the document's ops with
    /// <paramref name="afterVersion"/> &lt; version &lt;= <paramref name="toVersion"/>, and counts how many ops of that range
    /// the log holds (fewer than its length once pruned). Deduplication of resends: a resent op was sequenced after the
    /// base version it was made against, so one range scan of the primary key finds it, and no index on client ids
    /// burdens the write path. The caller bounds the range.
    /// </summary>
    ValueTask<OpLookup> FindOpAsync(string docId, string clientId, long clientSeq, long afterVersion, long toVersion, CancellationToken cancellationToken);

    /// <summary>
    /// The server secret called <paramref name="name"/>: <paramref name="length"/> random bytes created by the first caller
    /// ever, the same bytes for every later caller, after restarts and on every node sharing the store (the key that signs
    /// client ids). Concurrent first callers agree on one value.
    /// </summary>
    ValueTask<byte[]> GetOrCreateSecretAsync(string name, int length, CancellationToken cancellationToken);

    /// <summary>
    /// Stores a snapshot; one not newer than the latest stored is ignored. Every snapshot is kept unless
    /// <see cref="StorageOptions.SnapshotsToKeep"/> limits them to the newest few per document.
    /// </summary>
    ValueTask WriteSnapshotAsync(SnapshotRecord snapshot, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes ops older than the retention (by op timestamp) whose version is at or below their
    /// document's latest snapshot, so <see cref="LoadAsync"/> stays complete. Returns rows removed.
    /// </summary>
    ValueTask<long> PruneAsync(TimeSpan retention, CancellationToken cancellationToken);
}

/// <summary>Outcome of a group append.</summary>
public sealed record AppendResult(IReadOnlyCollection<string> ConflictedDocs)
{
    public static readonly AppendResult Ok = new(Array.Empty<string>());
}

/// <summary>What a document loads from: its latest snapshot (if any) and the ops after it.</summary>
public sealed record DocumentLoad(SnapshotRecord? Snapshot, IReadOnlyList<OpRecord> Ops);
