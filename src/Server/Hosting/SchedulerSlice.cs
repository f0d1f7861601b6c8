using System.Globalization;
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
/// The calls <see cref="SchedulerSlice"/> makes, behind an interface so a unit test can play a kernel that lacks the
/// feature; production uses <see cref="LinuxSchedulerCalls"/>. Each returns 0 or an errno.
/// </summary>
internal interface ISchedulerCalls
{
    /// <summary>Whether the process can make the calls at all (Linux on an architecture whose system-call numbers are known).</summary>
    bool Available { get; }

    /// <summary>The ids of the process's threads now (<c>/proc/self/task</c>).</summary>
    IReadOnlyList<int> Threads();

    int GetAttributes(int threadId, out SchedAttr attributes);

    int SetAttributes(int threadId, in SchedAttr attributes);
}

/// <summary>The kernel's <c>struct sched_attr</c> (include/uapi/linux/sched/types.h, SCHED_ATTR_SIZE_VER1).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct SchedAttr
{
    public uint Size;
    public uint Policy;
    public ulong Flags;
    public int Nice;
    public uint Priority;
    public ulong Runtime;
    public ulong Deadline;
    public ulong Period;
    public uint UtilMin;
    public uint UtilMax;
}

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
    private const uint SchedOther = 0;
    private const uint SchedBatch = 3;
    private const ulong ResetOnFork = 0x01;
    private const int NoSuchThread = 3; // ESRCH: the thread ended between listing and the call

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
                int error = calls.GetAttributes(thread, out SchedAttr attributes);
                if (error == NoSuchThread)
                {
                    continue;
                }

                if (error != 0)
                {
                    return Refused("sched_getattr", error, applied);
                }

                if (attributes.Policy is not (SchedOther or SchedBatch))
                {
                    realTime++;
                    continue;
                }

                SchedAttr wanted = attributes;
                wanted.Size = (uint)Marshal.SizeOf<SchedAttr>();
                wanted.Flags = attributes.Flags & ResetOnFork;
                wanted.Runtime = nanoseconds;
                error = calls.SetAttributes(thread, wanted);
                if (error == NoSuchThread)
                {
                    continue;
                }

                if (error != 0)
                {
                    return Refused("sched_setattr", error, applied);
                }

                error = calls.GetAttributes(thread, out SchedAttr readBack);
                if (error == NoSuchThread)
                {
                    continue;
                }

                if (error != 0)
                {
                    return Refused("sched_getattr", error, applied);
                }

                if (readBack.Runtime != nanoseconds)
                {
                    // Before Linux 6.12 the runtime of a SCHED_OTHER task is accepted and ignored; what the kernel reports
                    // back (0) says so. Undo nothing: the call changed nothing.
                    return new(SchedulerSliceOutcome.Unsupported, applied,
                        $"the kernel ignores the slice of a SCHED_OTHER thread (it reported {readBack.Runtime} ns; Linux 6.12 or later is needed)");
                }

                applied++;
            }
        }

        return applied == 0 && realTime > 0
            ? new(SchedulerSliceOutcome.RealTime, realTime, "the threads run in a real-time scheduling class")
            : new(SchedulerSliceOutcome.Applied, applied, null);
    }

    private static SchedulerSliceResult Refused(string call, int error, int applied) =>
        new(SchedulerSliceOutcome.Unsupported, applied, $"{call} failed: {Marshal.GetPInvokeErrorMessage(error)} (errno {error.ToString(CultureInfo.InvariantCulture)})");
}

/// <summary>The real calls: <c>syscall(SYS_sched_getattr/SYS_sched_setattr, ...)</c> (glibc wraps them only from 2.41).</summary>
internal sealed partial class LinuxSchedulerCalls : ISchedulerCalls
{
    public static readonly LinuxSchedulerCalls Instance = new();

    private readonly long _getAttr;
    private readonly long _setAttr;

    private LinuxSchedulerCalls()
    {
        // System-call numbers: arch/x86/entry/syscalls/syscall_64.tbl and the generic table (arm64).
        (_setAttr, _getAttr) = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => (314L, 315L),
            Architecture.Arm64 => (274L, 275L),
            _ => (-1L, -1L),
        };
        Available = OperatingSystem.IsLinux() && _getAttr > 0 && Directory.Exists("/proc/self/task");
    }

    public bool Available { get; }

    public IReadOnlyList<int> Threads()
    {
        var threads = new List<int>();
        foreach (string path in Directory.EnumerateDirectories("/proc/self/task"))
        {
            if (int.TryParse(Path.GetFileName(path), NumberStyles.None, CultureInfo.InvariantCulture, out int id))
            {
                threads.Add(id);
            }
        }

        return threads;
    }

    public unsafe int GetAttributes(int threadId, out SchedAttr attributes)
    {
        SchedAttr value = default;
        long result = Syscall(_getAttr, threadId, &value, (uint)sizeof(SchedAttr), 0);
        attributes = value;
        return result == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    public unsafe int SetAttributes(int threadId, in SchedAttr attributes)
    {
        SchedAttr value = attributes;
        long result = Syscall(_setAttr, threadId, &value, 0, 0);
        return result == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static unsafe partial long Syscall(long number, int threadId, SchedAttr* attributes, uint sizeOrFlags, uint flags);
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
