using System.Runtime.InteropServices;

namespace Collab.Server.Hosting;

/// <summary>What <see cref="SchedulerSlice.Apply(TimeSpan, ILogger)"/> did.</summary>
internal enum SchedulerSliceOutcome
{
    /// <summary>The setting is zero: the kernel's default slice is left in force.</summary>
    Disabled,

    /// <summary>Every SCHED_OTHER/SCHED_BATCH thread of the process runs with the slice (threads started later inherit it).</summary>
    Applied,

    /// <summary>Nothing changed: not Linux, an architecture without known system-call numbers, a kernel that ignores the
    /// slice of a SCHED_OTHER thread (before 6.12), or the call was refused.</summary>
    Unsupported,

    /// <summary>Nothing changed: the threads run in a real-time class (e.g. under <c>chrt -f</c>), where a slice means nothing.</summary>
    RealTime,
}

/// <summary>The outcome, how many threads were set, and why not when nothing was.</summary>
internal readonly record struct SchedulerSliceResult(SchedulerSliceOutcome Outcome, int Threads, string? Reason);

/// <summary>
/// Applies <see cref="SchedulingOptions.SchedulerSlice"/> to the process: sets <c>sched_attr.sched_runtime</c> (the
/// EEVDF slice of a SCHED_OTHER task; Linux clamps it to 0.1–100 ms) on every thread in <c>/proc/self/task</c>, then
/// reads it back. A thread inherits its creator's slice, so once every existing thread has it the thread pool's and the
/// sockets' later threads do too; the list is read again until a pass finds no new thread, for threads started while
/// it ran. Keeps each thread's policy, nice value and reset-on-fork flag. No privilege is needed for a SCHED_OTHER
/// thread to change its own slice. Kernels before 6.12 accept the call and ignore the value (sched_getattr then reports
/// 0), which is detected by the read-back and reported as unsupported.
/// </summary>
internal static class SchedulerSlice
{
    public static SchedulerSliceResult Apply(TimeSpan slice, ILogger logger) => Apply(slice, LinuxSchedulerCalls.Instance, logger);

    public static SchedulerSliceResult Apply(TimeSpan slice, ISchedulerCalls calls, ILogger logger)
    {
        SchedulerSliceResult result = Set(slice, calls);
        double micros = slice.TotalMicroseconds;
        switch (result.Outcome)
        {
            case SchedulerSliceOutcome.Applied:
                SchedulingLog.SliceApplied(logger, micros, result.Threads);
                break;
            case SchedulerSliceOutcome.Unsupported:
                SchedulingLog.SliceUnsupported(logger, micros, result.Reason ?? "");
                break;
            case SchedulerSliceOutcome.RealTime:
                SchedulingLog.SliceRealTime(logger, micros, result.Threads);
                break;
            case SchedulerSliceOutcome.Disabled:
                break;
        }

        return result;
    }

    private static SchedulerSliceResult Set(TimeSpan slice, ISchedulerCalls calls)
    {
        if (slice == TimeSpan.Zero)
        {
            return new(SchedulerSliceOutcome.Disabled, 0, null);
        }

        if (slice < SchedulingOptions.MinSlice || slice > SchedulingOptions.MaxSlice)
        {
            throw new ArgumentOutOfRangeException(nameof(slice), slice, "The kernel accepts 0.1-100 ms.");
        }

        if (!calls.Available)
        {
            return new(SchedulerSliceOutcome.Unsupported, 0, $"sched_setattr is not available on {RuntimeInformation.OSDescription} ({RuntimeInformation.ProcessArchitecture})");
        }

        ulong nanoseconds = (ulong)(slice.Ticks * 100);
        var seen = new HashSet<int>();
        int applied = 0;
        int realTime = 0;
        for (bool found = true; found;)
        {
            found = false;
            foreach (int thread in calls.Threads())
            {
                if (!seen.Add(thread))
                {
                    continue;
                }

                found = true;
                ThreadSliceResult result = ThreadSlice.Set(calls, thread, nanoseconds);
                switch (result.Outcome)
                {
                    case ThreadSliceOutcome.Set:
                        applied++;
                        break;
                    case ThreadSliceOutcome.RealTime:
                        realTime++;
                        break;
                    case ThreadSliceOutcome.Ignored:
                        // The call changed nothing, so there is nothing to undo on the threads before this one either.
                        return new(SchedulerSliceOutcome.Unsupported, applied,
                            $"the kernel ignores the slice of a SCHED_OTHER thread (it reported {result.ReportedNanoseconds} ns back; Linux 6.12 or later is needed)");
                    case ThreadSliceOutcome.Failed:
                        return new(SchedulerSliceOutcome.Unsupported, applied, "sched_setattr failed: " + ThreadSlice.Describe(result.Error));
                    case ThreadSliceOutcome.Gone:
                        break;
                }
            }
        }

        return applied == 0 && realTime > 0
            ? new(SchedulerSliceOutcome.RealTime, realTime, "the threads run in a real-time scheduling class")
            : new(SchedulerSliceOutcome.Applied, applied, null);
    }
}

/// <summary>Source-generated log messages of the scheduling step at start-up, with stable event ids (5190–5199).</summary>
internal static partial class SchedulingLog
{
    [LoggerMessage(5190, LogLevel.Information, "Scheduler slice of {SliceMicroseconds} µs applied to {Threads} threads (threads started later inherit it)")]
    public static partial void SliceApplied(ILogger logger, double sliceMicroseconds, int threads);

    [LoggerMessage(5191, LogLevel.Information, "Scheduler slice of {SliceMicroseconds} µs not applied: {Reason}; the kernel's default slice stays in force")]
    public static partial void SliceUnsupported(ILogger logger, double sliceMicroseconds, string reason);

    [LoggerMessage(5192, LogLevel.Information, "Scheduler slice of {SliceMicroseconds} µs not applied: {Threads} threads run in a real-time scheduling class, where it means nothing")]
    public static partial void SliceRealTime(ILogger logger, double sliceMicroseconds, int threads);
}
