using System.Collections.Concurrent;

namespace Collab.LoadTest.Metrics;

/// <summary>
/// Monotonic event counters shared by every simulated client (updated with <see cref="Interlocked"/>); the sampler
/// reads them once per second and a step's report takes differences between two <see cref="Snapshot"/>s.
/// </summary>
internal sealed class RunCounters
{
    /// <summary>Ops the schedule asked for (sent at once, or backlogged while disconnected or waiting one-in-flight).</summary>
    public long Offered;

    /// <summary>Ops whose scheduled send time fell in the measurement window.</summary>
    public long OfferedInWindow;

    public long Acked;

    /// <summary>Acks that arrived inside the measurement window (acknowledged throughput).</summary>
    public long AckedInWindow;

    /// <summary>Ops of other generator clients received in Ops messages.</summary>
    public long Delivered;

    public long DeliveredInWindow;

    public long MessagesReceived;

    public long BytesReceived;

    public long Disconnects;

    public long Reconnects;

    public long Resends;

    /// <summary>Acks for ops already acknowledged (a resend after a reconnect); harmless by the protocol.</summary>
    public long StaleAcks;

    /// <summary>ShareDB: ops received again at a version the client already has (its protocol sends such repeats; they are ignored).</summary>
    public long DuplicateDeliveries;

    /// <summary>ShareDB: fetches for ops missed (an op from the future arrived), as its client does.</summary>
    public long CatchUpFetches;

    public CounterSnapshot Snapshot() => new(
        Interlocked.Read(ref Offered),
        Interlocked.Read(ref OfferedInWindow),
        Interlocked.Read(ref Acked),
        Interlocked.Read(ref AckedInWindow),
        Interlocked.Read(ref Delivered),
        Interlocked.Read(ref DeliveredInWindow),
        Interlocked.Read(ref MessagesReceived),
        Interlocked.Read(ref BytesReceived),
        Interlocked.Read(ref Disconnects),
        Interlocked.Read(ref Reconnects),
        Interlocked.Read(ref Resends),
        Interlocked.Read(ref StaleAcks),
        Interlocked.Read(ref DuplicateDeliveries),
        Interlocked.Read(ref CatchUpFetches));
}

/// <summary>A consistent-enough copy of <see cref="RunCounters"/> (each field read atomically).</summary>
internal readonly record struct CounterSnapshot(
    long Offered,
    long OfferedInWindow,
    long Acked,
    long AckedInWindow,
    long Delivered,
    long DeliveredInWindow,
    long MessagesReceived,
    long BytesReceived,
    long Disconnects,
    long Reconnects,
    long Resends,
    long StaleAcks,
    long DuplicateDeliveries,
    long CatchUpFetches)
{
    public static CounterSnapshot operator -(CounterSnapshot a, CounterSnapshot b) => new(
        a.Offered - b.Offered,
        a.OfferedInWindow - b.OfferedInWindow,
        a.Acked - b.Acked,
        a.AckedInWindow - b.AckedInWindow,
        a.Delivered - b.Delivered,
        a.DeliveredInWindow - b.DeliveredInWindow,
        a.MessagesReceived - b.MessagesReceived,
        a.BytesReceived - b.BytesReceived,
        a.Disconnects - b.Disconnects,
        a.Reconnects - b.Reconnects,
        a.Resends - b.Resends,
        a.StaleAcks - b.StaleAcks,
        a.DuplicateDeliveries - b.DuplicateDeliveries,
        a.CatchUpFetches - b.CatchUpFetches);
}

/// <summary>
/// Errors by kind ("connect", "server:OVERLOADED", "gap", ...). Errors are rare, so a concurrent dictionary is
/// cheap enough, and the first few messages of each kind are kept as samples for the report.
/// </summary>
internal sealed class ErrorCounters
{
    private const int SamplesPerKind = 3;

    private readonly ConcurrentDictionary<string, long> _counts = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _samples = new(StringComparer.Ordinal);
    private long _total;

    public long Total => Interlocked.Read(ref _total);

    public void Add(string kind, string? detail = null)
    {
        _counts.AddOrUpdate(kind, 1, static (_, n) => n + 1);
        Interlocked.Increment(ref _total);
        if (detail is not null)
        {
            ConcurrentQueue<string> samples = _samples.GetOrAdd(kind, static _ => new ConcurrentQueue<string>());
            if (samples.Count < SamplesPerKind)
            {
                samples.Enqueue(detail);
            }
        }
    }

    public Dictionary<string, long> Counts() => new(_counts, StringComparer.Ordinal);

    public Dictionary<string, string[]> Samples() =>
        _samples.ToDictionary(static p => p.Key, static p => p.Value.ToArray(), StringComparer.Ordinal);

    /// <summary>Per-kind differences since <paramref name="before"/> (kinds that did not change are left out).</summary>
    public Dictionary<string, long> Since(Dictionary<string, long> before)
    {
        var delta = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach ((string kind, long count) in _counts)
        {
            long diff = count - before.GetValueOrDefault(kind);
            if (diff != 0)
            {
                delta[kind] = diff;
            }
        }

        return delta;
    }
}
