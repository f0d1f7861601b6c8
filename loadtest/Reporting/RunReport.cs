using System.Text.Json.Serialization;
using Collab.LoadTest.Metrics;

namespace Collab.LoadTest.Reporting;

/// <summary>The machine-readable result of one run (written with --json). Latencies are in milliseconds.</summary>
internal sealed record RunReport
{
    public string Tool { get; init; } = "collab-loadtest";

    public required string Scenario { get; init; }

    /// <summary>The server driven: "collab" or "sharedb".</summary>
    public string Target { get; init; } = "collab";

    public string? Label { get; init; }

    public required DateTime StartedUtc { get; init; }

    public double WallSeconds { get; set; }

    public required string CommandLine { get; init; }

    public required RunSetup Setup { get; init; }

    public List<StepReport> Steps { get; init; } = [];

    public ConvergenceReport? Convergence { get; set; }

    public StormReport? Storm { get; set; }

    public IdleReport? Idle { get; set; }

    public ConnectReport? Connect { get; set; }

    public Dictionary<string, long> Errors { get; set; } = [];

    public Dictionary<string, string[]> ErrorSamples { get; set; } = [];

    public List<Sample> TimeSeries { get; init; } = [];

    /// <summary>Human-readable conclusions (target met or not, and what limited it).</summary>
    public List<string> Findings { get; init; } = [];
}

internal sealed record RunSetup
{
    public required int Docs { get; init; }

    public required int ClientsPerDoc { get; init; }

    public required int WritersPerDoc { get; init; }

    public required string SubmitMode { get; init; }

    /// <summary>The documents' OT type: "text-unicode" or "rich-text".</summary>
    public string DocumentType { get; init; } = "text-unicode";

    public required string Verify { get; init; }

    public required string[] Servers { get; init; }

    public required bool SpawnedServer { get; init; }

    public string? ServerCpus { get; init; }

    public string? GeneratorCpus { get; init; }

    public string? Storage { get; init; }

    /// <summary>Extra arguments the spawned Collab server got (--server-arg), e.g. --Storage:SqliteSynchronous=Normal.</summary>
    public string[] ServerArgs { get; init; } = [];

    /// <summary>The nice value the spawned server and the pinned generator ran at (--nice; 0: the default priority).</summary>
    public int Nice { get; init; }

    public required int SourceAddresses { get; init; }

    public required int Seed { get; init; }

    public required int MachineCores { get; init; }

    public required int GeneratorProcessorCount { get; init; }

    public required string Runtime { get; init; }

    public required string Os { get; init; }

    public required bool InlineSocketCompletions { get; init; }

    public required bool PreciseSleep { get; init; }
}

/// <summary>One step (one rate) of a scenario: NBomber's "step" report.</summary>
internal sealed record StepReport
{
    public required string Name { get; init; }

    public required double RatePerClient { get; init; }

    public required int Writers { get; init; }

    public required double WarmupSeconds { get; init; }

    public required double DurationSeconds { get; init; }

    public double TargetOpsPerSec { get; init; }

    public double OfferedOpsPerSec { get; init; }

    public double AckedOpsPerSec { get; init; }

    public required LatencySummary Ack { get; init; }

    public required LatencySummary Broadcast { get; init; }

    /// <summary>How late the scheduler handed ops to their clients (the generator's own delay; included in the latencies).</summary>
    public required LatencySummary SendLag { get; init; }

    /// <summary>Whether the scheduler thread ran at nice -20; without it its lag p99 on a shared core is a time slice (~3 ms).</summary>
    public bool SchedulerPriorityRaised { get; init; }

    /// <summary>The generator threads' EEVDF slice asked for (<c>--generator-slice</c>, µs; 0: the kernel's default).</summary>
    public int GeneratorSliceMicroseconds { get; init; }

    /// <summary>How many generator threads (scheduler, socket engine) run with that slice.</summary>
    public int GeneratorSliceThreads { get; init; }

    public double DeliveriesPerSec { get; init; }

    public double MessagesReceivedPerSec { get; init; }

    public Dictionary<string, long> Errors { get; init; } = [];

    public long Disconnects { get; init; }

    public long Reconnects { get; init; }

    public long Resends { get; init; }

    /// <summary>ShareDB: ops received again at a version already held (its protocol repeats ops; ignored, as its client does).</summary>
    public long DuplicateDeliveries { get; init; }

    /// <summary>ShareDB: fetches of missed ops after an op from beyond the next version.</summary>
    public long CatchUpFetches { get; init; }

    /// <summary>The machine's 1-minute load average at the start and the end of the measured window.</summary>
    public double[] LoadAverage { get; init; } = [];

    public long UnackedAfterDrain { get; init; }

