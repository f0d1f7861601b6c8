using System.Globalization;
using System.Text;
using Collab.LoadTest.Metrics;

namespace Collab.LoadTest.Reporting;

/// <summary>
/// Several runs in one table: one row per server, step and run, then the median of each column over a server's
/// runs of the same step. This is how Collab and ShareDB, measured by the same generator in one sitting, read side
/// by side (<c>--target collab,sharedb --repeat N</c>, or <c>compare</c> over saved reports).
/// </summary>
internal static class ComparisonReport
{
    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    /// <summary>The server as the table names it: the target and the arguments its spawned server got.</summary>
    public static string ServerLabel(RunReport report)
    {
        string args = string.Join(' ', report.Setup.ServerArgs.Select(static a => a.TrimStart('-')));
        string mode = report.Setup.SubmitMode == "ping" ? " (ping)" : string.Empty;
        return args.Length == 0 ? report.Target + mode : $"{report.Target} {args}{mode}";
    }

    public static string Render(IReadOnlyList<RunReport> reports, bool markdown)
    {
        var sb = new StringBuilder();
        IEnumerable<string> shapes = reports.Select(static r => $"{r.Scenario} {r.Setup.Docs:N0} x {r.Setup.ClientsPerDoc} ({r.Setup.WritersPerDoc} writing), {r.Setup.DocumentType}, {r.Setup.SubmitMode}{(r.Setup.Nice != 0 ? $", nice {r.Setup.Nice}" : string.Empty)}").Distinct();
        sb.AppendLine(string.Create(s_inv, $"{reports.Count} runs: {string.Join("; ", shapes)}"));

        var load = new TextTable(
            "server", "scenario", "step", "run", "offered/s", "acked/s", "ack p50", "p90", "p99", "p99.9", "bcast p50", "p99",
            "deliv/s", "srv cpu", "gen cpu", "lag p99", "load avg", "unacked", "errors", "SLO");
        var groups = reports
            .SelectMany(static r => r.Steps.Select(s => (Label: ServerLabel(r), Report: r, Step: s)))
            .GroupBy(static x => (x.Label, x.Report.Scenario, x.Step.Name));
        bool any = false;
        foreach (var group in groups)
        {
            any = true;
            var runs = group.ToList();
            for (int i = 0; i < runs.Count; i++)
            {
                StepReport s = runs[i].Step;
                load.Add(
                    group.Key.Label, group.Key.Scenario, group.Key.Name, (i + 1).ToString(s_inv), ConsoleReport.N(s.OfferedOpsPerSec), ConsoleReport.N(s.AckedOpsPerSec),
                    ConsoleReport.Ms(Of(s.Ack, static l => l.P50)), ConsoleReport.Ms(Of(s.Ack, static l => l.P90)), ConsoleReport.Ms(Of(s.Ack, static l => l.P99)), ConsoleReport.Ms(Of(s.Ack, static l => l.P999)),
                    ConsoleReport.Ms(Of(s.Broadcast, static l => l.P50)), ConsoleReport.Ms(Of(s.Broadcast, static l => l.P99)), ConsoleReport.N(s.DeliveriesPerSec),
                    ConsoleReport.Pct(s.Server.CpuPercent), ConsoleReport.Pct(s.Generator.CpuPercent), ConsoleReport.Ms(s.SendLag.P99),
                    LoadAverage(s.LoadAverage), s.UnackedAfterDrain.ToString(s_inv), s.Errors.Values.Sum().ToString("N0", s_inv), s.MeetsSlo ? "ok" : "MISS");
            }

            if (runs.Count > 1)
            {
                double M(Func<StepReport, double> value) => Median(runs.Select(r => value(r.Step)));
                load.Add(
                    group.Key.Label, group.Key.Scenario, group.Key.Name, "median", ConsoleReport.N(M(static s => s.OfferedOpsPerSec)), ConsoleReport.N(M(static s => s.AckedOpsPerSec)),
                    ConsoleReport.Ms(M(static s => Of(s.Ack, static l => l.P50))), ConsoleReport.Ms(M(static s => Of(s.Ack, static l => l.P90))), ConsoleReport.Ms(M(static s => Of(s.Ack, static l => l.P99))), ConsoleReport.Ms(M(static s => Of(s.Ack, static l => l.P999))),
                    ConsoleReport.Ms(M(static s => Of(s.Broadcast, static l => l.P50))), ConsoleReport.Ms(M(static s => Of(s.Broadcast, static l => l.P99))), ConsoleReport.N(M(static s => s.DeliveriesPerSec)),
                    ConsoleReport.Pct(M(static s => s.Server.CpuPercent)), ConsoleReport.Pct(M(static s => s.Generator.CpuPercent)), ConsoleReport.Ms(M(static s => s.SendLag.P99)),
                    ConsoleReport.F2(M(static s => s.LoadAverage.Length == 0 ? double.NaN : s.LoadAverage.Average())),
                    ConsoleReport.N(M(static s => s.UnackedAfterDrain)), ConsoleReport.N(M(static s => s.Errors.Values.Sum())),
                    string.Create(s_inv, $"{runs.Count(static r => r.Step.MeetsSlo)}/{runs.Count} ok"));
            }
        }

        if (any)
        {
            sb.Append(load.Render(markdown));
            sb.AppendLine("latencies in ms from the scheduled send time (-: no op of the window acknowledged; medians over the runs that have one); srv/gen cpu: 100 % = one core; load avg: the machine's 1-min load average at the window's start-end");
        }

        var idle = new TextTable("server", "run", "connections", "connect s", "KiB/conn after connect", "KiB/conn held", "held s", "load avg");
        bool anyIdle = false;
        foreach (var group in reports.Where(static r => r.Idle is not null).GroupBy(ServerLabel))
        {
            anyIdle = true;
            var runs = group.Select(static r => r.Idle!).ToList();
            for (int i = 0; i < runs.Count; i++)
            {
                IdleReport r = runs[i];
                idle.Add(group.Key, (i + 1).ToString(s_inv), r.Connections.ToString("N0", s_inv), ConsoleReport.F2(r.ConnectSeconds),
                    ConsoleReport.F2(r.ServerRssPerConnectionAfterConnectKb), ConsoleReport.F2(r.ServerRssPerConnectionKb), r.HeldSeconds.ToString("F0", s_inv), LoadAverage(r.LoadAverage));
            }

            if (runs.Count > 1)
            {
                idle.Add(group.Key, "median", ConsoleReport.N(Median(runs.Select(static r => (double)r.Connections))), ConsoleReport.F2(Median(runs.Select(static r => r.ConnectSeconds))),
                    ConsoleReport.F2(Median(runs.Select(static r => r.ServerRssPerConnectionAfterConnectKb))), ConsoleReport.F2(Median(runs.Select(static r => r.ServerRssPerConnectionKb))),
                    ConsoleReport.F2(Median(runs.Select(static r => r.HeldSeconds))), ConsoleReport.F2(Median(runs.Select(static r => r.LoadAverage.Length == 0 ? double.NaN : r.LoadAverage.Average()))));
            }
        }

        if (anyIdle)
        {
            sb.AppendLine();
            sb.Append(idle.Render(markdown));
        }

        return sb.ToString();
    }

    /// <summary>The median of the finite values (NaN when there are none).</summary>
    public static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Where(double.IsFinite).Order()];
        return sorted.Length == 0 ? double.NaN
            : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2]
            : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>A latency figure, or NaN when nothing was measured (an empty histogram's zeros are not latencies).</summary>
    internal static double Of(LatencySummary latency, Func<LatencySummary, double> value) => latency.Count == 0 ? double.NaN : value(latency);

    private static string LoadAverage(double[] load) =>
        load.Length == 2 ? string.Create(s_inv, $"{load[0]:F1}-{load[1]:F1}") : "-";
}
