using System.Text.RegularExpressions;
using Collab.LoadTest.Reporting;
using Collab.LoadTest.Scenarios;
using Collab.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Collab.LoadTest.Tests;

/// <summary>The generator against a real server in this process: every op acknowledged, delivered and converged.</summary>
[Trait("Category", "Slow")]
public sealed partial class EndToEndTests
{
    [Fact]
    public async Task Small_rooms_run_acknowledges_delivers_and_converges()
    {
        await using var server = await InProcessServer.StartAsync();
        RunReport report = await RunAsync("small", server, "--docs", "3", "--clients", "3", "--rate", "20", "--duration", "1", "--warmup", "0.3", "--verify", "full");

        StepReport step = Assert.Single(report.Steps);
        Assert.Equal(180, step.TargetOpsPerSec);
        Assert.True(step.Ack.Count > 0);
        Assert.Equal(step.Ack.Count * 2, step.Broadcast.Count); // every op reaches the two other clients of its document
        Assert.Equal(0, step.UnackedAfterDrain);
        Assert.Equal(0, step.BroadcastsMissingAfterDrain);
        Assert.Empty(step.Errors);
        Assert.NotNull(report.Convergence);
        Assert.True(report.Convergence.Converged, string.Join("; ", report.Convergence.Examples));
        Assert.Equal(9, report.Convergence.ReplicasCompared);
        Assert.True(report.TimeSeries.Count > 0);
        Assert.Empty(report.Errors);
    }

    [Fact]
    public async Task Rich_text_run_creates_rich_documents_acknowledges_delivers_and_converges()
    {
        await using var server = await InProcessServer.StartAsync();
        RunReport report = await RunAsync("small", server, "--type", "rich-text", "--docs", "3", "--clients", "3", "--rate", "20", "--duration", "1.5", "--warmup", "0.3", "--verify", "full");

        Assert.Equal("rich-text", report.Setup.DocumentType);
        StepReport step = Assert.Single(report.Steps);
        Assert.True(step.Ack.Count > 50, $"{step.Ack.Count} acks");
        Assert.Equal(step.Ack.Count * 2, step.Broadcast.Count);
        Assert.Equal(0, step.UnackedAfterDrain);
        Assert.Equal(0, step.BroadcastsMissingAfterDrain);
        Assert.Empty(step.Errors);
        Assert.NotNull(report.Convergence);
        Assert.True(report.Convergence.Converged, string.Join("; ", report.Convergence.Examples));
        Assert.Equal(9, report.Convergence.ReplicasCompared); // every client's rich replica equals the server's snapshot
        Assert.Empty(report.Errors);
    }

    [Fact]
    public async Task Rich_text_clients_resume_after_a_storm_and_converge()
    {
        // Pending rich ops are resent with their original bytes and base after the reconnect, and tracked through the catch-up.
        await using var server = await InProcessServer.StartAsync();
        RunReport report = await RunAsync("storm", server, "--type", "rich-text", "--docs", "3", "--clients", "3", "--rate", "40", "--duration", "2", "--warmup", "0.2", "--storm-at", "0.5", "--reconnect-delay", "0", "--verify", "full");

        Assert.Equal(9, report.Storm!.ClientsResumed);
        StepReport step = Assert.Single(report.Steps);
        Assert.Equal(0, step.UnackedAfterDrain);
        Assert.True(report.Convergence!.Converged, string.Join("; ", report.Convergence.Examples));
        Assert.Equal(9, report.Convergence.ReplicasCompared);
    }

    [Fact]
    public async Task One_in_flight_clients_with_readers_converge_too()
    {
        await using var server = await InProcessServer.StartAsync();
        RunReport report = await RunAsync("big", server, "--clients", "6", "--writers", "2", "--rate", "30", "--duration", "1", "--warmup", "0.2", "--submit", "one-in-flight");

        StepReport step = Assert.Single(report.Steps);
        Assert.Equal(2, step.Writers);
        Assert.Equal(step.Ack.Count * 5, step.Broadcast.Count);
        Assert.True(report.Convergence!.Converged, string.Join("; ", report.Convergence.Examples));
        Assert.Equal(1, report.Convergence.ReplicasCompared);
        Assert.Equal(6, report.Convergence.ClientsChecked);
    }

    [Fact]
    public async Task Ping_mode_counts_every_pong_as_the_slots_answer_and_changes_no_document()
    {
        await using var server = await InProcessServer.StartAsync();
        RunReport report = await RunAsync("small", server, "--docs", "2", "--clients", "3", "--rate", "20", "--duration", "1", "--warmup", "0.3", "--submit", "ping");

        Assert.Equal("ping", report.Setup.SubmitMode);
        StepReport step = Assert.Single(report.Steps);
        Assert.True(step.Ack.Count > 0);
        Assert.Equal(0, step.Broadcast.Count); // no op was submitted, so nothing was broadcast
        // Every slot of the window was answered (late Pongs arrive during the drain, which waits for them).
        Assert.Equal(0, step.UnackedAfterDrain);
        Assert.Equal(Math.Round(step.OfferedOpsPerSec), step.Ack.Count);
        Assert.Empty(step.Errors);
        Assert.True(report.Convergence!.Converged, string.Join("; ", report.Convergence.Examples));
        Assert.Empty(report.Errors);
    }

