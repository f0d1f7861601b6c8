using System.Collections.Concurrent;
using System.Net;

namespace Collab.Server.Transport;

/// <summary>
/// Every live connection of one server: ids, the WebSocket capacity limit, one shared heartbeat timer
/// that enforces all deadlines (no timer per connection: an idle connection costs no timer), and the
/// shutdown drain.
/// </summary>
internal sealed class ConnectionRegistry : IDisposable
{
    private readonly ConcurrentDictionary<long, TransportConnection> _connections;
    private readonly ConcurrentDictionary<UInt128, AddressCount> _pendingByAddress = new();
    private readonly TransportOptions _options;
    private Timer? _timer;
    private Timer? _sliceTimer;
    private long _lastId;
    private int _webSockets;
    private int _pendingHandshakes;
    private int _count;
    private int _ticking;

    // The tick in progress (only while _ticking is 1): a tick runs in slices, see BeginTick and TickSlice.
    private IEnumerator<KeyValuePair<long, TransportConnection>>? _tickCursor;
    private long _tickNow;
    private int _tickBudget;
    private int _tickSlicePings;
    private OutboundMessage? _tickPing;
    private volatile bool _shuttingDown;

    public ConnectionRegistry(TransportOptions options)
    {
        _options = options;

        // Sized for MaxConnections up front (8 B a bucket; at most 64 Ki buckets, which each tick walks): growing by
        // doubling re-creates every entry's node, and at 19,000 connections that left ~0.8 MB of dead nodes that only
        // a full collection frees (an idle server runs none).
        _connections = new ConcurrentDictionary<long, TransportConnection>(Environment.ProcessorCount, Math.Clamp(options.MaxConnections, 31, 1 << 16));
    }

    /// <summary>TCP connections currently handled (any phase).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Open WebSocket connections (counted against <see cref="TransportOptions.MaxConnections"/>).</summary>
    public int WebSocketCount => Volatile.Read(ref _webSockets);

    public bool IsShuttingDown => _shuttingDown;

    public long Add(TransportConnection connection)
    {
        long id = Interlocked.Increment(ref _lastId);
        _connections[id] = connection;
        Interlocked.Increment(ref _count);
        return id;
    }

    public void Remove(long id)
    {
        if (_connections.TryRemove(id, out _))
        {
            Interlocked.Decrement(ref _count);
        }
    }

    /// <summary>Reserves a WebSocket slot; false (with the reason) when full or draining.</summary>
    public bool TryAcquireWebSocket(out ConnectionRejection rejection)
    {
        if (_shuttingDown)
        {
            rejection = ConnectionRejection.ShuttingDown;
            return false;
        }

        if (Interlocked.Increment(ref _webSockets) > _options.MaxConnections)
        {
            Interlocked.Decrement(ref _webSockets);
            rejection = ConnectionRejection.MaxConnections;
            return false;
        }

        rejection = default;
        return true;
    }

    public void ReleaseWebSocket() => Interlocked.Decrement(ref _webSockets);

    /// <summary>
    /// Connections that are not WebSockets (yet): handshakes in progress and every connection of the HTTP pipeline,
    /// counted against <see cref="TransportOptions.MaxPendingHandshakes"/>.
    /// </summary>
    public int PendingHandshakes => Volatile.Read(ref _pendingHandshakes);

    /// <summary>Client addresses (IPv6 per /64) holding at least one pending connection.</summary>
    public int PendingAddresses => _pendingByAddress.Count;

    /// <summary>
    /// Reserves a pending-connection slot for a new connection from <paramref name="remote"/>: one of the server-wide
    /// <see cref="TransportOptions.MaxPendingHandshakes"/> and one of its address's
    /// <see cref="TransportOptions.MaxPendingHandshakesPerAddress"/> (unknown addresses, and loopback ones when exempt,
    /// are not counted per address). False, with the reason, when either is taken; otherwise release the slot once when the connection
    /// becomes a WebSocket or ends.
    /// </summary>
    public bool TryEnterHandshake(IPEndPoint? remote, out PendingSlot? slot, out ConnectionRejection rejection)
    {
        slot = null;
        AddressCount? perAddress = null;
        int perAddressLimit = _options.MaxPendingHandshakesPerAddress;
        if (perAddressLimit > 0 && remote is not null && !(_options.ExemptLoopbackAddresses && ClientAddress.IsLoopback(remote.Address)))
        {
            UInt128 key = ClientAddress.KeyOf(remote.Address);
            while (true)
            {
                perAddress = _pendingByAddress.GetOrAdd(key, static k => new AddressCount(k));
                lock (perAddress)
                {
                    if (perAddress.Removed)
                    {
                        continue; // emptied and dropped meanwhile: take the fresh entry
                    }

                    if (perAddress.Count >= perAddressLimit)
                    {
                        rejection = ConnectionRejection.PendingHandshakesPerAddress;
                        return false;
                    }

                    perAddress.Count++;
                    break;
                }
            }
        }

        if (Interlocked.Increment(ref _pendingHandshakes) > _options.MaxPendingHandshakes)
        {
            Interlocked.Decrement(ref _pendingHandshakes);
            if (perAddress is not null)
            {
                ReleaseAddress(perAddress);
            }

            rejection = ConnectionRejection.PendingHandshakes;
            return false;
        }

        slot = new PendingSlot(this, perAddress);
        rejection = default;
        return true;
    }

