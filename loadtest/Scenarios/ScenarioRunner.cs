using System.Globalization;
using Collab.LoadTest.Client;
using Collab.LoadTest.Hosting;
using Collab.LoadTest.Metrics;
using Collab.LoadTest.Reporting;
using Collab.LoadTest.Scheduling;

namespace Collab.LoadTest.Scenarios;

/// <summary>
/// Runs one scenario end to end: start the server(s) if asked, connect the fleet, then either the idle measurement
/// or the load steps (warm-up, measured window, drain; a ramp stops after the first step that misses the SLO;
/// the storm drops every connection inside its window), then the convergence check, and fills the report.
/// </summary>
internal sealed class ScenarioRunner
{
    private readonly LoadTestOptions _options;
    private readonly TextWriter _console;

    public ScenarioRunner(LoadTestOptions options, TextWriter console)
    {
        _options = options;
        _console = console;
    }

    public async Task<RunReport> RunAsync(string commandLine, CancellationToken cancellationToken)
    {
        DateTime started = DateTime.UtcNow;
        long startedAt = Clock.Now;
        var spawned = new List<ServerProcess>();
        try
        {
            IReadOnlyList<Uri> servers = _options.Servers;
            if (_options.SpawnServer)
            {
                ServerProcess server = await ServerProcess.StartAsync(
                    new ServerLaunchOptions
                    {
                        Kind = _options.Target,
                        Cpus = _options.ServerCpus,
                        Nice = _options.Nice,
                        Command = _options.ServerCommand,
                        Postgres = _options.Postgres,
                        ExtraArgs = _options.ServerArgs,
                        LogDirectory = OutputPaths.Directory(_options),
                        KeepData = _options.KeepData,
                        Build = _options.BuildServer,
                    },
                    _console,
                    cancellationToken).ConfigureAwait(false);
                spawned.Add(server);
                servers = [server.WebSocketUri];
            }

            var report = new RunReport
            {
                Scenario = _options.Scenario.ToString().ToLowerInvariant(),
                Target = TargetName(_options.Target),
                Label = _options.Label,
                StartedUtc = started,
                CommandLine = commandLine,
                Setup = BuildSetup(servers, spawned.Count > 0),
            };

            // The management port answers on its own threads while client work saturates the server's pool; /metrics
            // on the WebSocket port queues behind that work (seconds under overload, finding 15).
            // ShareDB has no metrics endpoint: its CPU and memory come from /proc alone.
            IReadOnlyList<Uri> metrics = spawned.Count > 0
                ? [.. spawned.Select(static s => s.MetricsUri).OfType<Uri>()]
                : _options.MetricsUrls.Count > 0 ? _options.MetricsUrls
                : _options.Target == ServerKind.ShareDb ? [] : [.. servers.Select(MetricsScraper.MetricsUriFor)];
            using var scraper = new MetricsScraper(metrics);
            var probe = new ServerProbe([.. spawned.Select(static s => s.Pid), .. _options.ServerPids], scraper);
            var ctx = new RunContext(
                new ClientSettings
                {
                    Server = _options.Target,
                    SubmitMode = _options.Submit,
                    Document = _options.Document,
                    ReconnectMinDelay = TimeSpan.FromMilliseconds(_options.ReconnectDelayMs),
                    ConnectTimeout = TimeSpan.FromSeconds(_options.Scenario == ScenarioKind.Idle ? 120 : 30),
                },
                _options.Seed);
            string runId = Convert.ToHexString(BitConverter.GetBytes(Random.Shared.Next()))[..6].ToLowerInvariant();
            var fleet = new Fleet(ctx, _options, servers, runId);
            _console.WriteLine(Describe(report.Setup));

            // The idle baseline is taken before the first connection.
            ServerPoint baseline = await probe.SampleAsync(cancellationToken).ConfigureAwait(false);
            var sampler = new Sampler(ctx, () => fleet.LiveCount, probe, _options.Quiet ? null : _console);
            await using (sampler.ConfigureAwait(false))
            {
                sampler.Start();
                report.Connect = await fleet.ConnectAllAsync(cancellationToken).ConfigureAwait(false);
                _console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"connected {report.Connect.Connected:N0}/{report.Connect.Requested:N0} in {report.Connect.Seconds:F2} s ({report.Connect.Failed:N0} failed)"));
                if (report.Connect.Connected == 0)
                {
                    report.Findings.Add("No client could connect; see errors.");
                }
                else if (_options.Scenario == ScenarioKind.Idle)
                {
                    report.Idle = await RunIdleAsync(fleet, probe, baseline, sampler, report.Connect, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await RunLoadAsync(ctx, fleet, probe, sampler, report, cancellationToken).ConfigureAwait(false);
                }

                sampler.Phase = "close";
                fleet.CloseAll();
            }

            report.TimeSeries.AddRange(sampler.Samples);

            report.Errors = ctx.Errors.Counts();
            report.ErrorSamples = ctx.Errors.Samples();
            report.WallSeconds = Math.Round(Clock.ToSeconds(Clock.Now - startedAt), 2);
            Findings.Add(report, _options);
            return report;
        }
        finally
        {
            foreach (ServerProcess server in spawned)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private async Task RunLoadAsync(RunContext ctx, Fleet fleet, ServerProbe probe, Sampler sampler, RunReport report, CancellationToken cancellationToken)
    {
        sampler.Phase = "setup";
        if (!await fleet.InitializeDocumentsAsync(_options.InitLength, TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false))
        {
            report.Findings.Add("The documents' initial text was not acknowledged everywhere within 60 s.");
        }

        for (int i = 0; i < _options.Rates.Count; i++)
        {
            double rate = _options.Rates[i];
            StepReport step = await RunStepAsync(ctx, fleet, probe, sampler, rate, report, cancellationToken).ConfigureAwait(false);
            report.Steps.Add(step);
            _console.WriteLine(ConsoleReport.StepLine(step));
            if (_options.RampStop && _options.Rates.Count > 1 && !step.MeetsSlo && i < _options.Rates.Count - 1)
            {
                _console.WriteLine($"ramp stopped: rate {rate}/s missed the SLO (ack p99 < {_options.SloP99Ms} ms, >= 99 % acknowledged)");
                break;
            }
        }

        sampler.Phase = "check";
        bool settled = report.Steps.Count > 0 && report.Steps[^1] is { UnackedAfterDrain: 0, BacklogAfterDrain: 0, BroadcastsMissingAfterDrain: 0 };
        report.Convergence = await fleet.CheckConvergenceAsync(settled, cancellationToken).ConfigureAwait(false);
    }

    private async Task<StepReport> RunStepAsync(RunContext ctx, Fleet fleet, ServerProbe probe, Sampler sampler, double rate, RunReport report, CancellationToken cancellationToken)
    {
        string name = string.Create(CultureInfo.InvariantCulture, $"rate={rate:0.###}/s");
        Dictionary<string, long> errorsBefore = ctx.Errors.Counts();
        CounterSnapshot stepStart = ctx.Counters.Snapshot();
        long start = Clock.Now + Clock.FromSeconds(0.05);
        long measureStart = start + Clock.FromSeconds(_options.WarmupSeconds);
        long measureEnd = measureStart + Clock.FromSeconds(_options.DurationSeconds);
        ctx.Window.Set(measureStart, measureEnd);
        ctx.AckLatency.ResetWindow();
        ctx.BroadcastLatency.ResetWindow();
        ctx.SendLag.ResetWindow();
        ctx.ResumeTime.ResetWindow();

        ulong slice = (ulong)_options.GeneratorSliceMicros * 1_000;
        int sliceSocketThreads = GeneratorSlice.ApplyToSocketThreads(slice);
        var scheduler = new OpenLoopScheduler(fleet.Writers, rate, start, measureEnd, ctx.SendLag, ctx.Window, ctx.Seed ^ report.Steps.Count, slice);
        sampler.Phase = "warmup";
        scheduler.Start();

        await DelayUntilAsync(measureStart, cancellationToken).ConfigureAwait(false);
        sampler.Phase = "measure";
        CounterSnapshot windowStart = ctx.Counters.Snapshot();
        double loadStart = ProcessStats.LoadAverage();
        ProcessSample generatorStart = ProcessStats.Self();
        long generatorStartAt = Clock.Now;
        ServerPoint serverStart = await probe.SampleAsync(cancellationToken).ConfigureAwait(false);

        Task<StormReport>? storm = null;
        if (_options.Scenario == ScenarioKind.Storm)
        {
            await DelayUntilAsync(measureStart + Clock.FromSeconds(_options.StormAtSeconds), cancellationToken).ConfigureAwait(false);
            storm = RunStormAsync(ctx, fleet, sampler, measureEnd + Clock.FromSeconds(Math.Max(_options.DrainSeconds, 30)), cancellationToken);
        }

        await DelayUntilAsync(measureEnd, cancellationToken).ConfigureAwait(false);
        CounterSnapshot windowEnd = ctx.Counters.Snapshot();
        double loadEnd = ProcessStats.LoadAverage();
        ProcessSample generatorEnd = ProcessStats.Self();
        long generatorEndAt = Clock.Now;
        ServerPoint serverEnd = await probe.SampleAsync(cancellationToken).ConfigureAwait(false);
        scheduler.Join();

        sampler.Phase = "drain";
        if (storm is not null)
        {
            report.Storm = await storm.ConfigureAwait(false);
        }

        (_, double drained) = await fleet.SettleAsync(TimeSpan.FromSeconds(_options.DrainSeconds), cancellationToken).ConfigureAwait(false);
        (long unacked, long backlog, long missing) = fleet.Outstanding();
        CounterSnapshot stepEnd = ctx.Counters.Snapshot();
        var ack = LatencySummary.From(ctx.AckLatency.TakeWindow());
        var broadcast = LatencySummary.From(ctx.BroadcastLatency.TakeWindow());
        var lag = LatencySummary.From(ctx.SendLag.TakeWindow());
        ctx.Window.Clear();

        double seconds = _options.DurationSeconds;
        double generatorSeconds = Math.Max(1e-9, Clock.ToSeconds(generatorEndAt - generatorStartAt));
        CounterSnapshot inWindow = stepEnd - stepStart;
        CounterSnapshot during = windowEnd - windowStart;
        double offered = inWindow.OfferedInWindow / seconds;
        double acked = inWindow.AckedInWindow / seconds;
        return new StepReport
        {
            Name = name,
            RatePerClient = rate,
            Writers = fleet.Writers.Count,
            WarmupSeconds = _options.WarmupSeconds,
            DurationSeconds = seconds,
            TargetOpsPerSec = rate * fleet.Writers.Count,
            OfferedOpsPerSec = Math.Round(offered, 1),
            AckedOpsPerSec = Math.Round(acked, 1),
            Ack = ack,
            Broadcast = broadcast,
            SendLag = lag,
            SchedulerPriorityRaised = scheduler.PriorityRaised,
            GeneratorSliceMicroseconds = _options.GeneratorSliceMicros,
            GeneratorSliceThreads = sliceSocketThreads + (scheduler.SliceApplied ? 1 : 0),
            DeliveriesPerSec = Math.Round(inWindow.DeliveredInWindow / seconds, 1),
            MessagesReceivedPerSec = Math.Round(during.MessagesReceived / seconds, 1),
            Errors = ctx.Errors.Since(errorsBefore),
            Disconnects = inWindow.Disconnects,
            Reconnects = inWindow.Reconnects,
            Resends = inWindow.Resends,
            DuplicateDeliveries = inWindow.DuplicateDeliveries,
            CatchUpFetches = inWindow.CatchUpFetches,
            LoadAverage = [loadStart, loadEnd],
            UnackedAfterDrain = unacked,
            BacklogAfterDrain = backlog,
            BroadcastsMissingAfterDrain = missing,
            DrainSeconds = Math.Round(drained, 2),
            Generator = new ResourceReport(
                Math.Round(100 * (generatorEnd.CpuSeconds - generatorStart.CpuSeconds) / generatorSeconds, 1),
                Math.Round(generatorEnd.RssBytes / (1024.0 * 1024), 1),
                Math.Round(generatorEnd.PeakRssBytes / (1024.0 * 1024), 1)),
            Server = ServerProbe.Between(serverStart, serverEnd),
            MeetsSlo = ack.Count > 0 && ack.P99 < _options.SloP99Ms && acked >= 0.99 * offered && unacked == 0,
        };
    }

    private async Task<StormReport> RunStormAsync(RunContext ctx, Fleet fleet, Sampler sampler, long deadline, CancellationToken cancellationToken)
    {
        sampler.Phase = "storm";
        Dictionary<string, long> errorsBefore = ctx.Errors.Counts();
        CounterSnapshot before = ctx.Counters.Snapshot();
        long dropped = Clock.Now;
        int count = fleet.DropAll();
        _console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"storm: dropped {count:N0} connections at t={sampler.Elapsed(dropped):F1} s"));
        double allResumed = double.NaN;
        while (Clock.Now < deadline)
        {
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
            if (fleet.AwaitingResumeCount == 0 && fleet.LiveCount == fleet.Connected.Count)
            {
                allResumed = Clock.ToSeconds(Clock.Now - dropped);
                break;
            }
        }

