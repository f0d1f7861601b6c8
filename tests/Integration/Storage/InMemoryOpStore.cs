using Collab.Engine.Sequencing;
using Collab.Server.Storage;

namespace Collab.Integration.Tests.Storage;

/// <summary>
/// An <see cref="IOpStore"/> held in memory with the same semantics as the real ones (it passes the conformance suite),
/// for property tests of the group-commit stage that need thousands of fast cases. Thread-safe by one lock.
/// </summary>
internal sealed class InMemoryOpStore : IOpStore
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, SortedDictionary<long, OpRecord>> _ops = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SortedDictionary<long, SnapshotRecord>> _snapshots = new(StringComparer.Ordinal);
    private readonly Dictionary<string, byte[]> _secrets = new(StringComparer.Ordinal);
    private readonly int _snapshotsToKeep;

    public InMemoryOpStore(int snapshotsToKeep = 3) => _snapshotsToKeep = snapshotsToKeep;

    public ValueTask InitializeAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<AppendResult> AppendAsync(IReadOnlyList<OpRecord> batch, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateBatch(batch);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            var conflicted = new List<string>();
            var excluded = new HashSet<string>(StringComparer.Ordinal);
            var seen = new HashSet<(string, long)>();
            foreach (var record in batch)
            {
                if (excluded.Contains(record.DocId))
                {
                    continue;
                }

                var clash = !seen.Add((record.DocId, record.Version));
                if (!clash && _ops.TryGetValue(record.DocId, out var existing) && existing.TryGetValue(record.Version, out var owner))
                {
                    clash = owner.ClientId != record.ClientId || owner.ClientSeq != record.ClientSeq;
                }

                if (clash)
                {
                    excluded.Add(record.DocId);
                    conflicted.Add(record.DocId);
                }
            }

            foreach (var record in batch)
            {
                if (excluded.Contains(record.DocId))
                {
                    continue;
                }

                if (!_ops.TryGetValue(record.DocId, out var ops))
                {
                    _ops[record.DocId] = ops = [];
                }

                ops.TryAdd(record.Version, record with { Op = record.Op.ToArray() });
            }

            return ValueTask.FromResult(conflicted.Count == 0 ? AppendResult.Ok : new AppendResult(conflicted));
        }
    }

    public ValueTask<DocumentLoad?> LoadAsync(string docId, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        lock (_gate)
        {
            var snapshot = _snapshots.TryGetValue(docId, out var snaps) && snaps.Count > 0 ? snaps.Values.Last() : null;
            var ops = Range(docId, snapshot?.Version ?? 0, long.MaxValue, int.MaxValue);
            return ValueTask.FromResult(snapshot is null && ops.Count == 0 ? null : new DocumentLoad(snapshot, ops));
        }
    }

    public ValueTask<IReadOnlyList<OpRecord>> ReadOpsAsync(string docId, long afterVersion, long toVersion, int limit, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        lock (_gate)
        {
            return ValueTask.FromResult<IReadOnlyList<OpRecord>>(Range(docId, afterVersion, toVersion, limit));
        }
    }

    public ValueTask<OpLookup> FindOpAsync(string docId, string clientId, long clientSeq, long afterVersion, long toVersion, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        lock (_gate)
        {
            var range = Range(docId, afterVersion, toVersion, int.MaxValue);
            var found = range.FirstOrDefault(o => o.ClientId == clientId && o.ClientSeq == clientSeq);
            return ValueTask.FromResult(new OpLookup(found.Version, range.Count));
        }
    }

    public ValueTask<byte[]> GetOrCreateSecretAsync(string name, int length, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (!_secrets.TryGetValue(name, out var value))
            {
                _secrets[name] = value = System.Security.Cryptography.RandomNumberGenerator.GetBytes(length);
            }

            return ValueTask.FromResult(value.ToArray());
        }
    }

    public ValueTask WriteSnapshotAsync(SnapshotRecord snapshot, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateSnapshot(snapshot);
        StorageValidation.EncodeText(snapshot.Text);
        lock (_gate)
        {
            if (!_snapshots.TryGetValue(snapshot.DocId, out var snaps))
            {
                _snapshots[snapshot.DocId] = snaps = [];
            }

            if (snaps.Count > 0 && snaps.Keys.Last() >= snapshot.Version)
            {
                return ValueTask.CompletedTask;
            }

            snaps[snapshot.Version] = snapshot with { Meta = snapshot.Meta.ToArray() };
            while (snaps.Count > _snapshotsToKeep)
            {
                snaps.Remove(snaps.Keys.First());
            }

            return ValueTask.CompletedTask;
        }
    }

    public ValueTask<long> PruneAsync(TimeSpan retention, CancellationToken cancellationToken)
    {
        var cutoff = (DateTimeOffset.UtcNow - retention).ToUnixTimeMilliseconds();
        long removed = 0;
        lock (_gate)
        {
            foreach (var (docId, snaps) in _snapshots)
            {
                if (snaps.Count == 0 || !_ops.TryGetValue(docId, out var ops))
                {
                    continue;
                }

                var covered = snaps.Keys.Last();
                foreach (var version in ops.Values.Where(o => o.Version <= covered && o.TimestampMs < cutoff).Select(o => o.Version).ToList())
                {
                    ops.Remove(version);
                    removed++;
                }
            }
        }

        return ValueTask.FromResult(removed);
    }

    public long SnapshotCount(string docId)
    {
        lock (_gate)
        {
            return _snapshots.TryGetValue(docId, out var snaps) ? snaps.Count : 0;
        }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private List<OpRecord> Range(string docId, long afterVersion, long toVersion, int limit) =>
        _ops.TryGetValue(docId, out var ops)
            ? ops.Values.Where(o => o.Version > afterVersion && o.Version <= toVersion).Take(limit).ToList()
            : [];
}
