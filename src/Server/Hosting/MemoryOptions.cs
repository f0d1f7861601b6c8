namespace Collab.Server.Hosting;

/// <summary>How the server gives memory back after a burst (configuration section "Memory"); see <see cref="QuietCompactionService"/>.</summary>
public sealed class MemoryOptions
{
    public const string Section = "Memory";

    /// <summary>
    /// Run one blocking, compacting full collection when the managed heap has grown by <see cref="CompactAfterHeapGrowth"/>
    /// and the server has been quiet for <see cref="QuietPeriod"/>. No collection runs on an idle server otherwise, so
    /// whatever a burst of connections or traffic left behind (dead objects, free space between live ones, gen-0 space)
    /// stays resident until the next burst.
    /// </summary>
    public bool CompactWhenQuiet { get; set; } = true;

    /// <summary>
    /// Bytes the managed heap (<c>GC.GetTotalMemory(false)</c>: live objects and garbage not yet collected) must have grown
    /// since its lowest point after the last compacting full collection before a compaction is worth its pause.
    /// </summary>
    public long CompactAfterHeapGrowth { get; set; } = 32L * 1024 * 1024;

    /// <summary>How long the server must have been quiet (every check at most <see cref="QuietMaxEventsPerSecond"/>).</summary>
    public TimeSpan QuietPeriod { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Activity a quiet server may still have, per second: WebSocket messages received, connections accepted and ops
    /// committed (the HTTP API's included). Keep-alive pings and pongs are not counted (control frames).
    /// </summary>
    public double QuietMaxEventsPerSecond { get; set; } = 5;

    /// <summary>The floor between two compactions, whatever the heap and the traffic do.</summary>
    public TimeSpan MinInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often the traffic counters and the heap are sampled.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromSeconds(1);

    public void Validate()
    {
        var errors = new SettingErrors(Section, typeof(MemoryOptions));
        errors.Positive(CompactAfterHeapGrowth, nameof(CompactAfterHeapGrowth));
        errors.Positive(QuietPeriod, nameof(QuietPeriod), allowZero: true);
        errors.Positive(MinInterval, nameof(MinInterval), allowZero: true);
        errors.Positive(CheckInterval, nameof(CheckInterval));
        if (!(QuietMaxEventsPerSecond >= 0) || double.IsInfinity(QuietMaxEventsPerSecond))
        {
            errors.Add(nameof(QuietMaxEventsPerSecond), $"must be a finite number, zero or positive (was {QuietMaxEventsPerSecond}).");
        }

        if (QuietPeriod > TimeSpan.Zero && CheckInterval > QuietPeriod)
        {
            errors.Add(nameof(CheckInterval), $"({CheckInterval}) must not be longer than {Section}:{nameof(QuietPeriod)} ({QuietPeriod}): quiet is judged check by check.");
        }

        errors.ThrowIfAny();
    }
}