    private void ExitHandshake(AddressCount? perAddress)
    {
        Interlocked.Decrement(ref _pendingHandshakes);
        if (perAddress is not null)
        {
            ReleaseAddress(perAddress);
        }
    }

    private void ReleaseAddress(AddressCount perAddress)
    {
        lock (perAddress)
        {
            if (--perAddress.Count > 0)
            {
                return;
            }

            // Marked under the lock so a concurrent enter never counts on an entry that is leaving the table.
            perAddress.Removed = true;
        }

        _pendingByAddress.TryRemove(new KeyValuePair<UInt128, AddressCount>(perAddress.Key, perAddress));
    }

    /// <summary>One address's pending connections; lock it to touch the fields.</summary>
    internal sealed class AddressCount(UInt128 key)
    {
        public UInt128 Key { get; } = key;

        public int Count;

        public bool Removed;
    }

    /// <summary>
    /// A connection's hold on the pending-connection capacity (server-wide and per address). Released exactly once,
    /// whichever comes first: the upgrade to a WebSocket, or the end of the connection.
    /// </summary>
    internal sealed class PendingSlot
    {
        /// <summary>Key of the slot in the connection's items once the HTTP pipeline owns the connection.</summary>
        public static readonly object ItemsKey = new();

        private readonly ConnectionRegistry _registry;
        private readonly AddressCount? _perAddress;
        private int _released;

        internal PendingSlot(ConnectionRegistry registry, AddressCount? perAddress)
        {
            _registry = registry;
            _perAddress = perAddress;
        }

        public bool IsReleased => Volatile.Read(ref _released) != 0;

