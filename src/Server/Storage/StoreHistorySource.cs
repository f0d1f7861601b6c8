using Collab.Engine.Sequencing;

namespace Collab.Server.Storage;

/// <summary>
/// Serves the sequencer's history reads (resuming clients, ops based on versions older than its in-memory window)
/// from the op log, in pages.
/// </summary>
/// <remarks>
/// The result is the stored run of ops starting at <c>afterVersion + 1</c>, stopping early at the first missing
/// version (pruned after a snapshot) or at the head. The sequencer checks that it got exactly the range it asked for
/// and otherwise answers "version too old", so a pruned history turns into a resync, never into a wrong transform.
/// </remarks>
public sealed class StoreHistorySource : IHistorySource
{
    private readonly IOpStore _store;
    private readonly int _pageSize;

    /// <summary>Reads from <paramref name="store"/> (not owned), at most <paramref name="pageSize"/> ops per query.</summary>
    public StoreHistorySource(IOpStore store, int pageSize = 1000)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageSize, 1);
        _store = store;
        _pageSize = pageSize;
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<OpRecord>> ReadOpsAsync(string docId, long afterVersion, long toVersion, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(afterVersion);
        if (toVersion <= afterVersion)
        {
            return Array.Empty<OpRecord>();
        }

        List<OpRecord>? all = null;
        var next = afterVersion + 1;
        while (next <= toVersion)
        {
            var page = await _store.ReadOpsAsync(docId, next - 1, toVersion, _pageSize, cancellationToken).ConfigureAwait(false);
            var contiguous = 0;
            while (contiguous < page.Count && page[contiguous].Version == next + contiguous)
            {
                contiguous++;
            }

            if (all is null && contiguous == page.Count && page.Count < _pageSize)
            {
                return page; // The common case: one short page, nothing to copy.
            }

            all ??= new List<OpRecord>(contiguous);
            for (var i = 0; i < contiguous; i++)
            {
                all.Add(page[i]);
            }

            next += contiguous;
            if (contiguous < page.Count || page.Count < _pageSize)
            {
                break; // A gap, or the end of what is stored.
            }
        }

        return all ?? (IReadOnlyList<OpRecord>)Array.Empty<OpRecord>();
    }

    /// <inheritdoc />
    public ValueTask<OpLookup> FindOpAsync(string docId, string clientId, long clientSeq, long afterVersion, long toVersion, CancellationToken cancellationToken) =>
        _store.FindOpAsync(docId, clientId, clientSeq, afterVersion, toVersion, cancellationToken);
}
