namespace Collab.LoadTest.Metrics;

/// <summary>
/// The current step's measurement interval [start, end) as timestamps. Latency counts for a step when the op was
/// scheduled inside it (so warm-up ops and the drain's stragglers are excluded); throughput counts acks and
/// deliveries that arrive inside it.
/// </summary>
internal sealed class MeasurementWindow
{
    private long _start = long.MaxValue;
    private long _end = long.MaxValue;

    public long Start => Volatile.Read(ref _start);

    public long End => Volatile.Read(ref _end);

    public void Set(long start, long end)
    {
        Volatile.Write(ref _end, end);
        Volatile.Write(ref _start, start);
    }

    public void Clear()
    {
        Volatile.Write(ref _start, long.MaxValue);
        Volatile.Write(ref _end, long.MaxValue);
    }

    public bool Contains(long timestamp) => timestamp >= Volatile.Read(ref _start) && timestamp < Volatile.Read(ref _end);
}
