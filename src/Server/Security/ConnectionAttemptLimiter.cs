using System.Collections.Concurrent;
using System.Net;
using Collab.Server.Transport;

namespace Collab.Server.Security;

/// <summary>
/// WebSocket upgrade attempts per client address per minute (<see cref="LimitsOptions.ConnectionAttemptsPerIpPerMinute"/>),
/// a token bucket per address so a burst up to the per-minute figure is allowed and the budget refills
/// steadily. IPv4 addresses count alone (IPv4-mapped IPv6 too); IPv6 addresses count per /64, the
/// smallest block a single subscriber is normally assigned, so rotating through one's own /64 gains
/// nothing. Loopback clients are exempt unless configured otherwise. Idle addresses are forgotten by a
/// sweep; the table is bounded (fails open beyond the bound).
/// </summary>
internal sealed class ConnectionAttemptLimiter : IDisposable
{
    private readonly ConcurrentDictionary<UInt128, Entry> _entries = new();
    private readonly RateLimit _limit;
    private readonly int _maxEntries;
    private readonly bool _exemptLoopback;
    private readonly TimeProvider _time;
    private readonly ITimer? _sweeper;

    public ConnectionAttemptLimiter(LimitsOptions options, TimeProvider time)
    {
        _time = time;
        _maxEntries = options.MaxTrackedAddresses;
        _exemptLoopback = options.ExemptLoopback;
        _limit = new RateLimit(options.ConnectionAttemptsPerIpPerMinute / 60.0, options.ConnectionAttemptsPerIpPerMinute);
        if (!_limit.IsUnlimited)
        {
            _sweeper = time.CreateTimer(static state => ((ConnectionAttemptLimiter)state!).Sweep(), this, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1));
        }
    }

    /// <summary>Addresses currently tracked.</summary>
    public int TrackedAddresses => _entries.Count;

    /// <summary>Counts one attempt from <paramref name="remote"/>; false (with a Retry-After in seconds) when it is over the limit.</summary>
    public bool TryAcquire(IPEndPoint? remote, out int retryAfterSeconds)
    {
        retryAfterSeconds = 0;
        if (_limit.IsUnlimited || remote is null || (_exemptLoopback && IsLoopback(remote.Address)))
        {
            return true;
        }

        UInt128 key = KeyOf(remote.Address);
        long now = _time.GetTimestamp();
        if (!_entries.TryGetValue(key, out Entry? entry))
        {
            if (_entries.Count >= _maxEntries)
            {
                Sweep();
                if (_entries.Count >= _maxEntries)
                {
                    // Refusing unknown addresses would let an attacker with many addresses lock everyone else out.
                    SecurityMetrics.UntrackedAddresses.Inc();
                    return true;
                }
            }

            entry = _entries.GetOrAdd(key, static (_, state) => new Entry(state.Limit, state.Now), (Limit: _limit, Now: now));
        }

        lock (entry)
        {
            if (entry.Bucket.TryTake(_limit, now, _time.TimestampFrequency))
            {
                return true;
            }
        }

        SecurityMetrics.Rejected(LimitKind.ConnectionAttempts);
        retryAfterSeconds = Math.Max(1, (int)Math.Ceiling(_limit.SecondsPerToken));
        return false;
    }

    public void Dispose() => _sweeper?.Dispose();

    /// <summary>See <see cref="ClientAddress.IsLoopback"/>.</summary>
    internal static bool IsLoopback(IPAddress address) => ClientAddress.IsLoopback(address);

    /// <summary>See <see cref="ClientAddress.KeyOf"/>.</summary>
    internal static UInt128 KeyOf(IPAddress address) => ClientAddress.KeyOf(address);

    internal void Sweep()
    {
        long now = _time.GetTimestamp();
        foreach (KeyValuePair<UInt128, Entry> pair in _entries)
        {
            bool idle;
            lock (pair.Value)
            {
                idle = pair.Value.Bucket.IsFull(_limit, now, _time.TimestampFrequency);
            }

            if (idle)
            {
                // A full bucket decides exactly like a missing one, so dropping it changes nothing.
                _entries.TryRemove(pair);
            }
        }
    }

    private sealed class Entry(RateLimit limit, long now)
    {
        public TokenBucket Bucket = new(limit, now);
    }
}
