using System.Diagnostics;

namespace Collab.Engine.Sequencing;

/// <summary>
/// The most recent sequenced ops of one document, contiguous by version and ending at the sequenced version: a ring
/// buffer bounded by op count and bytes. Ops that are not committed yet are never dropped (submissions must still be
/// transformed against them, and the history source cannot have them). Owned by the sequencer's worker.
/// </summary>
internal sealed class HistoryWindow<TOp>
    where TOp : notnull
{
    private Entry[] _ring;
    private int _head;
    private int _count;
    private long _bytes;
    private long _lastVersion;

    public HistoryWindow(long version)
    {
        // No ring until the first op: a loaded document that nobody edits (most of them, on a busy node) holds no
        // history, and a preallocated ring of 16 entries cost ~1.4 KB per open document.
        _ring = [];
        _lastVersion = version;
    }

    /// <summary>Entries the ring can hold before it grows (tests).</summary>
    internal int Capacity => _ring.Length;

    /// <summary>Version of the oldest op held; <see cref="LastVersion"/> + 1 when empty.</summary>
    public long FirstVersion => _lastVersion - _count + 1;

    /// <summary>Version of the newest op held (the sequenced version).</summary>
    public long LastVersion => _lastVersion;

    public int Count => _count;

    public long Bytes => _bytes;

    /// <summary>True when every op after <paramref name="version"/> (up to <see cref="LastVersion"/>) is held.</summary>
    public bool Covers(long version) => version >= FirstVersion - 1 && version <= _lastVersion;

    public ref readonly Entry this[long version]
    {
        get
        {
            Debug.Assert(version >= FirstVersion && version <= _lastVersion);
            return ref _ring[(_head + (int)(version - FirstVersion)) & (_ring.Length - 1)];
        }
    }

    public void Append(in OpRecord record, TOp op, int size)
    {
        Debug.Assert(record.Version == _lastVersion + 1);
        if (_count == _ring.Length)
        {
            Grow();
        }

        _ring[(_head + _count) & (_ring.Length - 1)] = new Entry(record, op, size);
        _count++;
        _bytes += size;
        _lastVersion = record.Version;
    }

    /// <summary>Drops the oldest committed ops while the window is over either bound.</summary>
    public void Trim(long committedVersion, int maxOps, long maxBytes)
    {
        while (_count > 0 && (_count > maxOps || _bytes > maxBytes) && FirstVersion <= committedVersion)
        {
            ref Entry oldest = ref _ring[_head];
            _bytes -= oldest.Size;
            oldest = default;
            _head = (_head + 1) & (_ring.Length - 1);
            _count--;
        }
    }

    private void Grow()
    {
        // Powers of two from 4: the index arithmetic masks with Length - 1.
        var ring = new Entry[Math.Max(4, _ring.Length * 2)];
        for (int i = 0; i < _count; i++)
        {
            ring[i] = _ring[(_head + i) & (_ring.Length - 1)];
        }

        _ring = ring;
        _head = 0;
    }

    public readonly struct Entry(OpRecord record, TOp op, int size)
    {
        public readonly OpRecord Record = record;
        public readonly TOp Op = op;
        public readonly int Size = size;
    }
}
