using Collab.LoadTest.Metrics;
using Collab.LoadTest.Reporting;

namespace Collab.LoadTest.Tests;

/// <summary>
/// The sentences a run ends with: a throughput target is met by a step within the SLO, missed only where the run found
/// the server's limit, and otherwise reported as not measured; a ping run evaluates no op target.
/// </summary>
public sealed class FindingsTests
{
    [Fact]
    public void A_run_that_stayed_within_the_slo_below_the_goal_has_not_measured_the_throughput_target()
    {
        RunReport report = Report(Step(rate: 1, offered: 1_000, p99: 4, meetsSlo: true));
        Findings.Add(report, LoadTestOptions.Parse(["small", "--rate", "1"]));

        string target = Assert.Single(report.Findings, static f => f.StartsWith("target small rooms", StringComparison.Ordinal));
        Assert.Contains("not measured by this run", target, StringComparison.Ordinal);
        Assert.Contains("1,000 ops/s", target, StringComparison.Ordinal);
        Assert.DoesNotContain("NOT met", target, StringComparison.Ordinal);

        // The light-load target is measured by this step, and missed.
        Assert.Contains(report.Findings, static f => f.StartsWith("target light load", StringComparison.Ordinal) && f.EndsWith("NOT met.", StringComparison.Ordinal));
    }

    [Fact]
    public void A_ramp_that_found_the_limit_below_the_goal_misses_the_target_at_its_best_step()
    {
        RunReport report = Report(
            Step(rate: 5, offered: 5_000, p99: 20, meetsSlo: true),
            Step(rate: 10, offered: 10_000, p99: 45, meetsSlo: true),
            Step(rate: 20, offered: 20_000, p99: 400, meetsSlo: false));
        Findings.Add(report, LoadTestOptions.Parse(["small", "--rate", "5,10,20"]));

        Assert.Contains("target small rooms 200x5 >= 40,000 ops/s at ack p99 < 50 ms: 10,000 acked ops/s - NOT met.", report.Findings);
    }

    [Fact]
    public void A_step_at_the_goal_within_the_slo_meets_the_target()
    {
        RunReport report = Report(Step(rate: 40, offered: 40_000, p99: 30, meetsSlo: true));
        Findings.Add(report, LoadTestOptions.Parse(["small", "--rate", "40"]));

        Assert.Contains("target small rooms 200x5 >= 40,000 ops/s at ack p99 < 50 ms: 40,000 acked ops/s - met.", report.Findings);
    }

    [Fact]
    public void A_ping_run_evaluates_no_op_target()
    {
        RunReport report = Report(Step(rate: 1, offered: 1_000, p99: 0.3, meetsSlo: true, p50: 0.05));
        Findings.Add(report, LoadTestOptions.Parse(["small", "--rate", "1", "--submit", "ping"]));

        Assert.DoesNotContain(report.Findings, static f => f.StartsWith("target", StringComparison.Ordinal));
        Assert.Contains(report.Findings, static f => f.StartsWith("--submit ping", StringComparison.Ordinal));
    }

    [Fact]
    public void A_late_scheduler_without_a_slice_is_pointed_to_the_option_and_a_slice_that_did_not_take_is_said()
    {
        RunReport late = Report(Step(rate: 1, offered: 1_000, p99: 4, meetsSlo: true) with { SendLag = new LatencySummary(1_000, 0.05, 0.5, 2.5, 4, 5, 0.1) });
        Findings.Add(late, LoadTestOptions.Parse(["small", "--rate", "1"]));
        Assert.Contains(late.Findings, static f => f.Contains("--generator-slice 100 lets it preempt them", StringComparison.Ordinal));

        RunReport notApplied = Report(Step(rate: 1, offered: 1_000, p99: 4, meetsSlo: true) with { GeneratorSliceMicroseconds = 100, GeneratorSliceThreads = 0 });
        Findings.Add(notApplied, LoadTestOptions.Parse(["small", "--rate", "1", "--generator-slice", "100"]));
        Assert.Contains(notApplied.Findings, static f => f.Contains("--generator-slice 100 was not applied", StringComparison.Ordinal));

        RunReport applied = Report(Step(rate: 1, offered: 1_000, p99: 4, meetsSlo: true) with { GeneratorSliceMicroseconds = 100, GeneratorSliceThreads = 2 });
        Findings.Add(applied, LoadTestOptions.Parse(["small", "--rate", "1", "--generator-slice", "100"]));
        Assert.DoesNotContain(applied.Findings, static f => f.Contains("--generator-slice", StringComparison.Ordinal));
    }

    private static RunReport Report(params StepReport[] steps)
    {
        var report = new RunReport
        {
            Scenario = "small",
            StartedUtc = DateTime.UtcNow,
            CommandLine = "test",
            Setup = new RunSetup
            {
                Docs = 200,
                ClientsPerDoc = 5,
                WritersPerDoc = 5,
                SubmitMode = "one-in-flight",
                Verify = "light",
                Servers = ["ws://127.0.0.1:1/ws"],
                SpawnedServer = false,
                SourceAddresses = 1,
                Seed = 1,
                MachineCores = 2,
                GeneratorProcessorCount = 1,
                Runtime = ".NET",
                Os = "Linux",
                InlineSocketCompletions = true,
                PreciseSleep = true,
            },
        };
        report.Steps.AddRange(steps);
        return report;
    }

    private static StepReport Step(double rate, double offered, double p99, bool meetsSlo, double p50 = 1) => new()
    {
        Name = $"rate={rate}/s",
        RatePerClient = rate,
        Writers = 1_000,
        WarmupSeconds = 5,
        DurationSeconds = 20,
        TargetOpsPerSec = offered,
        OfferedOpsPerSec = offered,
        AckedOpsPerSec = offered,
        Ack = new LatencySummary(1_000, p50, p99 / 2, p99, p99, p99, p50),
        Broadcast = LatencySummary.Empty,
        SendLag = new LatencySummary(1_000, 0.01, 0.02, 0.05, 0.1, 0.2, 0.01),
        SchedulerPriorityRaised = true,
        Generator = new ResourceReport(10, 100, 100),
        Server = new ServerReport { CpuPercent = 20 },
        MeetsSlo = meetsSlo,
    };
}
