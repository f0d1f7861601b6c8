using System.Globalization;

namespace Collab.LoadTest.Hosting;

/// <summary>CPU time and memory of a process at one instant.</summary>
internal readonly record struct ProcessSample(double CpuSeconds, long RssBytes, long PeakRssBytes)
{
    public static ProcessSample None { get; } = new(double.NaN, 0, 0);

    public bool IsValid => !double.IsNaN(CpuSeconds);
}

/// <summary>Reads /proc for a process (the spawned server) and the runtime's own counters for the generator.</summary>
internal static class ProcessStats
{
    /// <summary>USER_HZ: the unit of utime/stime in /proc/pid/stat; 100 on every Linux the tool targets.</summary>
    private const double ClockTicksPerSecond = 100;

    /// <summary>The generator itself.</summary>
    public static ProcessSample Self()
    {
        long peak = 0;
        if (OperatingSystem.IsLinux())
        {
            (_, peak) = ReadStatus("/proc/self/status");
        }

        return new ProcessSample(Environment.CpuUsage.TotalTime.TotalSeconds, Environment.WorkingSet, peak);
    }

    /// <summary>Another process by id; <see cref="ProcessSample.None"/> when it is gone or /proc is unavailable.</summary>
    public static ProcessSample Of(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // Fields after the parenthesised command (which may contain spaces): state is field 3, utime 14, stime 15.
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            double cpu = (double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture)) / ClockTicksPerSecond;
            (long rss, long peak) = ReadStatus($"/proc/{pid}/status");
            return new ProcessSample(cpu, rss, peak);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return ProcessSample.None;
        }
    }

    /// <summary>The machine's 1-minute load average (/proc/loadavg), NaN where there is none: how busy the shared machine was.</summary>
    public static double LoadAverage()
    {
        try
        {
            string text = File.ReadAllText("/proc/loadavg");
            return double.Parse(text.AsSpan(0, text.IndexOf(' ', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or ArgumentOutOfRangeException)
        {
            return double.NaN;
        }
    }

    private static (long Rss, long Peak) ReadStatus(string path)
    {
        long rss = 0;
        long peak = 0;
        foreach (string line in File.ReadLines(path))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = ParseKb(line);
            }
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                peak = ParseKb(line);
            }
        }

        return (rss, peak);
    }

    private static long ParseKb(string line)
    {
        string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return long.Parse(parts[1], CultureInfo.InvariantCulture) * 1024;
    }
}
