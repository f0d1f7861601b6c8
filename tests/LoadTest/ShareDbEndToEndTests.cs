using System.Diagnostics;
using Collab.LoadTest.Hosting;
using Collab.LoadTest.Reporting;
using Collab.LoadTest.Scenarios;

namespace Collab.LoadTest.Tests;

/// <summary>
/// The ShareDB client mode against a real ShareDB 7 server: node running loadtest/peers/sharedb-server.js, started
/// by the tool's own --spawn-server (packages from loadtest/peers/package-lock.json; the test runs <c>npm ci</c> there
/// when they are missing, as scripts/install-test-deps.sh does).
/// </summary>
[Trait("Category", "Slow")]
public sealed class ShareDbEndToEndTests
{
    private static readonly SemaphoreSlim s_install = new(1, 1);

    [Fact]
    public async Task Small_rooms_on_sharedb_every_op_acknowledged_delivered_and_converged()
    {
        RunReport report = await RunAsync("small", "--docs", "3", "--clients", "3", "--rate", "20", "--duration", "1", "--warmup", "0.3", "--verify", "full");

        Assert.Equal("sharedb", report.Target);
        Assert.Equal("one-in-flight", report.Setup.SubmitMode); // ShareDB's client discipline is the default
        Assert.Equal("memory", report.Setup.Storage);
        StepReport step = Assert.Single(report.Steps);
        Assert.True(step.Ack.Count > 0);
        Assert.Equal(0, step.UnackedAfterDrain);
        Assert.Equal(0, step.BacklogAfterDrain);
        Assert.Equal(0, step.BroadcastsMissingAfterDrain);
        Assert.Equal(step.Ack.Count * 2, step.Broadcast.Count); // every op reached the two other clients of its document
        Assert.Empty(step.Errors);
        Assert.True(double.IsFinite(step.Server.CpuPercent)); // from /proc of the spawned node process
        Assert.NotNull(report.Convergence);
        Assert.True(report.Convergence.Converged, string.Join("; ", report.Convergence.Examples));
        Assert.Equal(9, report.Convergence.ReplicasCompared); // every client's text equals ShareDB's snapshot
        Assert.Empty(report.Errors);
    }

    [Fact]
    public async Task Big_room_with_readers_counts_every_broadcast_on_sharedb()
    {
        RunReport report = await RunAsync("big", "--clients", "6", "--writers", "2", "--rate", "30", "--duration", "1", "--warmup", "0.2", "--verify", "full");

        StepReport step = Assert.Single(report.Steps);
        Assert.Equal(2, step.Writers);
        Assert.True(step.Ack.Count > 0);
        Assert.Equal(step.Ack.Count * 5, step.Broadcast.Count);
        Assert.Equal(0, step.UnackedAfterDrain);
        Assert.True(report.Convergence!.Converged, string.Join("; ", report.Convergence.Examples));
        Assert.Equal(6, report.Convergence.ReplicasCompared);
        Assert.Empty(report.Errors);
    }

    [Fact]
    public async Task Ping_mode_on_sharedb_answers_every_slot_with_its_pong()
    {
        RunReport report = await RunAsync("small", "--docs", "2", "--clients", "3", "--rate", "20", "--duration", "1", "--warmup", "0.3", "--submit", "ping");

        StepReport step = Assert.Single(report.Steps);
        Assert.Equal(0, step.Broadcast.Count);
        Assert.Equal(0, step.UnackedAfterDrain);
        Assert.Equal(Math.Round(step.OfferedOpsPerSec), step.Ack.Count);
        Assert.Empty(report.Errors);
    }

