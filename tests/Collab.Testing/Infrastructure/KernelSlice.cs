using System.Globalization;
using System.Text.RegularExpressions;

namespace Collab.Integration.Tests.Infrastructure;

/// <summary>
/// The EEVDF slice the kernel reports for a task: <c>se.slice</c> (nanoseconds) in <c>/proc/…/sched</c>, what the
/// scheduler-slice tests of the server and of the load tool's generator read back.
/// </summary>
public static partial class KernelSlice
{
    /// <summary><c>se.slice</c> from the text of a <c>sched</c> file, or -1 when it has none (a kernel without EEVDF).</summary>
    public static long Parse(string sched)
    {
        Match slice = SliceLine().Match(sched);
        return slice.Success ? long.Parse(slice.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
    }

    /// <summary>The calling thread's slice (<c>/proc/thread-self/sched</c>), or -1.</summary>
    public static long OfCurrentThread() => Parse(File.ReadAllText("/proc/thread-self/sched"));

    [GeneratedRegex(@"^se\.slice\s*:\s*(\d+)", RegexOptions.Multiline)]
    private static partial Regex SliceLine();
}
