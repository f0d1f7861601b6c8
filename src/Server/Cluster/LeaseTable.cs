using System.Collections.Concurrent;
using System.Diagnostics;
using Collab.Server.Storage;

namespace Collab.Server.Cluster;

/// <summary>
/// The leases this node holds, as the node itself sees them: epoch and local deadline. A lease counts as held only
/// until <c>(send time of the last successful acquire/renew) + LeaseDuration − LeaseSafetyMargin</c> on the monotonic
/// clock — which keeps running while the process is paused — so a node that could not renew, or was frozen, stops
/// writing before the database could hand the lease to anyone else. The op store asks it before every write
/// (<see cref="IWriteFence"/>) and then checks the database row as well.
/// </summary>
internal sealed class LeaseTable : IWriteFence
{
    private readonly ConcurrentDictionary<string, Entry> _leases = new(StringComparer.Ordinal);
    private readonly long _validTicks;

    public LeaseTable(string nodeId, ClusterOptions options)
    {
        NodeId = nodeId;
        _validTicks = (long)((options.LeaseDuration - options.LeaseSafetyMargin).TotalSeconds * Stopwatch.Frequency);

        // A write transaction must end (commit or time out) well inside the lease's lifetime.
        WriteTimeout = options.LeaseSafetyMargin > TimeSpan.Zero ? options.LeaseSafetyMargin : options.RenewInterval;
    }

    public string NodeId { get; }

    public TimeSpan WriteTimeout { get; }

    public int Count => _leases.Count;

    public bool TryGetEpoch(string docId, out long epoch)
    {
        if (_leases.TryGetValue(docId, out Entry? entry) && Stopwatch.GetTimestamp() < Volatile.Read(ref entry.ValidUntil))
        {
            epoch = entry.Epoch;
            return true;
        }

        epoch = 0;
        return false;
    }

    /// <summary>Whether the lease on <paramref name="docId"/> is held under <paramref name="epoch"/> and within its local deadline.</summary>
    public bool IsHeld(string docId, long epoch) => TryGetEpoch(docId, out long held) && held == epoch;

    /// <summary>Records a lease acquired by a request sent at <paramref name="sentAt"/> (Stopwatch ticks).</summary>
    public void Add(string docId, long epoch, long sentAt) => _leases[docId] = new Entry(epoch, sentAt + _validTicks);

    /// <summary>Extends the local deadline after a renewal sent at <paramref name="sentAt"/> succeeded.</summary>
    public void Extend(string docId, long epoch, long sentAt)
    {
        if (_leases.TryGetValue(docId, out Entry? entry) && entry.Epoch == epoch)
        {
            long deadline = sentAt + _validTicks;
            long current;
            while ((current = Volatile.Read(ref entry.ValidUntil)) < deadline
                   && Interlocked.CompareExchange(ref entry.ValidUntil, deadline, current) != current)
            {
            }
        }
    }

    /// <summary>Forgets a lease (released, lost or expired). Only the given epoch is removed, never a newer one.</summary>
    public void Remove(string docId, long epoch)
    {
        if (_leases.TryGetValue(docId, out Entry? entry) && entry.Epoch == epoch)
        {
            _leases.TryRemove(KeyValuePair.Create(docId, entry));
        }
    }

    /// <summary>Every lease with its epoch (for the renewal statement).</summary>
    public List<(string DocId, long Epoch)> Snapshot()
    {
        var list = new List<(string, long)>(_leases.Count);
        foreach ((string docId, Entry entry) in _leases)
        {
            list.Add((docId, entry.Epoch));
        }

        return list;
    }

    /// <summary>Leases whose local deadline has passed: the node must already have stopped writing them.</summary>
    public List<(string DocId, long Epoch)> Expired()
    {
        long now = Stopwatch.GetTimestamp();
        var list = new List<(string, long)>();
        foreach ((string docId, Entry entry) in _leases)
        {
            if (now >= Volatile.Read(ref entry.ValidUntil))
            {
                list.Add((docId, entry.Epoch));
            }
        }

        return list;
    }

    private sealed class Entry(long epoch, long validUntil)
    {
        public readonly long Epoch = epoch;
        public long ValidUntil = validUntil;
    }
}
