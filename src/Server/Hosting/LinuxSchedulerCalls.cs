using System.Globalization;
using System.Runtime.InteropServices;

// Linked into the load tool too (loadtest/Collab.LoadTest.csproj), which sets the slice of its generator threads: keep
// this file free of the server's other types. Each assembly gets its own namespace, so a test project that sees the
// internals of both finds no ambiguous type.
#if COLLAB_LOADTEST
namespace Collab.LoadTest.Hosting;
#else
namespace Collab.Server.Hosting;
#endif

/// <summary>
/// The calls that set a thread's scheduler slice, behind an interface so a unit test can play a kernel that lacks the
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

/// <summary>What <see cref="ThreadSlice.Set"/> did to one thread.</summary>
internal enum ThreadSliceOutcome
{
    /// <summary>The thread runs with the slice now (read back).</summary>
    Set,

    /// <summary>The thread ended before or during the call.</summary>
    Gone,

    /// <summary>The thread runs in a real-time class (SCHED_FIFO, SCHED_RR, SCHED_DEADLINE): left alone.</summary>
    RealTime,

    /// <summary>The kernel accepted the call and ignored the slice (before Linux 6.12: it reports 0 back).</summary>
    Ignored,

    /// <summary>A call failed with <see cref="ThreadSliceResult.Error"/> (e.g. EPERM under a restrictive seccomp profile).</summary>
    Failed,
}

/// <summary>The outcome for one thread, the errno of a failed call, and the slice the kernel reported back.</summary>
internal readonly record struct ThreadSliceResult(ThreadSliceOutcome Outcome, int Error, ulong ReportedNanoseconds);

/// <summary>
/// Sets one thread's EEVDF slice (<c>sched_attr.sched_runtime</c> of a SCHED_OTHER or SCHED_BATCH thread, Linux 6.12 and
/// later; the kernel clamps it to 0.1–100 ms; no privilege needed) and reads it back. Keeps the thread's policy, nice
/// value and reset-on-fork flag. A thread inherits its creator's slice.
/// </summary>
internal static class ThreadSlice
{
    private const uint SchedOther = 0;
    private const uint SchedBatch = 3;
    private const ulong ResetOnFork = 0x01;
    private const int NoSuchThread = 3; // ESRCH

    /// <summary>Sets <paramref name="nanoseconds"/> (0: back to the kernel's default) on <paramref name="threadId"/> (0: the calling thread).</summary>
    public static ThreadSliceResult Set(ISchedulerCalls calls, int threadId, ulong nanoseconds)
    {
        int error = calls.GetAttributes(threadId, out SchedAttr attributes);
        if (error != 0)
        {
            return Result(error);
        }

        if (attributes.Policy is not (SchedOther or SchedBatch))
        {
            return new(ThreadSliceOutcome.RealTime, 0, 0);
        }

        SchedAttr wanted = attributes;
        wanted.Size = (uint)Marshal.SizeOf<SchedAttr>();
        wanted.Flags = attributes.Flags & ResetOnFork;
        wanted.Runtime = nanoseconds;
        error = calls.SetAttributes(threadId, wanted);
        if (error != 0)
        {
            return Result(error);
        }

        error = calls.GetAttributes(threadId, out SchedAttr readBack);
        if (error != 0)
        {
            return Result(error);
        }

        // A reset (0) reads back as the kernel's base slice; a slice that did not take reads back as 0.
        return nanoseconds == 0 || readBack.Runtime == nanoseconds
            ? new(ThreadSliceOutcome.Set, 0, readBack.Runtime)
            : new(ThreadSliceOutcome.Ignored, 0, readBack.Runtime);
    }

    /// <summary>Why a failed call failed, in words (for logs and reports).</summary>
    public static string Describe(int error) =>
        $"{Marshal.GetPInvokeErrorMessage(error)} (errno {error.ToString(CultureInfo.InvariantCulture)})";

    private static ThreadSliceResult Result(int error) =>
        error == NoSuchThread ? new(ThreadSliceOutcome.Gone, error, 0) : new(ThreadSliceOutcome.Failed, error, 0);
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

    /// <summary>A thread's name as the kernel keeps it (<c>comm</c>, 15 bytes at most), or null once it ended.</summary>
    public static string? ThreadName(int threadId)
    {
        try
        {
            return File.ReadAllText($"/proc/self/task/{threadId.ToString(CultureInfo.InvariantCulture)}/comm").TrimEnd('\n');
        }
        catch (IOException)
        {
            return null;
        }
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

