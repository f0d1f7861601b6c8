using Collab.Engine.Sequencing;
using Collab.Server.Sessions;
using Collab.Server.Storage;

namespace Collab.Server.Api;

/// <summary>
/// Reads documents for the API from the op store: the head (latest snapshot plus the ops after it), and any past version
/// as the nearest stored snapshot at or below it plus at most <see cref="ApiOptions.MaxReplayOps"/> ops replayed on it.
/// Explicit past versions may come from a PostgreSQL streaming replica (<see cref="StorageOptions.ReadReplicaConnectionString"/>):
/// only when the replica has applied that version (its log holds an op at or past it), else from the primary; the head
/// never does. A replica that cannot be reached is skipped (counted).
/// </summary>
internal sealed partial class HistoryReader
{
    private readonly IOpStore _store;
    private readonly IDocumentHistory _history;
    private readonly IDocumentHistory? _replica;
    private readonly IOpStore? _replicaOps;
    private readonly int _maxReplay;
    private readonly int _pageSize;
    private readonly ILogger _logger;

    public HistoryReader(IOpStore store, ApiOptions options, ILogger<HistoryReader> logger, IOpStore? replica = null)
    {
        _store = store;
        _history = store as IDocumentHistory ?? throw new ArgumentException("The op store keeps no document catalogue.", nameof(store));
        _replicaOps = replica;
        _replica = replica as IDocumentHistory;
        _maxReplay = options.ReplayBound;
        _pageSize = options.MaxPageSize;
        _logger = logger;
    }

    /// <summary>The primary's catalogue and history reads.</summary>
    public IDocumentHistory Catalog => _history;

    /// <summary>The primary op store.</summary>
    public IOpStore Store => _store;

    /// <summary>The document at its head version, from the primary.</summary>
    /// <remarks>The content is the type's stored form: the text of a text-unicode document, the Delta JSON of a rich-text one.</remarks>
    public async ValueTask<(long Version, string Content)> ReadHeadAsync(string docId, DocumentKind kind, CancellationToken cancellationToken)
    {
        DocumentLoad? load = await _store.LoadAsync(docId, cancellationToken).ConfigureAwait(false);
        if (load is null)
        {
            return (0, kind.Replay(null).ToText());
        }

        DocumentReplay document = kind.Replay(load.Snapshot?.Text);
        long version = load.Snapshot?.Version ?? 0;
        foreach (OpRecord op in load.Ops)
        {
            document.Apply(op.Op.Span);
            version = op.Version;
        }

        return (version, document.ToText());
    }

    /// <summary>
    /// The document at <paramref name="version"/> (not above the head, which the caller checked): the content, or why it
    /// cannot be read (pruned: the earliest readable version; or further than K from any snapshot).
    /// </summary>
    public async ValueTask<PastRead> ReadVersionAsync(string docId, DocumentKind kind, long version, HistoryBounds bounds, CancellationToken cancellationToken)
    {
        if (_replica is not null && _replicaOps is not null)
        {
            try
            {
                HistoryBounds applied = await _replica.GetBoundsAsync(docId, cancellationToken).ConfigureAwait(false);
                if (applied.Head >= version)
                {
                    PastRead fromReplica = await ReadAsync(_replica, _replicaOps, docId, kind, version, applied, cancellationToken).ConfigureAwait(false);
                    if (fromReplica.Content is not null)
                    {
                        ApiMetrics.HistoryReadsFromReplica.Inc();
                        return fromReplica;
                    }

                    // The replica lacks what the primary may still have (it replays a prune before we ask the primary).
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                ApiMetrics.ReplicaFailures.Inc();
                LogReplicaFailed(docId, version, ex);
            }
        }

        ApiMetrics.HistoryReadsFromPrimary.Inc();
        return await ReadAsync(_history, _store, docId, kind, version, bounds, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<PastRead> ReadAsync(IDocumentHistory history, IOpStore ops, string docId, DocumentKind kind, long version, HistoryBounds bounds, CancellationToken cancellationToken)
    {
        if (version < bounds.EarliestReadable)
        {
            return PastRead.Pruned(bounds.EarliestReadable);
        }

        SnapshotRecord? snapshot = await history.ReadSnapshotAtOrBeforeAsync(docId, version, cancellationToken).ConfigureAwait(false);
        long from = snapshot?.Version ?? 0;
        if (version - from > _maxReplay)
        {
            return PastRead.TooFar(from, version - from);
        }

        DocumentReplay document = kind.Replay(snapshot?.Text);
        long at = from;
        while (at < version)
        {
            IReadOnlyList<OpRecord> page = await ops.ReadOpsAsync(docId, at, version, _pageSize, cancellationToken).ConfigureAwait(false);
            foreach (OpRecord op in page)
            {
                if (op.Version != at + 1)
                {
                    return PastRead.Pruned(bounds.EarliestReadable); // a gap: pruned meanwhile
                }

                document.Apply(op.Op.Span);
                at = op.Version;
            }

            if (page.Count == 0)
            {
                return PastRead.Pruned(bounds.EarliestReadable);
            }
        }

        ApiMetrics.HistoryReplayedOps.Observe(version - from);
        return PastRead.Read(document.ToText(), version - from);
    }

    [LoggerMessage(1300, LogLevel.Warning, "Read replica failed reading document '{DocId}' at version {Version}; reading the primary")]
    private partial void LogReplicaFailed(string docId, long version, Exception exception);
}

/// <summary>The outcome of reading a past version: its content, or why not.</summary>
internal readonly record struct PastRead(string? Content, long Replayed, long EarliestAvailable, long NearestSnapshot)
{
    public static PastRead Read(string content, long replayed) => new(content, replayed, 0, 0);

    public static PastRead Pruned(long earliest) => new(null, 0, earliest, 0);

    public static PastRead TooFar(long nearestSnapshot, long replay) => new(null, replay, -1, nearestSnapshot);

    public bool IsTooFar => Content is null && EarliestAvailable < 0;
}
