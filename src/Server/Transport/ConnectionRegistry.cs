using System.Collections.Concurrent;

namespace Collab.Server.Transport;

/// <summary>
/// Every live connection of one server: ids, the WebSocket capacity limit, one shared heartbeat timer
/// that enforces all deadlines (no timer per connection: an idle connection costs no timer), and the
/// shutdown drain.
/// </summary>
internal sealed class ConnectionRegistry : IDisposable
{
    private readonly ConcurrentDictionary<long, TransportConnection> _connections = new();
    private readonly TransportOptions _options;
    private Timer? _timer;
    private long _lastId;
    private int _webSockets;
    private int _pendingHandshakes;
    private int _count;
    private int _ticking;
    private volatile bool _shuttingDown;

    public ConnectionRegistry(TransportOptions options)
    {
        _options = options;
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

    /// <summary>Connections in the HTTP phase (counted against <see cref="TransportOptions.MaxPendingHandshakes"/>).</summary>
    public int PendingHandshakes => Volatile.Read(ref _pendingHandshakes);

    /// <summary>Reserves a slot for a connection in the HTTP phase; false when <see cref="TransportOptions.MaxPendingHandshakes"/> are taken.</summary>
    public bool TryEnterHandshake()
    {
        if (Interlocked.Increment(ref _pendingHandshakes) > _options.MaxPendingHandshakes)
        {
            Interlocked.Decrement(ref _pendingHandshakes);
            return false;
        }

        return true;
    }

    public void ExitHandshake() => Interlocked.Decrement(ref _pendingHandshakes);

    /// <summary>Starts the heartbeat that enforces handshake, ping and close deadlines.</summary>
    public void Start()
    {
        _timer ??= new Timer(static state => ((ConnectionRegistry)state!).Tick(), this, _options.HeartbeatInterval, _options.HeartbeatInterval);
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

    public void Dispose() => _timer?.Dispose();

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

    /// <summary>One heartbeat: every connection's deadlines and keep-alive ping (internal: tests drive it directly).</summary>
    internal void Tick()
    {
        // A slow tick (thousands of connections on a loaded box) must not overlap the next one.
        if (Interlocked.Exchange(ref _ticking, 1) != 0)
        {
            return;
        }

        OutboundMessage? ping = null;
        try
        {
            long now = Environment.TickCount64;
            int pingBudget = PingBudget(Count);
            foreach (KeyValuePair<long, TransportConnection> entry in _connections)
            {
                entry.Value.OnHeartbeat(now, ref ping, ref pingBudget);
            }
        }
        finally
        {
            // Drops the tick's own reference: the frame is recycled once the last pinged connection has written it.
            ping?.Dispose();
            Volatile.Write(ref _ticking, 0);
        }
    }
}
