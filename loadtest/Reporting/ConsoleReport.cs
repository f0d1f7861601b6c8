using System.Globalization;
using System.Text;

namespace Collab.LoadTest.Reporting;

/// <summary>The human-readable report: NBomber-style step table, then convergence, storm/idle figures, errors and findings.</summary>
internal static class ConsoleReport
{
    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    /// <summary>One line summarising a finished step (printed as the run goes).</summary>
    public static string StepLine(StepReport s) => string.Create(
        s_inv,
        $"step {s.Name}: offered {s.OfferedOpsPerSec:N0}/s acked {s.AckedOpsPerSec:N0}/s | ack p50 {Ms(L(s.Ack, static l => l.P50))} p99 {Ms(L(s.Ack, static l => l.P99))} p99.9 {Ms(L(s.Ack, static l => l.P999))} max {Ms(L(s.Ack, static l => l.Max))} ms | " +
        $"bcast p50 {Ms(L(s.Broadcast, static l => l.P50))} p99 {Ms(L(s.Broadcast, static l => l.P99))} ms, {s.DeliveriesPerSec:N0} deliveries/s | gen {s.Generator.CpuPercent:F0}% srv {s.Server.CpuPercent:F0}% | " +
        $"unacked {s.UnackedAfterDrain} missing {s.BroadcastsMissingAfterDrain} | {(s.MeetsSlo ? "SLO ok" : "SLO MISSED")}");

