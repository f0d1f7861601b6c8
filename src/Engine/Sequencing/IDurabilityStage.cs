namespace Collab.Engine.Sequencing;

/// <summary>
/// Where sequenced ops become durable before they are acknowledged and published.
/// The embedded store, PostgreSQL and (in a cluster) the owner's bus all plug in behind it.
/// </summary>
/// <remarks>
/// Contract: the sequencer may call <see cref="CommitAsync"/> again before an earlier call has
/// completed (pipelining); the stage commits one document's ops in call order and completes the
/// calls in that order. A transient failure (database down) is retried inside the stage with
/// backoff, so the call simply stays pending; the call fails only with
/// <see cref="VersionConflictException"/> (another writer owns a version: fencing) or
/// <see cref="OperationCanceledException"/> (shutdown / the document was closed).
/// </remarks>
public interface IDurabilityStage
{
    /// <summary>Makes <paramref name="op"/> durable; completes once it is (see the contract above).</summary>
    ValueTask CommitAsync(OpRecord op, CancellationToken cancellationToken);
}

/// <summary>Reads committed ops older than the sequencer's in-memory window (resuming clients, old base versions, resends).</summary>
public interface IHistorySource
{
    /// <summary>Ops with afterVersion &lt; version &lt;= toVersion, in version order.</summary>
    ValueTask<IReadOnlyList<OpRecord>> ReadOpsAsync(string docId, long afterVersion, long toVersion, CancellationToken cancellationToken);

    /// <summary>
    /// Looks the op (<paramref name="clientId"/>, <paramref name="clientSeq"/>) up among the committed ops with
    /// <paramref name="afterVersion"/> &lt; version &lt;= <paramref name="toVersion"/>, and counts how many ops of that range
    /// the history still holds, so a miss over a whole range ("never sequenced there") can be told from a miss over a
    /// pruned one ("cannot tell").
    /// </summary>
    ValueTask<OpLookup> FindOpAsync(string docId, string clientId, long clientSeq, long afterVersion, long toVersion, CancellationToken cancellationToken);
}

/// <summary>The answer of <see cref="IHistorySource.FindOpAsync"/>.</summary>
/// <param name="Version">The version of the op when found; 0 when it is not among the ops held.</param>
/// <param name="Held">How many ops of the searched range the history holds (the range's length when nothing was pruned).</param>
public readonly record struct OpLookup(long Version, long Held)
{
    /// <summary>The op was found.</summary>
    public bool Found => Version > 0;
}

/// <summary>The op log already holds this (doc id, version): another sequencer wrote it. The document must stop sequencing and reload.</summary>
public sealed class VersionConflictException : Exception
{
    /// <summary>Version <paramref name="version"/> of <paramref name="docId"/> is already taken in the op log (another sequencer wrote it).</summary>
    public VersionConflictException(string docId, long version)
        : base($"Version {version} of document '{docId}' was already written by another sequencer.")
    {
        DocId = docId;
        Version = version;
    }

    /// <summary>The document whose op log already holds <see cref="Version"/>.</summary>
    public string DocId { get; }
    /// <summary>The version another writer committed first.</summary>
    public long Version { get; }
}
