using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Collab.LoadTest.Hosting;

/// <summary>
/// The few Linux calls the generator needs and .NET does not expose: the open-files limit, absolute-deadline
/// sleeps on CLOCK_MONOTONIC (the clock behind <see cref="Stopwatch"/> on Linux) with a tight timer slack,
/// and SIGTERM for a graceful server stop. Every call degrades to a managed fallback off Linux.
/// </summary>
internal static partial class Native
{
    private const int RlimitNofile = 7;
    private const int ClockMonotonic = 1;
    private const int TimerAbstime = 1;
    private const int PrSetTimerslack = 29;
    private const int Sigterm = 15;
    private const int PrioProcess = 0;

    /// <summary>
    /// True when <see cref="Stopwatch.GetTimestamp"/> counts nanoseconds of CLOCK_MONOTONIC, so a scheduled
    /// timestamp can be handed to clock_nanosleep as an absolute deadline. Checked once against the clock itself.
    /// </summary>
    public static bool MonotonicSleepAvailable { get; } = ProbeMonotonicClock();

    /// <summary>Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force (0 if unknown).</summary>
    public static ulong RaiseOpenFileLimit()
    {
        if (!OperatingSystem.IsLinux())
        {
            return 0;
        }

        if (getrlimit(RlimitNofile, out RLimit limit) != 0)
        {
            return 0;
        }

        if (limit.Current < limit.Max)
        {
            var raised = new RLimit { Current = limit.Max, Max = limit.Max };
            if (setrlimit(RlimitNofile, in raised) == 0)
            {
                return limit.Max;
            }
        }

        return limit.Current;
    }

    /// <summary>
    /// Lowers the calling thread's timer slack to 1 ns. The default 50 µs slack lets the kernel delay a wake-up
    /// by that much, which would show up as generator lateness in sub-100 µs latency figures.
    /// </summary>
    public static void SetTightTimerSlack()
    {
        if (OperatingSystem.IsLinux())
        {
            _ = prctl(PrSetTimerslack, 1, 0, 0, 0);
        }
    }

    /// <summary>Sleeps until the <see cref="Stopwatch"/> timestamp <paramref name="deadline"/> (returns at once if it passed).</summary>
    public static void SleepUntil(long deadline)
    {
        if (MonotonicSleepAvailable)
        {
            var request = new Timespec { Seconds = deadline / 1_000_000_000, Nanoseconds = deadline % 1_000_000_000 };
            _ = clock_nanosleep(ClockMonotonic, TimerAbstime, in request, IntPtr.Zero);
            return;
        }

        long remaining = deadline - Stopwatch.GetTimestamp();
        if (remaining > 0)
        {
            Thread.Sleep(TimeSpan.FromTicks(Math.Max(1, remaining * TimeSpan.TicksPerSecond / Stopwatch.Frequency)));
        }
    }

    /// <summary>
    /// Gives the calling thread the highest CFS weight (nice -20), so a scheduler thread woken for its next slot
    /// preempts the receive work sharing its core at once instead of after that work's time slice (~3 ms): the
    /// generator's own lateness would otherwise dominate sub-millisecond p99 figures. Needs CAP_SYS_NICE (root);
    /// returns false when refused, and the lag then shows in the report as before.
    /// </summary>
    public static bool RaiseThreadPriority()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        try
        {
            return setpriority(PrioProcess, (uint)gettid(), -20) == 0;
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }
    }

    /// <summary>Asks a process to stop (SIGTERM). False off Linux or when the signal could not be sent.</summary>
    public static bool Terminate(int pid) => OperatingSystem.IsLinux() && kill(pid, Sigterm) == 0;

    /// <summary>The CPUs this process may run on, as the kernel lists them (e.g. "1" or "0-1"); null off Linux.</summary>
    public static string? AllowedCpuList()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
            {
                return line["Cpus_allowed_list:".Length..].Trim();
            }
        }

        return null;
    }

    private static bool ProbeMonotonicClock()
    {
        if (!OperatingSystem.IsLinux() || Stopwatch.Frequency != 1_000_000_000)
        {
            return false;
        }

        try
        {
            long before = Stopwatch.GetTimestamp();
            if (clock_gettime(ClockMonotonic, out Timespec now) != 0)
            {
                return false;
            }

            long after = Stopwatch.GetTimestamp();
            long clock = (now.Seconds * 1_000_000_000) + now.Nanoseconds;
            return clock >= before - 1_000_000 && clock <= after + 1_000_000;
        }
        catch (DllNotFoundException)
        {
            return false;
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Max;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrlimit(int resource, out RLimit limit);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setrlimit(int resource, in RLimit limit);

    [LibraryImport("libc")]
    private static partial int clock_nanosleep(int clock, int flags, in Timespec request, IntPtr remain);

    [LibraryImport("libc")]
    private static partial int clock_gettime(int clock, out Timespec time);

    [LibraryImport("libc")]
    private static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setpriority(int which, uint who, int priority);

    [LibraryImport("libc")]
    private static partial int gettid();
}