        sampler.Phase = "measure";
        var resume = LatencySummary.From(ctx.ResumeTime.TakeWindow());
        CounterSnapshot after = ctx.Counters.Snapshot() - before;
        _console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"storm: {resume.Count:N0} clients resumed; all live after {allResumed:F2} s (per client p50 {resume.P50:F1} ms, p99 {resume.P99:F1} ms, max {resume.Max:F1} ms)"));
        return new StormReport
        {
            ClientsDropped = count,
            ClientsResumed = (int)resume.Count,
            // Exact per-client maximum when everybody made it; the polling estimate otherwise.
            AllResumedSeconds = resume.Count >= count ? Math.Round(resume.Max / 1000, 3) : Math.Round(allResumed, 3),
            ResumeTime = resume,
            FailedReconnectAttempts = ctx.Errors.Since(errorsBefore).GetValueOrDefault("reconnect-attempt"),
            Resends = after.Resends,
            StaleAcks = after.StaleAcks,
        };
    }

    private async Task<IdleReport> RunIdleAsync(Fleet fleet, ServerProbe probe, ServerPoint baseline, Sampler sampler, ConnectReport connect, CancellationToken cancellationToken)
    {
        sampler.Phase = "hold";

        // Per-second progress keeps reading /proc (spawned servers), but /metrics only every 15 s, Prometheus's
        // usual interval: each scrape makes garbage in the server, and a scrape a second would be part of the memory
        // this scenario measures.
        probe.MinScrapeInterval = TimeSpan.FromSeconds(15);
        ServerPoint afterConnect = await probe.SampleAsync(cancellationToken).ConfigureAwait(false);
        double loadStart = ProcessStats.LoadAverage();
        await Task.Delay(TimeSpan.FromSeconds(_options.WarmupSeconds + _options.DurationSeconds), cancellationToken).ConfigureAwait(false);
        ServerPoint held = await probe.SampleAsync(cancellationToken).ConfigureAwait(false);
        int n = fleet.Connected.Count;
        const double Mb = 1024 * 1024;
        return new IdleReport
        {
            Connections = n,
            Documents = fleet.Docs.Count(static d => d.Clients.Count > 0),
            ConnectSeconds = Math.Round(connect.Seconds, 2),
            ConnectsPerSecond = Math.Round(n / Math.Max(1e-9, connect.Seconds), 0),
            LoadAverage = [loadStart, ProcessStats.LoadAverage()],
            ServerRssBaseMb = Math.Round(baseline.RssBytes / Mb, 1),
            ServerRssAfterConnectMb = Math.Round(afterConnect.RssBytes / Mb, 1),
            ServerRssPerConnectionAfterConnectKb = Math.Round((afterConnect.RssBytes - baseline.RssBytes) / 1024 / Math.Max(1, n), 2),
            ServerRssHeldMb = Math.Round(held.RssBytes / Mb, 1),
            HeldSeconds = _options.WarmupSeconds + _options.DurationSeconds,
            ServerRssPerConnectionKb = Math.Round((held.RssBytes - baseline.RssBytes) / 1024 / Math.Max(1, n), 2),
            ServerPeakRssMb = Math.Round(held.PeakRssBytes / Mb, 1),
            ServerCpuSecondsConnecting = Math.Round(afterConnect.CpuSeconds - baseline.CpuSeconds, 2),
            ServerConnectionsOpen = held.Sum("collab_ws_connections_open"),
            GeneratorRssMb = Math.Round(ProcessStats.Self().RssBytes / Mb, 1),
        };
    }

    private RunSetup BuildSetup(IReadOnlyList<Uri> servers, bool spawned) => new()
    {
        Docs = _options.Docs,
        ClientsPerDoc = _options.ClientsPerDoc,
        WritersPerDoc = _options.Scenario == ScenarioKind.Idle ? 0 : _options.EffectiveWriters,
        SubmitMode = _options.Submit switch
        {
            SubmitMode.Pipelined => "pipelined",
            SubmitMode.OneInFlight => "one-in-flight",
            _ => "ping",
        },
        Verify = _options.Verify.ToString().ToLowerInvariant(),
        DocumentType = _options.Document == DocumentKind.Rich ? "rich-text" : "text-unicode",
        Servers = [.. servers.Select(static s => s.ToString())],
        SpawnedServer = spawned,
        ServerCpus = spawned ? _options.ServerCpus : null,
        GeneratorCpus = Native.AllowedCpuList(),
        Storage = !spawned ? null : _options.Target == ServerKind.ShareDb ? "memory" : _options.Postgres is null ? "sqlite" : "postgres",
        ServerArgs = spawned && _options.Target == ServerKind.Collab ? [.. _options.ServerArgs] : [],
        Nice = _options.Nice,
        SourceAddresses = _options.EffectiveSourceAddresses,
        Seed = _options.Seed,
        MachineCores = MachineCores(),
        GeneratorProcessorCount = Environment.ProcessorCount,
        Runtime = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription,
        Os = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
        InlineSocketCompletions = Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") == "1",
        PreciseSleep = Native.MonotonicSleepAvailable,
    };

    private string Describe(RunSetup setup) => string.Create(
        CultureInfo.InvariantCulture,
        $"scenario {_options.Scenario.ToString().ToLowerInvariant()}: {setup.Docs:N0} docs x {setup.ClientsPerDoc} clients ({setup.WritersPerDoc} writing), rates [{string.Join(", ", _options.Rates)}]/s per writer, " +
        $"{setup.DocumentType}, {setup.SubmitMode}, verify {setup.Verify}, W={_options.WarmupSeconds}s T={_options.DurationSeconds}s; servers {string.Join(", ", setup.Servers)}; " +
        $"generator on CPUs {setup.GeneratorCpus ?? "?"} ({setup.GeneratorProcessorCount} usable), {setup.SourceAddresses} source address(es), seed {setup.Seed}");

    /// <summary>The target's name in reports and on the command line.</summary>
    public static string TargetName(ServerKind target) => target == ServerKind.ShareDb ? "sharedb" : "collab";

    private static int MachineCores()
    {
        try
        {
            return File.ReadLines("/proc/cpuinfo").Count(static l => l.StartsWith("processor", StringComparison.Ordinal));
        }
        catch (IOException)
        {
            return Environment.ProcessorCount;
        }
    }

    private static async Task DelayUntilAsync(long timestamp, CancellationToken cancellationToken)
    {
        long remaining = timestamp - Clock.Now;
        if (remaining > 0)
        {
            await Task.Delay(TimeSpan.FromSeconds(Clock.ToSeconds(remaining)), cancellationToken).ConfigureAwait(false);
        }
    }
}
