using Prometheus;

namespace Collab.Server.Transport;

/// <summary>Why a request was refused before (or instead of) the WebSocket upgrade.</summary>
internal enum HandshakeFailure
{
    BadRequest,
    MethodNotAllowed,
    UpgradeRequired,
    UnsupportedVersion,
    OriginForbidden,
    HeadersTooLarge,
    ApplicationRejected,
    Timeout,
}

/// <summary>Why a connection or an otherwise valid upgrade was refused for capacity reasons (503; 429 for an address over its share).</summary>
internal enum ConnectionRejection
{
    MaxConnections,
    ShuttingDown,
    PendingHandshakes,
    PendingHandshakesPerAddress,
}

/// <summary>
/// The transport's Prometheus metrics (prefixes collab_ws_, collab_tcp_, collab_http_, collab_management_), declared
/// like every metrics class of the server (docs/OPERATIONS.md, "Metrics in the code"): a static class per concern, in the
/// prometheus-net default registry, so every server instance in a process shares them. Labelled children are resolved
/// once here: hot paths index arrays and never allocate label arrays. Per-message counters are updated once per read or
/// write batch, not per frame.
/// </summary>
internal static class TransportMetrics
{
    private static readonly Counter.Child[] s_closed;
    private static readonly Counter.Child[] s_handshakeFailures;
    private static readonly Counter.Child[] s_rejected;
    private static readonly Counter.Child s_protocolError;
    private static readonly Counter.Child s_invalidPayload;
    private static readonly Counter.Child s_messageTooBig;
    private static readonly Counter.Child s_managementIdle;
    private static readonly Counter.Child s_managementRefused;

    static TransportMetrics()
    {
        ConnectionsOpen = Metrics.CreateGauge("collab_ws_connections_open", "WebSocket connections currently open.");
        ConnectionsTotal = Metrics.CreateCounter("collab_ws_connections_total", "WebSocket connections accepted (101 sent).");
        TcpConnectionsOpen = Metrics.CreateGauge("collab_tcp_connections_open", "TCP connections currently handled (any phase).");

        Counter rejected = Metrics.CreateCounter("collab_ws_connections_rejected_total", "Connections refused for capacity: valid upgrades over capacity or during shutdown (503), new connections over the server-wide pending-handshake bound (503) or over their address's share of it (429).", "reason");
        s_rejected = Children(rejected, Enum.GetValues<ConnectionRejection>(), Snake);

        Counter handshake = Metrics.CreateCounter("collab_ws_handshake_failures_total", "Requests to the WebSocket endpoint answered with an HTTP error, or connections that sent no request head in time.", "reason");
        s_handshakeFailures = Children(handshake, Enum.GetValues<HandshakeFailure>(), Snake);

        Counter closed = Metrics.CreateCounter("collab_ws_connections_closed_total", "WebSocket connections ended, by the one recorded reason.", "reason");
        s_closed = Children(closed, Enum.GetValues<ConnectionEndReason>(), Snake);

        FramesReceived = Metrics.CreateCounter("collab_ws_frames_received_total", "Frames received (data and control).");
        FramesSent = Metrics.CreateCounter("collab_ws_frames_sent_total", "Frames written to sockets.");
        MessagesReceived = Metrics.CreateCounter("collab_ws_messages_received_total", "Complete messages delivered to the application.");
        BytesReceived = Metrics.CreateCounter("collab_ws_bytes_received_total", "Frame bytes (headers and payload) received after the handshake.");
        BytesSent = Metrics.CreateCounter("collab_ws_bytes_sent_total", "Frame bytes (headers and payload) written to sockets.");
        Flushes = Metrics.CreateCounter("collab_ws_flushes_total", "Socket writes (a gathered send, or a pipe flush under TLS); frames_sent / flushes is the write coalescing factor.");
        SendBufferFull = Metrics.CreateCounter("collab_ws_send_buffer_full_total", "Direct socket sends that found the kernel's send buffer full and left the rest to an asynchronous send (a peer reading more slowly than the server writes).");
        SlowConsumerCloses = Metrics.CreateCounter("collab_ws_slow_consumer_closes_total", "Connections closed (1013) because their outbound queue passed the bound.");
        PingsSent = Metrics.CreateCounter("collab_ws_pings_sent_total", "Keep-alive pings sent to idle connections.");
        PongsMissed = Metrics.CreateCounter("collab_ws_pongs_missed_total", "Ping intervals that ended without a pong or any other frame.");
        PingsDeferred = Metrics.CreateCounter("collab_ws_pings_deferred_total", "Due keep-alive pings left to a later heartbeat tick, so that one tick does not ping thousands of connections at once.");
        Counter managementDropped = Metrics.CreateCounter("collab_management_connections_dropped_total", "Management-port connections dropped: 'idle' ones (no request yet) replaced by a newer connection, 'refused' ones answered 503 because every slot they could take was answering a request.", "reason");
        s_managementIdle = managementDropped.WithLabels("idle");
        s_managementRefused = managementDropped.WithLabels("refused");
        Counter violations = Metrics.CreateCounter("collab_ws_protocol_violations_total", "Connections failed for breaking RFC 6455, by close code.", "code");
        s_protocolError = violations.WithLabels("1002");
        s_invalidPayload = violations.WithLabels("1007");
        s_messageTooBig = violations.WithLabels("1009");
        HttpRequests = Metrics.CreateCounter("collab_http_requests_total", "HTTP requests served by the public port's HTTP pipeline, by endpoint (the route pattern without its leading slash, e.g. healthz or v1/docs/{id}; not_found; other).", "endpoint");
    }

