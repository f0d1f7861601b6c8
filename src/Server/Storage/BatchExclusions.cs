using Collab.Engine.Sequencing;

namespace Collab.Server.Storage;

/// <summary>
/// What a store leaves out when it writes a batch again after a primary-key violation: documents another writer got
/// to first (fenced, reported as conflicted) and single records an earlier attempt of ours already committed (a lost
/// acknowledgement). Allocated only on that slow path.
/// </summary>
internal sealed class BatchExclusions
{
    private readonly HashSet<string> _excludedDocs = new(StringComparer.Ordinal);
    private readonly HashSet<(string DocId, long Version)> _alreadyCommitted = [];
    private readonly List<string> _conflicted = [];

    /// <summary>Changes since the last <see cref="TakeProgress"/>: a retry without progress would fail the same way.</summary>
    private int _changes;

    public bool Skip(in OpRecord record) =>
        _excludedDocs.Contains(record.DocId) || _alreadyCommitted.Contains((record.DocId, record.Version));

    public bool IsExcluded(string docId) => _excludedDocs.Contains(docId);

    /// <summary>
    /// Records that the batch's <paramref name="record"/> already exists in the store, owned by the given client op.
    /// The same client op means our own earlier commit; any other owner fences the whole document.
    /// </summary>
    public void ObserveExisting(in OpRecord record, string ownerClientId, long ownerClientSeq)
    {
        if (_excludedDocs.Contains(record.DocId))
        {
            return;
        }

        if (string.Equals(ownerClientId, record.ClientId, StringComparison.Ordinal) && ownerClientSeq == record.ClientSeq)
        {
            if (_alreadyCommitted.Add((record.DocId, record.Version)))
            {
                _changes++;
            }

            return;
        }

        _excludedDocs.Add(record.DocId);
        _conflicted.Add(record.DocId);
        _changes++;
    }

    /// <summary>
    /// Leaves out every record of a document whose lease this node does not hold (write fencing); reported as conflicted.
    /// Not progress in the sense of <see cref="TakeProgress"/>: it says nothing about the unique violation being retried.
    /// </summary>
    public void ExcludeFenced(string docId)
    {
        if (_excludedDocs.Add(docId))
        {
            _conflicted.Add(docId);
        }
    }

    /// <summary>
    /// Fences documents that carry the same version twice in this batch (two sequencers of one document in this
    /// process): the store's own unique check rejects the batch, but no row exists to find the owner by. True when
    /// any was found.
    /// </summary>
    public bool ExcludeDuplicatesWithinBatch(IReadOnlyList<OpRecord> batch)
    {
        var found = false;
        var seen = new HashSet<(string DocId, long Version)>();
        for (var i = 0; i < batch.Count; i++)
        {
            var record = batch[i];
            if (Skip(record) || seen.Add((record.DocId, record.Version)))
            {
                continue;
            }

            _excludedDocs.Add(record.DocId);
            _conflicted.Add(record.DocId);
            found = true;
        }

        return found;
    }

    /// <summary>True when something was excluded since the previous call.</summary>
    public bool TakeProgress()
    {
        var progressed = _changes > 0;
        _changes = 0;
        return progressed;
    }

    public static AppendResult ToResult(BatchExclusions? exclusions) =>
        exclusions is null || exclusions._conflicted.Count == 0 ? AppendResult.Ok : new AppendResult(exclusions._conflicted.ToArray());

    public IReadOnlyList<string> Conflicted => _conflicted;
}
