namespace Collab.Client;

/// <summary>
/// When and how often a <see cref="CollabClient"/> tries to re-establish a dropped connection:
/// exponential backoff with full jitter above a floor.
/// </summary>
/// <remarks>
/// The delay before attempt <c>n</c> (1-based) is drawn uniformly from
/// <c>[MinDelay, min(MaxDelay, MinDelay · 2^n)]</c>. The floor keeps a flapping network from turning
/// into a busy loop; the jitter spreads the reconnect storm after a server restart (every client
/// disconnected at the same instant) over the whole window instead of synchronised waves.
/// </remarks>
public sealed class ReconnectPolicy
{
    /// <summary>The default: 250 ms to 30 s, retrying forever.</summary>
    public static ReconnectPolicy Default { get; } = new();

    /// <summary>Never reconnect: the first drop closes the client.</summary>
    public static ReconnectPolicy None { get; } = new() { MaxAttempts = 0 };

    /// <summary>The smallest delay before any attempt. Must be positive.</summary>
    public TimeSpan MinDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The largest delay before any attempt. Must be at least <see cref="MinDelay"/>.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How many consecutive failed attempts are made before the client gives up and closes;
    /// <see langword="null"/> retries forever, 0 never reconnects. The count restarts after every successful connection.
    /// </summary>
    public int? MaxAttempts { get; init; }

    /// <summary>Whether attempt number <paramref name="attempt"/> (1-based) may be made.</summary>
    public bool AllowsAttempt(int attempt) => MaxAttempts is not { } max || attempt <= max;

    /// <summary>The delay before attempt <paramref name="attempt"/> (1-based), with fresh jitter.</summary>
    public TimeSpan GetDelay(int attempt) => GetDelay(attempt, Random.Shared.NextDouble());

    /// <summary>The delay for a given uniform sample in [0, 1): the deterministic core of <see cref="GetDelay(int)"/>.</summary>
    internal TimeSpan GetDelay(int attempt, double unit)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(attempt, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(unit, 0.0);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(unit, 1.0);

        double min = MinDelay.Ticks;
        double max = MaxDelay.Ticks;
        // 2^n overflows double only past n = 1023; clamp the exponent so the ceiling saturates at MaxDelay.
        double ceiling = Math.Min(max, min * Math.Pow(2, Math.Min(attempt, 62)));
        return TimeSpan.FromTicks((long)(min + ((ceiling - min) * unit)));
    }

    /// <summary>Throws when the policy is inconsistent; called once when a client is created.</summary>
    internal void Validate()
    {
        if (MinDelay <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(MinDelay), MinDelay, "MinDelay must be positive.");
        }

        if (MaxDelay < MinDelay)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxDelay), MaxDelay, "MaxDelay must be at least MinDelay.");
        }

        if (MaxAttempts is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxAttempts), MaxAttempts, "MaxAttempts must be null (infinite) or non-negative.");
        }
    }
}