        public void Release()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                _registry.ExitHandshake(_perAddress);
            }
        }
    }

    /// <summary>Starts the heartbeat that enforces handshake, ping and close deadlines.</summary>
    public void Start()
    {
        _sliceTimer ??= new Timer(static state => ((ConnectionRegistry)state!).ContinueTick(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _timer ??= new Timer(
            static state =>
            {
                var registry = (ConnectionRegistry)state!;
                if (registry.BeginTick())
                {
                    registry.ContinueTick();
                }
            },
            this,
            _options.HeartbeatInterval,
            _options.HeartbeatInterval);
    }

    /// <summary>
    /// Stops new upgrades, closes every WebSocket with 1001 and every idle HTTP connection. Idempotent.
    /// </summary>
    public void BeginShutdown()
    {
        if (_shuttingDown)
        {
            return;
        }

        _shuttingDown = true;
        long deadline = Environment.TickCount64 + (long)_options.ShutdownTimeout.TotalMilliseconds;
        foreach (KeyValuePair<long, TransportConnection> entry in _connections)
        {
            entry.Value.CloseForShutdown(deadline);
        }
    }

    /// <summary>Waits until every connection has ended or the timeout passes; true when all ended.</summary>
    public async Task<bool> WaitForDrainAsync(TimeSpan timeout)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (Count > 0)
        {
            if (Environment.TickCount64 >= deadline)
            {
                return false;
            }

            await Task.Delay(20).ConfigureAwait(false);
        }

        return true;
    }

    /// <summary>Drops every remaining connection without further ceremony (after the shutdown deadline).</summary>
    public void AbortAll(ConnectionEndReason reason)
    {
        foreach (KeyValuePair<long, TransportConnection> entry in _connections)
        {
            entry.Value.Abort(reason);
        }
    }

    public void Dispose()
    {
        _timer?.Dispose();
        _sliceTimer?.Dispose();
    }

    /// <summary>Below this many, every due ping goes out in the tick that finds it due (internal: tests lower it).</summary>
    internal int MinPingsPerTick { get; init; } = 256;

    /// <summary>
    /// How many keep-alive pings one tick may send: twice the steady rate (every connection once per
    /// <see cref="TransportOptions.PingInterval"/>), and at least <see cref="MinPingsPerTick"/>.
    /// </summary>
    /// <remarks>
    /// Connections that connected together fall due together. Pinging thousands in one tick rents a socket buffer
    /// for each before the socket threads can send any of them, and their pongs then arrive as a burst that rents
    /// as many again: at 19,000 idle connections one such tick grew Kestrel's buffer pool by ~5,000 pinned 4 KiB blocks
    /// (21 MB), which the pool then kept. Spreading the pings over a few ticks bounds that burst; a deferred
    /// ping goes out a tick or a few later, which only lengthens the interval for that connection by as much.
    /// </remarks>
    internal int PingBudget(int connections)
    {
        double perTick = 2.0 * connections * _options.HeartbeatInterval.TotalMilliseconds / _options.PingInterval.TotalMilliseconds;
        return (int)Math.Min(int.MaxValue, Math.Max(MinPingsPerTick, Math.Ceiling(perTick)));
    }

    /// <summary>The slices a tick's pings are spread over, <see cref="SliceGapDivisor"/>-ths of the heartbeat apart.</summary>
    internal const int SlicesPerTick = 8;

    /// <summary>The gap between two slices of a tick: the heartbeat interval divided by this (the slices end within it).</summary>
    private const int SliceGapDivisor = 10;

    /// <summary>Fewest pings a slice writes, however few are due (internal: tests lower it).</summary>
    internal int MinPingsPerSlice { get; init; } = 32;

    /// <summary>How many pings one slice of a tick may write: the tick's budget over <see cref="SlicesPerTick"/>.</summary>
    internal int PingsPerSlice(int budget) => Math.Max(MinPingsPerSlice, (budget + SlicesPerTick - 1) / SlicesPerTick);

    /// <summary>One heartbeat, all at once: every connection's deadlines and keep-alive ping (internal: tests drive it directly).</summary>
    internal void Tick()
    {
        if (!BeginTick())
        {
            return;
        }

        while (TickSlice())
        {
        }
    }

    /// <summary>
    /// Starts a tick: its time, its ping budget, a cursor over the connections. False when the previous tick is still
    /// running (a slow tick, thousands of connections on a loaded box, must not overlap the next one).
    /// </summary>
    internal bool BeginTick()
    {
        if (Interlocked.Exchange(ref _ticking, 1) != 0)
        {
            return false;
        }

        _tickNow = Environment.TickCount64;
        _tickBudget = PingBudget(Count);
        _tickSlicePings = PingsPerSlice(_tickBudget);
        _tickCursor = _connections.GetEnumerator();
        return true;
    }

    /// <summary>One slice of the tick in progress, and the next one armed a fraction of the interval later.</summary>
    private void ContinueTick()
    {
        if (TickSlice())
        {
            try
            {
                _sliceTimer?.Change(_options.HeartbeatInterval / SliceGapDivisor, Timeout.InfiniteTimeSpan);
            }
            catch (ObjectDisposedException)
            {
                // Disposed meanwhile (shutdown): the tick's remaining connections are being closed anyway.
            }
        }
    }

    /// <summary>
    /// Runs one slice of the tick <see cref="BeginTick"/> started: deadlines and keep-alive pings of the next
    /// connections until <see cref="PingsPerSlice"/> pings went out. True when the tick has more connections to visit;
    /// false when it is done (or none is in progress).
    /// </summary>
    /// <remarks>
    /// A ping's pong comes back as a burst with all the others written in the same go: the socket threads receive them
    /// all (a 4 KiB block from Kestrel's pinned pool each) before the connections' read loops, queued behind them on
    /// the thread pool, consume any. The pool keeps its high-water mark: pinging a tick's whole budget (1,267 at
    /// 19,000 connections) at once left 1,280 blocks (5 MB, 0.27 KiB per idle connection) in the pool for good.
    /// Written in slices a tenth of the interval apart, each slice's pongs are in and consumed before the next slice
    /// goes out. The deadlines of one tick are all judged against the tick's start time.
    /// </remarks>
    internal bool TickSlice()
    {
        if (_tickCursor is null)
        {
            return false;
        }

        bool more = false;
        try
        {
            int sliceEnd = _tickBudget - _tickSlicePings;
            while (_tickCursor.MoveNext())
            {
                _tickCursor.Current.Value.OnHeartbeat(_tickNow, ref _tickPing, ref _tickBudget);
                if (_tickBudget <= sliceEnd && _tickBudget > 0)
                {
                    more = true;
                    break;
                }
            }
        }
        finally
        {
            if (!more)
            {
                // Drops the tick's own reference: the frame is recycled once the last pinged connection has written it.
                _tickPing?.Dispose();
                _tickPing = null;
                _tickCursor.Dispose();
                _tickCursor = null;
                Volatile.Write(ref _ticking, 0);
            }
        }

        return more;
    }
}
