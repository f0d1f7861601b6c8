using System.Runtime.InteropServices;

namespace Collab.Server.Tests.Transport.Infrastructure;

/// <summary>
/// Raises the soft open-files limit towards the hard limit on Linux: a test holding N connections
/// with both ends in one process needs 2N descriptors.
/// </summary>
public static class FileDescriptorLimit
{
    private const int RlimitNoFile = 7;

    /// <summary>Returns the soft limit in force afterwards (or long.MaxValue where not applicable).</summary>
    public static long EnsureAtLeast(long wanted)
    {
        if (!OperatingSystem.IsLinux())
        {
            return long.MaxValue;
        }

        if (GetRLimit(RlimitNoFile, out RLimit limit) != 0)
        {
            return 0;
        }

        if ((long)limit.Current < wanted && limit.Current < limit.Maximum)
        {
            var raised = new RLimit { Current = Math.Min(limit.Maximum, (ulong)wanted), Maximum = limit.Maximum };
            if (SetRLimit(RlimitNoFile, in raised) == 0)
            {
                limit = raised;
            }
        }

        return (long)limit.Current;
    }

    // DllImport rather than LibraryImport: the source-generated form needs unsafe code enabled for the whole test project.
    [DllImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static extern int GetRLimit(int resource, out RLimit limit);

    [DllImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static extern int SetRLimit(int resource, in RLimit limit);

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }
}
