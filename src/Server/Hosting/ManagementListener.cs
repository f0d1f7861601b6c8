using System.Net;
using System.Net.Sockets;
using System.Text;
using Collab.Server.Security;
using Collab.Server.Transport;

namespace Collab.Server.Hosting;

/// <summary>
/// /healthz, /readyz and /metrics on their own port (<see cref="TransportOptions.ManagementPort"/>), served by dedicated
/// threads instead of the thread pool. On the WebSocket port a probe waits in the pool's queue behind the client work,
/// so an overloaded server answered scrapes in 1–8 s and an orchestrator's liveness probe could restart a server that
/// was only busy. Here a request needs only its own thread's share of the CPU (a scrape is ~3 ms of it).
/// Deliberately small: GET/HEAD of the read-only probe routes, one request per connection (Connection: close), a few
/// connections at once, bounded request heads and a short deadline for the whole head.
/// <para>
/// A probe port must stay answerable, so a handful of connections that say nothing (or trickle bytes) cannot hold it:
/// a connection is only "being served" once its request head has arrived, and until then it can be dropped to make
/// room. One address (IPv6: its /64) holds at most <see cref="MaxConnectionsPerAddress"/> of the slots, so another
/// address always finds one; a new connection from an address at that share, or arriving when every slot is taken,
/// replaces the oldest connection still waiting for its request (of its own address, or of the address holding the
/// most). Only when every slot it could take is answering a request is it answered 503, and answering takes
/// milliseconds.
/// </para>
/// </summary>
internal sealed class ManagementListener : IHostedService, IDisposable
{
    /// <summary>Connections served at once; probes and scrapers need one or two.</summary>
    internal const int MaxConcurrentConnections = 4;

    /// <summary>Slots one client address may hold, so that one address cannot take them all.</summary>
    internal const int MaxConnectionsPerAddress = MaxConcurrentConnections / 2;

    private readonly TimeSpan _requestTimeout;

    private readonly TransportOptions _options;
    private readonly ProbeEndpoints _probes;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly List<Slot> _slots = new(MaxConcurrentConnections + 1); // guarded by _gate, oldest first
    private Socket? _listener;
    private Thread? _acceptThread;
    private volatile bool _stopping;

    /// <param name="options">The transport options (ManagementPort, ListenAddress).</param>
    /// <param name="probes">The endpoints it serves.</param>
    /// <param name="logger">Start, stop and failures of the listener.</param>
    /// <param name="requestTimeout">
    /// Time a connection has to deliver its whole request head (default 2 s; a probe or a scraper sends it at once): a
    /// client trickling bytes cannot hold one of the few threads for longer, even when nobody needs its slot.
    /// </param>
    public ManagementListener(TransportOptions options, ProbeEndpoints probes, ILogger<ManagementListener> logger, TimeSpan? requestTimeout = null)
    {
        _requestTimeout = requestTimeout ?? TimeSpan.FromSeconds(2);
        _options = options;
        _probes = probes;
        _logger = logger;
    }

    /// <summary>The port bound (useful when <see cref="TransportOptions.ManagementPort"/> is 0); 0 before start or when off.</summary>
    public int BoundPort { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_options.ManagementPort is not { } port)
        {
            return Task.CompletedTask;
        }