    public static Gauge ConnectionsOpen { get; }

    public static Gauge TcpConnectionsOpen { get; }

    public static Counter ConnectionsTotal { get; }

    public static Counter FramesReceived { get; }

    public static Counter FramesSent { get; }

    public static Counter MessagesReceived { get; }

    public static Counter BytesReceived { get; }

    public static Counter BytesSent { get; }

    public static Counter Flushes { get; }

    public static Counter SlowConsumerCloses { get; }

    public static Counter SendBufferFull { get; }

    /// <summary>A management-port connection dropped: an idle one replaced, or a new one refused (503).</summary>
    public static Counter.Child ManagementConnectionsDropped(bool idle) => idle ? s_managementIdle : s_managementRefused;

    public static Counter PingsSent { get; }

    public static Counter PongsMissed { get; }

    public static Counter PingsDeferred { get; }

    public static Counter HttpRequests { get; }

    /// <summary>
    /// HTTP requests served so far, all endpoints together (the labelled <see cref="HttpRequests"/> has no total to read
    /// cheaply): part of the activity that keeps <see cref="Hosting.QuietCompactionService"/> from pausing the server.
    /// </summary>
    public static long HttpRequestsServed => Volatile.Read(ref s_httpRequestsServed);

    private static long s_httpRequestsServed;

    /// <summary>Counts one HTTP request served (<see cref="HttpRequests"/> for <paramref name="endpoint"/> and <see cref="HttpRequestsServed"/>).</summary>
    public static void CountHttpRequest(string endpoint)
    {
        HttpRequests.WithLabels(endpoint).Inc();
        Interlocked.Increment(ref s_httpRequestsServed);
    }

    public static Counter.Child Closed(ConnectionEndReason reason) => s_closed[(int)reason];

    public static Counter.Child HandshakeFailed(HandshakeFailure reason) => s_handshakeFailures[(int)reason];

    public static Counter.Child Rejected(ConnectionRejection reason) => s_rejected[(int)reason];

    /// <summary>The violation counter for a failure close code (1002, 1007 or 1009).</summary>
    public static Counter.Child Violation(ushort closeCode) => closeCode switch
    {
        WebSocketCloseCodes.InvalidPayload => s_invalidPayload,
        WebSocketCloseCodes.MessageTooBig => s_messageTooBig,
        _ => s_protocolError,
    };

    /// <summary>PascalCase enum name to the snake_case label value Prometheus conventions expect.</summary>
    internal static string Snake<T>(T value)
        where T : struct, Enum
    {
        string name = value.ToString();
        var builder = new System.Text.StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
            {
                builder.Append('_');
            }

            builder.Append(char.ToLowerInvariant(name[i]));
        }

        return builder.ToString();
    }

    private static Counter.Child[] Children<T>(Counter counter, T[] values, Func<T, string> label)
        where T : struct, Enum
    {
        var children = new Counter.Child[values.Length];
        foreach (T value in values)
        {
            children[Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture)] = counter.WithLabels(label(value));
        }

        return children;
    }
}
