using System.Globalization;
using ScottPlot;
using ScottPlot.TickGenerators;

namespace Collab.LoadTest.Reporting;

/// <summary>
/// Latency over time (ack p50/p99, broadcast p99 per second, log scale) with the acknowledged throughput on the
/// right axis and the measured windows shaded: a reader sees at a glance whether latency was steady, and when a
/// storm or a ramp step hurt it.
/// </summary>
internal static class ChartWriter
{
    /// <summary>Writes the chart (PNG, or SVG for a .svg path); false when there is nothing to plot.</summary>
    public static bool Write(RunReport report, string path)
    {
        List<Sample> samples = report.TimeSeries;
        if (samples.Count == 0)
        {
            return false;
        }

        var plot = new Plot();
        double[] t = [.. samples.Select(static s => s.T)];
        foreach ((double start, double end) in MeasuredWindows(samples))
        {
            var span = plot.Add.HorizontalSpan(start, end);
            span.FillStyle.Color = Colors.Gray.WithAlpha(0.12);
            span.LineStyle.Width = 0;
        }

        AddLatency(plot, t, [.. samples.Select(static s => s.AckP50)], "ack p50", Colors.SteelBlue);
        AddLatency(plot, t, [.. samples.Select(static s => s.AckP99)], "ack p99", Colors.DarkBlue);
        if (samples.Any(static s => s.BroadcastP99 > 0))
        {
            AddLatency(plot, t, [.. samples.Select(static s => s.BroadcastP99)], "broadcast p99", Colors.OrangeRed);
        }

        var throughput = plot.Add.Scatter(t, [.. samples.Select(static s => s.AckedPerSec)]);
        throughput.LegendText = "acked ops/s (right)";
        throughput.Color = Colors.Green.WithAlpha(0.6);
        throughput.MarkerSize = 0;
        throughput.LineWidth = 1;
        throughput.Axes.YAxis = plot.Axes.Right;

        plot.Axes.Left.TickGenerator = new NumericAutomatic
        {
            MinorTickGenerator = new LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = static y => Math.Pow(10, y) is var ms && ms >= 1 ? ms.ToString("N0", CultureInfo.InvariantCulture) : ms.ToString("0.###", CultureInfo.InvariantCulture),
        };
        plot.Axes.Left.Label.Text = "latency (ms, log scale)";
        plot.Axes.Right.Label.Text = "acked ops/s";
        plot.Axes.Bottom.Label.Text = "time (s)";
        plot.Title($"collab load test: {report.Scenario} ({report.Setup.Docs} docs x {report.Setup.ClientsPerDoc} clients, {report.Setup.SubmitMode}) - shaded: measured windows");
        plot.ShowLegend(Alignment.UpperLeft);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        if (path.EndsWith(".svg", StringComparison.OrdinalIgnoreCase))
        {
            plot.SaveSvg(path, 1400, 700);
        }
        else
        {
            plot.SavePng(path, 1400, 700);
        }

        return true;
    }

    private static void AddLatency(Plot plot, double[] t, double[] ms, string label, Color color)
    {
        // Log scale by hand (ScottPlot 5 plots log10 values with log-spaced ticks); empty seconds are gaps.
        double[] y = [.. ms.Select(static v => v > 0 ? Math.Log10(v) : double.NaN)];
        var line = plot.Add.Scatter(t, y);
        line.LegendText = label;
        line.Color = color;
        line.MarkerSize = 3;
        line.LineWidth = 1.5f;
    }

    private static IEnumerable<(double Start, double End)> MeasuredWindows(List<Sample> samples)
    {
        double? start = null;
        double previous = 0;
        foreach (Sample s in samples)
        {
            bool measuring = s.Phase is "measure" or "storm";
            if (measuring && start is null)
            {
                start = previous;
            }
            else if (!measuring && start is not null)
            {
                yield return (start.Value, previous);
                start = null;
            }

            previous = s.T;
        }

        if (start is not null)
        {
            yield return (start.Value, previous);
        }
    }
}