        Socket listener = string.IsNullOrEmpty(_options.ListenAddress) ? BindAny(port) : Bind(IPAddress.Parse(_options.ListenAddress), port);
        listener.Listen(16);
        _listener = listener;
        BoundPort = ((IPEndPoint)listener.LocalEndPoint!).Port;
        _acceptThread = new Thread(AcceptLoop) { Name = "collab-management", IsBackground = true };
        _acceptThread.Start();
        HostingLog.ManagementListening(_logger, BoundPort);
        return Task.CompletedTask;
    }

    /// <summary>Every interface: IPv6 dual-stack, or IPv4 alone on a host without IPv6 (as Kestrel's ListenAnyIP does).</summary>
    private static Socket BindAny(int port)
    {
        if (Socket.OSSupportsIPv6)
        {
            try
            {
                return Bind(IPAddress.IPv6Any, port);
            }
            catch (SocketException)
            {
                // IPv6 present but not usable here: fall back to IPv4.
            }
        }

        return Bind(IPAddress.Any, port);
    }

    private static Socket Bind(IPAddress address, int port)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            socket.Bind(new IPEndPoint(address, port));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        _listener?.Dispose(); // ends the blocking Accept
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        // Disposed without StopAsync (a host torn down after a failed start, a test's using): the accept thread must see
        // that it is stopping, or the Accept that the disposal ends would throw on a thread nobody catches for.
        _stopping = true;
        _listener?.Dispose();
    }

    private void AcceptLoop()
    {
        while (!_stopping)
        {
            Socket client;
            try
            {
                client = _listener!.Accept();
            }
            catch (Exception ex) when (_stopping || ex is ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex)
            {
                HostingLog.ManagementAcceptFailed(_logger, ex);
                continue;
            }

            var slot = new Slot(client, AddressOf(client));
            Slot? replaced;
            bool admitted;
            lock (_gate)
            {
                admitted = TryAdmitLocked(slot, out replaced);
            }

            if (replaced is not null)
            {
                TransportMetrics.ManagementConnectionsDropped(idle: true).Inc();
                replaced.Drop();
            }

            if (!admitted)
            {
                TransportMetrics.ManagementConnectionsDropped(idle: false).Inc();
                TrySend(client, Response(503, "text/plain; charset=utf-8", "too many management connections\n"u8.ToArray(), head: false));
                client.Dispose();
                continue;
            }

            new Thread(() => Serve(slot)) { Name = "collab-management-conn", IsBackground = true }.Start();
        }
    }

    /// <summary>
    /// Takes a slot for <paramref name="slot"/>, replacing the oldest connection still waiting for its request when the
    /// address is at its share or the pool is full (<paramref name="replaced"/>, to be dropped). False: every slot it
    /// could take is answering a request.
    /// </summary>
    private bool TryAdmitLocked(Slot slot, out Slot? replaced)
    {
        replaced = null;
        int fromAddress = 0;
        foreach (Slot other in _slots)
        {
            fromAddress += other.Address == slot.Address ? 1 : 0;
        }

        if (fromAddress >= MaxConnectionsPerAddress)
        {
            replaced = _slots.Find(other => other.Address == slot.Address && !other.Serving);
        }
        else if (_slots.Count >= MaxConcurrentConnections)
        {
            // The waiting connection of the address holding the most slots; the oldest among equals (the list is in
            // arrival order, and only a strictly larger share displaces an earlier candidate).
            int bestShare = 0;
            foreach (Slot other in _slots)
            {
                int share = other.Serving ? 0 : _slots.Count(o => o.Address == other.Address);
                if (share > bestShare)
                {
                    (replaced, bestShare) = (other, share);
                }
            }
        }
        else
        {
            _slots.Add(slot);
            return true;
        }

        if (replaced is null)
        {
            return false;
        }

        replaced.Dropped = true;
        _slots.Remove(replaced);
        _slots.Add(slot);
        return true;
    }

    private void Serve(Slot slot)
    {
        Socket client = slot.Socket;
        try
        {
            client.SendTimeout = (int)_requestTimeout.TotalMilliseconds;
            client.NoDelay = true;
            byte[]? head = ReadHead(client);
            lock (_gate)
            {
                if (slot.Dropped)
                {
                    return; // replaced while it waited: its socket is closed
                }

                slot.Serving = true; // from now on nobody can take this slot
            }

            TrySend(client, Handle(head));
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Timed out, reset, or dropped to make room: nothing to answer.
        }
        catch (Exception ex)
        {
            HostingLog.ManagementRequestFailed(_logger, ex);
            TrySend(client, Response(500, "text/plain; charset=utf-8", "internal error\n"u8.ToArray(), head: false));
        }
        finally
        {
            lock (_gate)
            {
                _slots.Remove(slot);
            }

            client.Dispose();
        }
    }

    /// <summary>The address a slot counts against: IPv4 alone, IPv6 per /64 (as the connection-attempt limit counts).</summary>
    private static UInt128 AddressOf(Socket client) =>
        client.RemoteEndPoint is IPEndPoint remote ? ConnectionAttemptLimiter.KeyOf(remote.Address) : UInt128.Zero;

    /// <summary>
    /// Reads up to the blank line that ends the request head; null when it is too large or the peer closed first. Throws
    /// <see cref="SocketException"/> (TimedOut) when the whole head has not arrived within the request timeout.
    /// </summary>
    private byte[]? ReadHead(Socket client)
    {
        byte[] buffer = new byte[_options.MaxRequestHeaderBytes];
        int filled = 0;
        long deadline = Environment.TickCount64 + (long)_requestTimeout.TotalMilliseconds;
        while (filled < buffer.Length)
        {
            long remaining = deadline - Environment.TickCount64;
            if (remaining <= 0)
            {
                throw new SocketException((int)SocketError.TimedOut);
            }

            client.ReceiveTimeout = (int)Math.Max(1, remaining);
            int read = client.Receive(buffer, filled, buffer.Length - filled, SocketFlags.None);
            if (read == 0)
            {
                return null;
            }

            int searchFrom = Math.Max(0, filled - 3);
            filled += read;
            int end = buffer.AsSpan(searchFrom, filled - searchFrom).IndexOf("\r\n\r\n"u8);
            if (end >= 0)
            {
                return buffer.AsSpan(0, searchFrom + end).ToArray();
            }
        }

        return null;
    }

    private byte[] Handle(byte[]? head)
    {
        const string TextPlain = "text/plain; charset=utf-8";
        if (head is null || HttpRequestParser.Parse(head, out HttpRequestHead? request) != HttpParseStatus.Complete || request is null)
        {
            return Response(400, TextPlain, "bad request\n"u8.ToArray(), head: false);
        }

        if (!ProbeEndpoints.IsProbe(request.Path))
        {
            return Response(404, TextPlain, "not found\n"u8.ToArray(), request.IsHead);
        }

        if (!request.IsGet && !request.IsHead)
        {
            return Response(405, TextPlain, "method not allowed\n"u8.ToArray(), head: false, "Allow: GET, HEAD\r\n");
        }

        // The probe handlers complete synchronously (readiness is a flag check, a scrape writes to a MemoryStream),
        // so waiting here never needs a pool thread.
        PlainHttpResponse response = _probes.ServeAsync(request.Path, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        return Response(response.StatusCode, response.ContentType, response.Body.ToArray(), request.IsHead);
    }

    private static byte[] Response(int status, string contentType, byte[] body, bool head, string? extraHeaders = null)
    {
        byte[] headerBytes = Encoding.ASCII.GetBytes(HttpResponseWriter.FormatHead(status, contentType, body.Length, keepAlive: false, extraHeaders));
        return head ? headerBytes : [.. headerBytes, .. body];
    }

    private static void TrySend(Socket client, byte[] response)
    {
        try
        {
            client.Send(response);
            client.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
            // The peer went away.
        }
    }

    /// <summary>One accepted connection; <see cref="Serving"/> and <see cref="Dropped"/> change under the listener's gate.</summary>
    private sealed class Slot(Socket socket, UInt128 address)
    {
        public Socket Socket { get; } = socket;

        public UInt128 Address { get; } = address;

        /// <summary>Its request head arrived: it is being answered and cannot be replaced.</summary>
        public bool Serving { get; set; }

        /// <summary>Replaced by a newer connection before its request arrived.</summary>
        public bool Dropped { get; set; }

        /// <summary>Closes the socket, which wakes the thread blocked reading its request.</summary>
        public void Drop()
        {
            try
            {
                Socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // Already gone.
            }

            Socket.Dispose();
        }
    }
}
