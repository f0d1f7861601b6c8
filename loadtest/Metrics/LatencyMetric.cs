using HdrHistogram;

namespace Collab.LoadTest.Metrics;

/// <summary>Percentiles of one latency distribution, in milliseconds.</summary>
internal sealed record LatencySummary(long Count, double P50, double P90, double P99, double P999, double Max, double Mean)
{
    public static LatencySummary Empty { get; } = new(0, 0, 0, 0, 0, 0, 0);

    /// <summary>Summarises a histogram of microsecond values.</summary>
    public static LatencySummary From(HistogramBase histogram)
    {
        if (histogram.TotalCount == 0)
        {
            return Empty;
        }

        return new LatencySummary(
            histogram.TotalCount,
            Ms(histogram.GetValueAtPercentile(50)),
            Ms(histogram.GetValueAtPercentile(90)),
            Ms(histogram.GetValueAtPercentile(99)),
            Ms(histogram.GetValueAtPercentile(99.9)),
            Ms(histogram.GetMaxValue()),
            Math.Round(histogram.GetMean() / 1000.0, 3));
    }

    private static double Ms(long micros) => Math.Round(micros / 1000.0, 3);
}

/// <summary>
/// One latency distribution recorded from many threads without locks (HdrHistogram <see cref="Recorder"/>s over
/// concurrent histograms, 3 significant digits, 1 µs to 10 min). Two views: every value, taken once per second for
/// the live progress and the chart; and only the values of ops scheduled inside the measurement window, taken at
/// the end of a step for its report.
/// </summary>
internal sealed class LatencyMetric
{
    /// <summary>Largest value tracked: ten minutes in microseconds. Larger values are clamped (and still counted).</summary>
    public const long HighestMicros = 600_000_000;

    private readonly Recorder _all = NewRecorder();
    private readonly Recorder _window = NewRecorder();
    private HistogramBase? _allSpare;

    /// <summary>Records <paramref name="micros"/>; <paramref name="inWindow"/> also adds it to the step's distribution.</summary>
    public void Record(long micros, bool inWindow)
    {
        long value = Math.Clamp(micros, 1, HighestMicros);
        _all.RecordValue(value);
        if (inWindow)
        {
            _window.RecordValue(value);
        }
    }

    /// <summary>Summary of everything recorded since the previous call.</summary>
    public LatencySummary TakeInterval()
    {
        HistogramBase interval = _allSpare is null ? _all.GetIntervalHistogram() : _all.GetIntervalHistogram(_allSpare);
        LatencySummary summary = LatencySummary.From(interval);
        _allSpare = interval;
        return summary;
    }

    /// <summary>The in-window distribution since the previous call (the caller owns the returned histogram).</summary>
    public HistogramBase TakeWindow() => _window.GetIntervalHistogram();

    /// <summary>Drops in-window values recorded so far (a new step starts).</summary>
    public void ResetWindow() => _window.Reset();

    private static Recorder NewRecorder() =>
        new(1, HighestMicros, 3, (id, lowest, highest, digits) => new LongConcurrentHistogram(id, lowest, highest, digits));
}
