using System.Globalization;
using Collab.LoadTest.Client;

namespace Collab.LoadTest.Reporting;

/// <summary>
/// Turns the figures into sentences: the targets of the load-test issue (met or not), and whether the generator
/// or the server was the limit, so a reader does not mistake a saturated generator for a slow server.
/// </summary>
internal static class Findings
{
    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    public static void Add(RunReport report, LoadTestOptions options)
    {
        List<string> f = report.Findings;
        RunSetup setup = report.Setup;
        double generatorCapacity = 100.0 * Math.Max(1, setup.GeneratorProcessorCount);

        foreach (StepReport step in report.Steps)
        {
            if (step.Generator.CpuPercent >= 0.85 * generatorCapacity || step.SendLag.P99 >= 5)
            {
                f.Add(string.Create(s_inv, $"{step.Name}: the generator was late or near saturation (CPU {step.Generator.CpuPercent:F0} % of {generatorCapacity:F0} %, scheduler lag p99 {step.SendLag.P99:F2} ms; lag with low CPU means the generator's core was busy with other processes): latencies there include generator delay."));
            }

            if (!step.SchedulerPriorityRaised && step.SendLag.P99 >= 1)
            {
                f.Add(string.Create(s_inv, $"{step.Name}: the scheduler thread could not be given nice -20 (needs root or CAP_SYS_NICE), so it waited for the receive work's time slices (lag p99 {step.SendLag.P99:F2} ms, included in the latencies)."));
            }

            if (step.GeneratorSliceMicroseconds > 0 && step.GeneratorSliceThreads == 0)
            {
                f.Add(string.Create(s_inv, $"{step.Name}: --generator-slice {step.GeneratorSliceMicroseconds} was not applied to any generator thread (Linux 6.12 or later is needed): its wake-ups wait for other work's time slices as before."));
            }
            else if (step.GeneratorSliceMicroseconds == 0 && step.SendLag.P99 >= 1)
            {
                f.Add(string.Create(s_inv, $"{step.Name}: the scheduler was late (lag p99 {step.SendLag.P99:F2} ms): other work's time slices delayed its wake-ups; --generator-slice 100 lets it preempt them (Linux 6.12+)."));
            }

            if (step.Server.CpuPercent >= 90)
            {
                f.Add(string.Create(s_inv, $"{step.Name}: the server used {step.Server.CpuPercent:F0} % CPU (100 % = one core): it was CPU-bound."));
            }
        }

        StepReport? best = report.Steps.Where(static s => s.MeetsSlo).MaxBy(static s => s.AckedOpsPerSec);
        if (report.Steps.Count > 0)
        {
            f.Add(best is null
                ? string.Create(s_inv, $"No step met ack p99 < {options.SloP99Ms} ms with >= 99 % of offered ops acknowledged.")
                : string.Create(s_inv, $"Highest step meeting ack p99 < {options.SloP99Ms} ms: {best.Name} = {best.AckedOpsPerSec:N0} acked ops/s (p99 {best.Ack.P99:F2} ms)."));
        }

        bool standardRooms = setup.Docs == 200 && setup.ClientsPerDoc == 5 && setup.WritersPerDoc == 5;
        if (options.Submit == SubmitMode.Ping)
        {
            // A Pong is a transport round trip, not a durable op: comparing it with the op targets would flatter.
            f.Add("--submit ping: latencies are Ping -> Pong round trips (no sequencing, no storage), so the op targets are not evaluated.");
            standardRooms = false;
        }

        if (options.Target == ServerKind.ShareDb)
        {
            // The targets below are Collab's; ShareDB is measured beside it, not against them.
            f.Add("ShareDB keeps documents in memory (MemoryDB) and acknowledges before anything is durable; Collab acknowledges after its commit.");
            standardRooms = false;
        }

        switch (options.Target == ServerKind.ShareDb ? (ScenarioKind)(-1) : options.Scenario)
        {
            case ScenarioKind.Small when standardRooms:
                ThroughputTarget(f, report, best, "small rooms 200x5 >= 40,000 ops/s at ack p99 < 50 ms", 40_000);
                if (report.Steps.FirstOrDefault(static s => s.RatePerClient == 1) is { } light)
                {
                    bool met = light.Ack.P50 <= 0.1 && light.Ack.P99 <= 0.5;
                    f.Add(string.Create(s_inv, $"target light load 200x5 at 1 op/s (ack p50 <= 0.1 ms, p99 <= 0.5 ms): p50 {light.Ack.P50:F3} ms, p99 {light.Ack.P99:F3} ms - {(met ? "met" : "NOT met")}."));
                }

                break;
            case ScenarioKind.Durable when standardRooms:
                ThroughputTarget(f, report, best, "durable (PostgreSQL) 200x5 >= 30,000 ops/s at ack p99 < 50 ms", 30_000);
                break;
            case ScenarioKind.Big:
                StepReport? fan = report.Steps.Where(static s => s.Broadcast.Count > 0).MaxBy(static s => s.AckedOpsPerSec);
                if (fan is not null)
                {
                    bool met = fan.AckedOpsPerSec >= 2000 && fan.Broadcast.P99 < 50;
                    f.Add(string.Create(s_inv, $"target big room >= 2,000 ops/s with broadcast p99 < 50 ms (>= 400k deliveries/s): {fan.AckedOpsPerSec:N0} ops/s, broadcast p99 {fan.Broadcast.P99:F2} ms, {fan.DeliveriesPerSec:N0} deliveries/s - {(met ? "met" : "NOT met")}."));
                }

                break;
            case ScenarioKind.Idle when report.Idle is { } idle:
                f.Add(string.Create(s_inv, $"target idle <= 7 KiB server RSS per connection (at 19k, issue 16): {idle.ServerRssPerConnectionKb:F2} KiB at {idle.Connections:N0} connections held {idle.HeldSeconds:F0} s ({idle.ServerRssPerConnectionAfterConnectKb:F2} KiB right after connecting) - {(idle.ServerRssPerConnectionKb <= 7 ? "met" : "NOT met")}{(idle.Connections < 19_000 ? " (fewer connections than the target's 19k)" : string.Empty)}."));
                if (idle.HeldSeconds < 65)
                {
                    f.Add(string.Create(s_inv, $"idle: held only {idle.HeldSeconds:F0} s, less than two keep-alive rounds at the default 30 s ping interval; memory per connection settles later (use the default hold of 70 s)."));
                }
                break;
            default:
                break;
        }

        if (report.Convergence is { Converged: false } c)
        {
            f.Add(c.Settled
                ? string.Create(s_inv, $"Convergence FAILED: {c.DocsChecked - c.DocsConverged} of {c.DocsChecked} documents differ between clients and server although nothing was outstanding (see convergence examples).")
                : string.Create(s_inv, $"Convergence not reached: the last drain ended with ops still unacknowledged or undelivered, so {c.DocsChecked - c.DocsConverged} of {c.DocsChecked} documents were still behind the server (lag after overload, not proven divergence; use a longer --drain to wait it out)."));
        }

        if (report.Connect is { Failed: > 0 } connect)
        {
            f.Add(string.Create(s_inv, $"{connect.Failed:N0} of {connect.Requested:N0} connections failed to open."));
        }
    }

    /// <summary>
    /// A throughput target is met by a step at or above the goal within the SLO, and missed only where the run found
    /// the server's limit (a step that broke the SLO). A run whose steps all stayed within the SLO below the goal (a
    /// light-load run, a short ramp) has not measured the target and says so instead of reporting it missed.
    /// </summary>
    private static void ThroughputTarget(List<string> findings, RunReport report, StepReport? best, string name, double goal)
    {
        double reached = best?.AckedOpsPerSec ?? 0;
        if (reached >= goal)
        {
            findings.Add(string.Create(s_inv, $"target {name}: {reached:N0} acked ops/s - met."));
        }
        else if (report.Steps.Any(static s => !s.MeetsSlo))
        {
            findings.Add(string.Create(s_inv, $"target {name}: {reached:N0} acked ops/s - NOT met."));
        }
        else
        {
            double offered = report.Steps.Count == 0 ? 0 : report.Steps.Max(static s => s.OfferedOpsPerSec);
            findings.Add(string.Create(s_inv, $"target {name}: not measured by this run (every step met the SLO; the highest offered {offered:N0} ops/s): ramp --rate higher to find the limit."));
        }
    }
}
