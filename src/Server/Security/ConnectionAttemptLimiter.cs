using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

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

    /// <summary>
    /// Any loopback address, also as IPv4-mapped IPv6, which is how a dual-stack listener sees IPv4 clients:
    /// <see cref="IPAddress.IsLoopback"/> alone only knows ::ffff:127.0.0.1 of the mapped 127.0.0.0/8, so clients on
    /// 127.0.0.2 and up (a load generator spreading its source ports over several addresses) were counted.
    /// </summary>
    internal static bool IsLoopback(IPAddress address) =>
        IPAddress.IsLoopback(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);

    /// <summary>IPv4 (and IPv4-mapped) addresses as themselves, IPv6 as their /64 prefix.</summary>
    internal static UInt128 KeyOf(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        Span<byte> bytes = stackalloc byte[16];
        bytes.Clear();
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            address.TryWriteBytes(bytes[12..], out _);
            return new UInt128(BinaryPrimitives.ReadUInt64BigEndian(bytes), BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]));
        }

        // The low half of an IPv4 key never exceeds 32 bits, so all ones keeps IPv6 keys apart from it.
        address.TryWriteBytes(bytes, out _);
        return new UInt128(BinaryPrimitives.ReadUInt64BigEndian(bytes), ulong.MaxValue);
    }

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