    public long BacklogAfterDrain { get; init; }

    public long BroadcastsMissingAfterDrain { get; init; }

    public double DrainSeconds { get; init; }

    public required ResourceReport Generator { get; init; }

    public required ServerReport Server { get; init; }

    /// <summary>Ack p99 under the SLO and at least 99 % of the offered ops acknowledged.</summary>
    public bool MeetsSlo { get; init; }
}

internal sealed record ResourceReport(double CpuPercent, double RssMb, double PeakRssMb);

/// <summary>Server-side figures over a step's window, from /proc (spawned server) and /metrics.</summary>
internal sealed record ServerReport
{
    public double CpuPercent { get; init; } = double.NaN;

    public double RssMb { get; init; } = double.NaN;

    public double PeakRssMb { get; init; } = double.NaN;

    public double CommittedOpsPerSec { get; init; } = double.NaN;

    public double FramesSentPerSec { get; init; } = double.NaN;

    /// <summary>Frames per socket flush: the server's write coalescing.</summary>
    public double FramesPerFlush { get; init; } = double.NaN;

    public double OpsPerStorageBatch { get; init; } = double.NaN;

    public double StorageCommitMeanMs { get; init; } = double.NaN;

    /// <summary>Mean server-side submit-to-ack time (collab_submit_ack_seconds).</summary>
    public double SubmitAckMeanMs { get; init; } = double.NaN;

    public double ConnectionsOpen { get; init; } = double.NaN;

    public double ErrorsSent { get; init; } = double.NaN;
}

internal sealed record ConvergenceReport
{
    public int DocsChecked { get; init; }

    public int DocsConverged { get; init; }

    public int ClientsChecked { get; init; }

    public int ReplicasCompared { get; init; }

    public int ClientsBehind { get; init; }

    public int ClientsMismatched { get; init; }

    public int ClientsWithPendingOps { get; init; }

    public int ClientsFaulted { get; init; }

    public int CheckerFailures { get; init; }

    public List<string> Examples { get; init; } = [];

    /// <summary>
    /// Whether the last drain ended with nothing outstanding. If not, the check ran while ops were still in flight:
    /// differences then show lag (a server that fell behind), not proven divergence.
    /// </summary>
    public bool Settled { get; init; }

    public bool Converged => DocsChecked > 0 && DocsConverged == DocsChecked && CheckerFailures == 0;
}

internal sealed record StormReport
{
    public int ClientsDropped { get; init; }

    public int ClientsResumed { get; init; }

    /// <summary>From the drop until the last client was live again (reconnected, resubscribed, caught up).</summary>
    public double AllResumedSeconds { get; init; } = double.NaN;

    /// <summary>Per-client drop → resumed.</summary>
    public required LatencySummary ResumeTime { get; init; }

    public long FailedReconnectAttempts { get; init; }

    public long Resends { get; init; }

    public long StaleAcks { get; init; }
}

internal sealed record IdleReport
{
    public int Connections { get; init; }

    /// <summary>The machine's 1-minute load average when the hold started and when it ended.</summary>
    public double[] LoadAverage { get; init; } = [];

    public int Documents { get; init; }

    public double ConnectSeconds { get; init; }

    public double ConnectsPerSecond { get; init; }

    public double ServerRssBaseMb { get; init; }

    /// <summary>Server RSS once every connection is open and subscribed.</summary>
    public double ServerRssAfterConnectMb { get; init; }

    /// <summary>(after connecting − before) / connections.</summary>
    public double ServerRssPerConnectionAfterConnectKb { get; init; }

    /// <summary>Server RSS at the end of the hold (warm-up + duration after connecting).</summary>
    public double ServerRssHeldMb { get; init; }

    public double HeldSeconds { get; init; }

    /// <summary>(held − before) / connections: the figure the target is checked against.</summary>
    public double ServerRssPerConnectionKb { get; init; }

    public double ServerPeakRssMb { get; init; }

    public double ServerCpuSecondsConnecting { get; init; }

    public double ServerConnectionsOpen { get; init; } = double.NaN;

    public double GeneratorRssMb { get; init; }
}

internal sealed record ConnectReport(int Requested, int Connected, int Failed, double Seconds);

/// <summary>One per-second point of the live progress (also the chart's data).</summary>
internal sealed record Sample(
    double T,
    string Phase,
    double OfferedPerSec,
    double AckedPerSec,
    double DeliveredPerSec,
    double AckP50,
    double AckP99,
    double BroadcastP50,
    double BroadcastP99,
    long Errors,
    double GeneratorCpuPercent,
    double ServerCpuPercent,
    double ServerRssMb,
    int Live);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(RunReport))]
internal sealed partial class ReportJsonContext : JsonSerializerContext;
