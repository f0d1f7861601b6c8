using System.Diagnostics;

namespace Collab.LoadTest.Metrics;

/// <summary>
/// The generator's one time base: <see cref="Stopwatch"/> timestamps (CLOCK_MONOTONIC nanoseconds on Linux).
/// Every scheduled send time, receive time and window bound is such a timestamp.
/// </summary>
internal static class Clock
{
    public static long Now => Stopwatch.GetTimestamp();

    /// <summary>Timestamp ticks per second.</summary>
    public static long Frequency => Stopwatch.Frequency;

    public static long FromSeconds(double seconds) => (long)(seconds * Stopwatch.Frequency);

    public static double ToSeconds(long ticks) => (double)ticks / Stopwatch.Frequency;

    /// <summary>Ticks to whole microseconds (the histograms' unit), rounded to nearest.</summary>
    public static long ToMicros(long ticks) => Stopwatch.Frequency == 1_000_000_000
        ? (ticks + 500) / 1000
        : (long)Math.Round(ticks * 1_000_000.0 / Stopwatch.Frequency);
}