    [Fact]
    public async Task Reconnect_storm_on_sharedb_resumes_by_src_and_loses_nothing()
    {
        RunReport report = await RunAsync("storm", "--docs", "4", "--clients", "3", "--rate", "40", "--duration", "2", "--warmup", "0.2", "--storm-at", "0.5", "--reconnect-delay", "0");

        Assert.NotNull(report.Storm);
        Assert.Equal(12, report.Storm.ClientsDropped);
        Assert.Equal(12, report.Storm.ClientsResumed);
        StepReport step = Assert.Single(report.Steps);
        Assert.Equal(0, step.UnackedAfterDrain);
        Assert.Equal(0, step.BroadcastsMissingAfterDrain);
        Assert.True(report.Convergence!.Converged, string.Join("; ", report.Convergence.Examples));
    }

    [Fact]
    public async Task Idle_sharedb_connections_report_server_memory_from_proc()
    {
        RunReport report = await RunAsync("idle", "--connections", "40", "--duration", "0.5", "--warmup", "0");

        Assert.NotNull(report.Idle);
        Assert.Equal(40, report.Idle.Connections);
        Assert.True(report.Idle.ServerRssHeldMb > 0);
        Assert.Empty(report.Errors);
    }

    [Fact]
    public async Task Comparison_table_puts_both_servers_and_their_medians_side_by_side()
    {
        RunReport sharedb = await RunAsync("small", "--docs", "2", "--clients", "2", "--rate", "10", "--duration", "0.5", "--warmup", "0.2");
        RunReport again = await RunAsync("small", "--docs", "2", "--clients", "2", "--rate", "10", "--duration", "0.5", "--warmup", "0.2");

        // Through the JSON files, as `compare` reads them: a report read back keeps its steps.
        string directory = Path.Combine(Path.GetTempPath(), "collab-lt-compare-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        RunReport[] saved;
        try
        {
            saved = [.. new[] { sharedb, again, sharedb with { Target = "collab" } }.Select((r, i) =>
            {
                string path = Path.Combine(directory, $"{i}.json");
                JsonReport.Write(r, path);
                return JsonReport.Read(path);
            })];
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }

        Assert.All(saved, static r => Assert.Single(r.Steps));
        string table = ComparisonReport.Render(saved, markdown: true);
        Assert.Contains("| sharedb | small | rate=10/s | 1 |", table, StringComparison.Ordinal);
        Assert.Contains("| sharedb | small | rate=10/s | median |", table, StringComparison.Ordinal);
        Assert.Contains("| collab | small | rate=10/s | 1 |", table, StringComparison.Ordinal);
        Assert.DoesNotContain("| collab | small | rate=10/s | median |", table, StringComparison.Ordinal);
    }

    private static async Task<RunReport> RunAsync(string scenario, params string[] args)
    {
        await EnsureInstalledAsync();
        string results = Path.Combine(Path.GetTempPath(), "collab-lt-sharedb-" + Guid.NewGuid().ToString("N")[..8]);
        LoadTestOptions options = LoadTestOptions.Parse(
            [scenario, "--target", "sharedb", "--spawn-server", "--server-cpus", "none", "--out-dir", results, "--quiet", "--drain", "10", "--init-len", "8", .. args]);
        try
        {
            return await new ScenarioRunner(options, TextWriter.Null).RunAsync("test", CancellationToken.None);
        }
        finally
        {
            try
            {
                Directory.Delete(results, recursive: true);
            }
            catch (IOException)
            {
                // Only the spawned server's log is there.
            }
        }
    }

    private static async Task EnsureInstalledAsync()
    {
        string script = ServerProcess.ShareDbServerPath();
        string directory = Path.GetDirectoryName(script)!;
        await s_install.WaitAsync();
        try
        {
            if (File.Exists(Path.Combine(directory, "node_modules", "sharedb", "package.json")))
            {
                return;
            }

            var start = new ProcessStartInfo("npm", "ci --no-audit --no-fund") { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
            using Process process = Process.Start(start) ?? throw new InvalidOperationException("could not start npm");
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
            Assert.True(process.ExitCode == 0, "npm ci failed: " + await stdout + await stderr);
        }
        finally
        {
            s_install.Release();
        }
    }
}