    [Fact]
    public async Task Reconnect_storm_resumes_every_client_and_loses_nothing()
    {
        await using var server = await InProcessServer.StartAsync();
        RunReport report = await RunAsync("storm", server, "--docs", "4", "--clients", "3", "--rate", "40", "--duration", "2", "--warmup", "0.2", "--storm-at", "0.5", "--reconnect-delay", "0");

        Assert.NotNull(report.Storm);
        Assert.Equal(12, report.Storm.ClientsDropped);
        Assert.Equal(12, report.Storm.ClientsResumed);
        StepReport step = Assert.Single(report.Steps);
        Assert.Equal(12, step.Reconnects);
        Assert.Equal(0, step.UnackedAfterDrain);
        Assert.Equal(0, step.BroadcastsMissingAfterDrain);
        Assert.True(report.Convergence!.Converged, string.Join("; ", report.Convergence.Examples));
    }

    [Fact]
    public async Task Idle_run_reports_connections_and_server_memory()
    {
        await using var server = await InProcessServer.StartAsync();
        RunReport report = await RunAsync("idle", server, "--connections", "50", "--duration", "0.5", "--warmup", "0", "--source-ips", "2");

        Assert.NotNull(report.Idle);
        Assert.Equal(50, report.Idle.Connections);
        Assert.Equal(5, report.Idle.Documents);
        // The server's gauge lives in prometheus-net's process-wide registry: in-process servers of tests running in
        // parallel (and the scrape's own HTTP connection) count too, so all that is certain is that ours are there.
        Assert.InRange(report.Idle.ServerConnectionsOpen, 50, 10_000);
        Assert.True(report.Idle.ServerRssAfterConnectMb > 0 && report.Idle.ServerRssHeldMb > 0);
        Assert.Equal(0.5, report.Idle.HeldSeconds);
        Assert.Contains(report.Findings, static f => f.StartsWith("idle: held only", StringComparison.Ordinal));
        Assert.Empty(report.Steps);
        Assert.Null(report.Convergence);
    }

    [Fact]
    public async Task Unreachable_server_fails_every_connection_and_says_so()
    {
        RunReport report = await new ScenarioRunner(
                LoadTestOptions.Parse(["small", "--url", "ws://127.0.0.1:1/ws", "--docs", "2", "--clients", "1", "--quiet"]),
                TextWriter.Null)
            .RunAsync("test", CancellationToken.None);

        Assert.Equal(2, report.Connect!.Failed);
        Assert.Equal(2, report.Errors["connect"]);
        Assert.Contains(report.Findings, static f => f.Contains("No client could connect", StringComparison.Ordinal));
    }

    private static Task<RunReport> RunAsync(string scenario, InProcessServer server, params string[] args)
    {
        LoadTestOptions options = LoadTestOptions.Parse([scenario, "--url", server.WebSocketUri.ToString(), "--quiet", "--drain", "10", "--init-len", "8", .. args]);
        return new ScenarioRunner(options, TextWriter.Null).RunAsync("test", CancellationToken.None);
    }

    /// <summary>The real server (SQLite store in a temp directory) on a free port in this process.</summary>
    private sealed partial class InProcessServer : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly string _dataDirectory;

        private InProcessServer(WebApplication app, string dataDirectory, Uri uri)
        {
            _app = app;
            _dataDirectory = dataDirectory;
            WebSocketUri = uri;
        }

        public Uri WebSocketUri { get; }

        public static async Task<InProcessServer> StartAsync()
        {
            string dataDirectory = Path.Combine(Path.GetTempPath(), "collab-lt-test-" + Guid.NewGuid().ToString("N")[..8]);
            WebApplication app = CollabServerHost.Build(["--port", "0", "--data-dir", dataDirectory, "--Logging:LogLevel:Default=Warning"]);
            await app.StartAsync();
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            int port = int.Parse(PortPattern().Match(address).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            return new InProcessServer(app, dataDirectory, new Uri($"ws://127.0.0.1:{port}/ws"));
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
            try
            {
                Directory.Delete(_dataDirectory, recursive: true);
            }
            catch (IOException)
            {
                // SQLite may still hold the WAL for a moment; the temp directory is harmless.
            }
        }

        [GeneratedRegex(@":(\d+)/?$")]
        private static partial Regex PortPattern();
    }
}