    public static string Render(RunReport report, string? jsonPath, string? chartPath)
    {
        var sb = new StringBuilder();
        RunSetup setup = report.Setup;
        string title = $" collab load test - {report.Target} - {report.Scenario} - {setup.Docs:N0} docs x {setup.ClientsPerDoc} clients ({setup.WritersPerDoc} writing) - {setup.DocumentType} - {setup.SubmitMode} - verify {setup.Verify} ";
        sb.AppendLine(new string('=', 8) + title + new string('=', Math.Max(8, 140 - title.Length)));
        sb.AppendLine(string.Create(s_inv, $"servers: {string.Join(", ", setup.Servers)}{(setup.SpawnedServer ? $" (spawned, CPUs {setup.ServerCpus ?? "any"}, {setup.Storage}{(setup.ServerArgs.Length > 0 ? ", " + string.Join(' ', setup.ServerArgs) : string.Empty)}{(setup.Nice != 0 ? $", nice {setup.Nice}" : string.Empty)})" : string.Empty)}; generator CPUs {setup.GeneratorCpus}; {setup.Runtime}; {setup.MachineCores} cores"));
        if (report.Connect is { } connect)
        {
            sb.AppendLine(string.Create(s_inv, $"connect: {connect.Connected:N0}/{connect.Requested:N0} clients in {connect.Seconds:F2} s, {connect.Failed:N0} failed"));
        }

        if (report.Steps.Count > 0)
        {
            sb.AppendLine();
            var table = new TextTable(
                "step", "target/s", "offered/s", "acked/s", "ack p50", "p90", "p99", "p99.9", "max",
                "bcast p50", "p99", "p99.9", "max", "deliv/s", "gen cpu", "lag p99", "srv cpu", "srv rss", "errors", "SLO");
            foreach (StepReport s in report.Steps)
            {
                table.Add(
                    s.Name, N(s.TargetOpsPerSec), N(s.OfferedOpsPerSec), N(s.AckedOpsPerSec),
                    Ms(L(s.Ack, static l => l.P50)), Ms(L(s.Ack, static l => l.P90)), Ms(L(s.Ack, static l => l.P99)), Ms(L(s.Ack, static l => l.P999)), Ms(L(s.Ack, static l => l.Max)),
                    Ms(L(s.Broadcast, static l => l.P50)), Ms(L(s.Broadcast, static l => l.P99)), Ms(L(s.Broadcast, static l => l.P999)), Ms(L(s.Broadcast, static l => l.Max)),
                    N(s.DeliveriesPerSec), Pct(s.Generator.CpuPercent), Ms(s.SendLag.P99), Pct(s.Server.CpuPercent),
                    double.IsNaN(s.Server.RssMb) ? "-" : string.Create(s_inv, $"{s.Server.RssMb:F0} MB"),
                    s.Errors.Values.Sum().ToString("N0", s_inv), s.MeetsSlo ? "ok" : "MISS");
            }

            sb.Append(table.Render());
            sb.AppendLine("latencies in ms from the scheduled send time (open loop; -: no op of the window answered); gen cpu = generator process (100 % = one core); lag = scheduler lateness (included in the latencies)");
            sb.AppendLine();
            var server = new TextTable("step", "committed/s", "frames/s", "frames/flush", "ops/batch", "commit mean", "srv ack mean", "msgs recv/s", "disconnects", "reconnects", "resends", "unacked", "backlog", "bcast missing", "drain s");
            foreach (StepReport s in report.Steps)
            {
                server.Add(
                    s.Name, N(s.Server.CommittedOpsPerSec), N(s.Server.FramesSentPerSec), F2(s.Server.FramesPerFlush), F2(s.Server.OpsPerStorageBatch),
                    Ms(s.Server.StorageCommitMeanMs), Ms(s.Server.SubmitAckMeanMs), N(s.MessagesReceivedPerSec),
                    s.Disconnects.ToString(s_inv), s.Reconnects.ToString(s_inv), s.Resends.ToString(s_inv),
                    s.UnackedAfterDrain.ToString(s_inv), s.BacklogAfterDrain.ToString(s_inv), s.BroadcastsMissingAfterDrain.ToString(s_inv), F2(s.DrainSeconds));
            }

            sb.Append(server.Render());
        }

        if (report.Storm is { } storm)
        {
            sb.AppendLine();
            sb.AppendLine(string.Create(s_inv, $"storm: {storm.ClientsDropped:N0} connections dropped (RST); {storm.ClientsResumed:N0} resumed; all live after {storm.AllResumedSeconds:F3} s"));
            sb.AppendLine(string.Create(s_inv, $"       per-client drop -> resumed: p50 {storm.ResumeTime.P50:F1} ms, p90 {storm.ResumeTime.P90:F1}, p99 {storm.ResumeTime.P99:F1}, max {storm.ResumeTime.Max:F1} ms; failed attempts {storm.FailedReconnectAttempts:N0}, resent ops {storm.Resends:N0}, duplicate acks {storm.StaleAcks:N0}"));
        }

        if (report.Idle is { } idle)
        {
            sb.AppendLine();
            sb.AppendLine(string.Create(s_inv, $"idle: {idle.Connections:N0} subscribed connections on {idle.Documents:N0} docs, connected in {idle.ConnectSeconds:F2} s ({idle.ConnectsPerSecond:N0}/s)"));
            sb.AppendLine(string.Create(s_inv, $"      server RSS {idle.ServerRssBaseMb:F1} MB before -> {idle.ServerRssAfterConnectMb:F1} MB connected ({idle.ServerRssPerConnectionAfterConnectKb:F2} KiB per connection) -> {idle.ServerRssHeldMb:F1} MB held {idle.HeldSeconds:F0} s (peak {idle.ServerPeakRssMb:F1} MB): {idle.ServerRssPerConnectionKb:F2} KiB per connection"));
            sb.AppendLine(string.Create(s_inv, $"      server CPU while connecting {idle.ServerCpuSecondsConnecting:F2} s; connections open (server) {idle.ServerConnectionsOpen:N0}; generator RSS {idle.GeneratorRssMb:F0} MB"));
        }

        if (report.Convergence is { } c)
        {
            sb.AppendLine();
            sb.AppendLine(string.Create(s_inv, $"convergence: {(c.Converged ? "OK" : c.Settled ? "FAILED" : "NOT REACHED (still draining)")} - {c.DocsConverged:N0}/{c.DocsChecked:N0} documents converged; {c.ClientsChecked:N0} clients checked (version, length, op hashes), {c.ReplicasCompared:N0} full-text replicas compared with the server snapshot"));
            if (!c.Converged)
            {
                sb.AppendLine(string.Create(s_inv, $"             behind {c.ClientsBehind}, text mismatch {c.ClientsMismatched}, with pending ops {c.ClientsWithPendingOps}, faulted {c.ClientsFaulted}, snapshot failures {c.CheckerFailures}"));
                foreach (string example in c.Examples)
                {
                    sb.AppendLine("             " + example);
                }
            }
        }

        sb.AppendLine();
        if (report.Errors.Count == 0)
        {
            sb.AppendLine("errors: none");
        }
        else
        {
            sb.AppendLine("errors:");
            foreach ((string kind, long count) in report.Errors.OrderByDescending(static e => e.Value))
            {
                string sample = report.ErrorSamples.TryGetValue(kind, out string[]? samples) && samples.Length > 0 ? $"  e.g. {samples[0]}" : string.Empty;
                sb.AppendLine(string.Create(s_inv, $"  {kind,-28} {count,10:N0}{sample}"));
            }
        }

        if (report.Findings.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("findings:");
            foreach (string finding in report.Findings)
            {
                sb.AppendLine("  - " + finding);
            }
        }

        sb.AppendLine();
        if (jsonPath is not null)
        {
            sb.AppendLine("json:  " + jsonPath);
        }

        if (chartPath is not null)
        {
            sb.AppendLine("chart: " + chartPath);
        }

        return sb.ToString();
    }

    /// <summary>A latency figure, NaN (shown "-") when no op of the window was answered.</summary>
    private static double L(Metrics.LatencySummary latency, Func<Metrics.LatencySummary, double> value) => ComparisonReport.Of(latency, value);

    internal static string N(double value) => double.IsFinite(value) ? value.ToString("N0", s_inv) : "-";

    internal static string F2(double value) => double.IsFinite(value) ? value.ToString("F2", s_inv) : "-";

    internal static string Ms(double value) => double.IsFinite(value) ? value.ToString(value >= 100 ? "F1" : "F3", s_inv) : "-";

    internal static string Pct(double value) => double.IsFinite(value) ? value.ToString("F0", s_inv) + " %" : "-";
}
