namespace Collab.Server.Security;

/// <summary>A token-bucket rate: a sustained rate per second and a burst (the bucket's size). A zero rate is "unlimited".</summary>
internal readonly record struct RateLimit(double PerSecond, double Burst)
{
    public bool IsUnlimited => PerSecond <= 0;

    /// <summary>Seconds until one token is back in an empty bucket (a Retry-After hint).</summary>
    public double SecondsPerToken => IsUnlimited ? 0 : 1 / PerSecond;
}

/// <summary>
/// Token-bucket state: refilled lazily from the elapsed time on each take, so an idle bucket costs no timer.
/// Not thread-safe (a connection's messages are handled one at a time); shared buckets are guarded by their owner.
/// Timestamps are <see cref="TimeProvider.GetTimestamp"/> ticks.
/// </summary>
internal struct TokenBucket
{
    private double _tokens;
    private long _updated;

    /// <summary>A full bucket as of <paramref name="now"/>.</summary>
    public TokenBucket(RateLimit limit, long now)
    {
        _tokens = limit.Burst;
        _updated = now;
    }

    /// <summary>Takes one token if there is one.</summary>
    public bool TryTake(in RateLimit limit, long now, long timestampFrequency)
    {
        if (limit.IsUnlimited)
        {
            return true;
        }

        Refill(limit, now, timestampFrequency);
        if (_tokens >= 1)
        {
            _tokens -= 1;
            return true;
        }

        return false;
    }

    /// <summary>Whether the bucket is full again (the state can be forgotten without changing any future decision).</summary>
    public bool IsFull(in RateLimit limit, long now, long timestampFrequency)
    {
        Refill(limit, now, timestampFrequency);
        return _tokens >= limit.Burst;
    }

    private void Refill(in RateLimit limit, long now, long timestampFrequency)
    {
        long elapsed = now - _updated;
        if (elapsed > 0)
        {
            _tokens = Math.Min(limit.Burst, _tokens + (elapsed * limit.PerSecond / timestampFrequency));
            _updated = now;
        }
    }
}
