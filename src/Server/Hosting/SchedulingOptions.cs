namespace Collab.Server.Hosting;

/// <summary>How the kernel schedules the server's threads (configuration section "Server").</summary>
public sealed class SchedulingOptions
{
    public const string Section = "Server";

    /// <summary>The shortest slice the kernel accepts for a SCHED_OTHER thread (Linux clamps sched_runtime to 0.1–100 ms).</summary>
    public static readonly TimeSpan MinSlice = TimeSpan.FromMilliseconds(0.1);

    /// <summary>The longest slice the kernel accepts.</summary>
    public static readonly TimeSpan MaxSlice = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// The time slice the server asks the Linux scheduler for on every one of its threads (EEVDF's per-task
    /// <c>sched_runtime</c>, Linux 6.12 and later; no privilege needed). A thread with a shorter slice than the one
    /// running is allowed to preempt it when it wakes, so a socket read or a completed commit is handled within about
    /// that slice instead of after the rest of another process's (default ~0.75–3 ms, scaled by the CPU count).
    /// Zero leaves the kernel's default. Applied at start-up to the process's threads; threads started later inherit
    /// it. A no-op with a log line on other systems, older kernels and real-time scheduling classes.
    /// <para>
    /// Default 0.1 ms, chosen by measurement (docs/PERFORMANCE.md, "The light-load tail: wake-up latency and the
    /// scheduler slice"): beside a CPU-bound neighbour it takes the p99 wake-up delay from ~4 ms to ~50 µs, and at
    /// 1,000 ops/s the ack and ping p99 by 20–36 %; at saturation it may cost a few per cent of CPU per op (more
    /// preemption among the server's own threads), where zero restores the kernel's default.
    /// </para>
    /// </summary>
    public TimeSpan SchedulerSlice { get; set; } = DefaultSlice;

    /// <summary>The default <see cref="SchedulerSlice"/>: the kernel's minimum.</summary>
    public static TimeSpan DefaultSlice => MinSlice;

    public void Validate()
    {
        if (SchedulerSlice != TimeSpan.Zero && (SchedulerSlice < MinSlice || SchedulerSlice > MaxSlice))
        {
            throw SettingErrors.ForSetting(
                Section,
                typeof(SchedulingOptions),
                nameof(SchedulerSlice),
                $"must be zero (the kernel's default) or between {MinSlice} and {MaxSlice} (was {SchedulerSlice}).");
        }
    }
}
