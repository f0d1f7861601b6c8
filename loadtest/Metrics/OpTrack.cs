using System.Numerics;

namespace Collab.LoadTest.Metrics;

/// <summary>
/// The ops one writer has in flight, indexed by client_seq in a power-of-two ring: their scheduled send time and
/// how many other clients have yet to receive them. A receiver that sees (client_id, client_seq) in an Ops message
/// finds the sender's ring through the directory and reads the scheduled time from the slot: broadcast latency
/// without tokens in the text and without a shared dictionary.
/// </summary>
/// <remarks>
/// The sender writes a slot before its op leaves (the socket send publishes it; receivers only look after the
/// server relayed the op) and the seq last, so a reader that sees the right seq sees the right time. A slot is
/// reused after <see cref="Capacity"/> later ops; a receiver that arrives that late finds another seq and the
/// delivery is counted as untracked rather than given a wrong latency.
/// </remarks>
internal sealed class OpTrack
{
    private readonly ulong[] _seqs;
    private readonly long[] _scheduled;
    private readonly int[] _remaining;
    private readonly int _mask;

    public OpTrack(int capacity)
    {
        int size = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, capacity));
        _seqs = new ulong[size];
        _scheduled = new long[size];
        _remaining = new int[size];
        _mask = size - 1;
    }

    public int Capacity => _seqs.Length;

    /// <summary>
    /// Registers op <paramref name="seq"/>; returns false when its slot still held an op not yet delivered to every
    /// receiver (that op's remaining deliveries can no longer be tracked).
    /// </summary>
    public bool Register(ulong seq, long scheduled, int receivers)
    {
        int slot = (int)(seq & (ulong)_mask);
        bool clean = Volatile.Read(ref _remaining[slot]) <= 0;
        _scheduled[slot] = scheduled;
        Volatile.Write(ref _remaining[slot], receivers);
        Volatile.Write(ref _seqs[slot], seq);
        return clean;
    }

    /// <summary>
    /// One receiver got op <paramref name="seq"/>: returns its scheduled time, or -1 when the slot holds another op
    /// (untracked). <paramref name="extra"/> is set when more receivers reported it than were expected.
    /// </summary>
    public long Deliver(ulong seq, out bool extra)
    {
        int slot = (int)(seq & (ulong)_mask);
        extra = false;
        if (Volatile.Read(ref _seqs[slot]) != seq)
        {
            return -1;
        }

        long scheduled = _scheduled[slot];
        extra = Interlocked.Decrement(ref _remaining[slot]) < 0;
        return scheduled;
    }

    /// <summary>The op was rejected by the server: nobody will receive it.</summary>
    public void Cancel(ulong seq)
    {
        int slot = (int)(seq & (ulong)_mask);
        if (Volatile.Read(ref _seqs[slot]) == seq)
        {
            Volatile.Write(ref _remaining[slot], 0);
        }
    }

    /// <summary>Deliveries still outstanding for the ops up to <paramref name="lastSeq"/> that the ring still holds.</summary>
    public long Outstanding(ulong lastSeq)
    {
        long missing = 0;
        ulong first = lastSeq >= (ulong)_seqs.Length ? lastSeq - (ulong)_seqs.Length + 1 : 1;
        for (ulong seq = first; seq <= lastSeq; seq++)
        {
            int slot = (int)(seq & (ulong)_mask);
            if (Volatile.Read(ref _seqs[slot]) == seq)
            {
                missing += Math.Max(0, Volatile.Read(ref _remaining[slot]));
            }
        }

        return missing;
    }
}
