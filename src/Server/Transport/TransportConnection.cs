using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;

namespace Collab.Server.Transport;

/// <summary>
/// One TCP connection from accept to close: the routing peek (a request to the WebSocket path stays here, anything else
/// is handed, unconsumed, to the ASP.NET Core HTTP pipeline), the upgrade handshake, then RFC 6455 framing over the
/// connection's <see cref="IDuplexPipe"/>, the outbound queue with write coalescing, and the close handshake. Everything is driven by one read loop plus a drain worker that is scheduled
/// only while frames are queued, so an idle connection holds no buffer, no timer and no parked writer.
/// </summary>
internal sealed partial class TransportConnection : IWebSocketConnection, IThreadPoolWorkItem
{
    /// <summary>
    /// Single-frame messages up to this size are unmasked in place in the pipe's buffer and handed to the
    /// application without a copy. Larger or fragmented messages are assembled in a pooled buffer, so the
    /// pipe never has to hold a whole large message (its pause threshold stays meaningful).
    /// </summary>
    internal const int InlineFrameLimit = 64 * 1024;

    private const int PhaseHttp = 0;
    private const int PhaseOpen = 1;
    private const int PhaseClosing = 2;
    private const int PhaseClosed = 3;

    private readonly TransportServices _services;
    private readonly TransportOptions _options;
    private PipeReader _input;
    private PipeWriter _output;
    private readonly ConnectionContext? _context;
    private readonly ConnectionDelegate? _pipeline;
    private ConnectionRegistry.PendingSlot? _pendingSlot;
    private IUpgradeResponse? _upgradeResponse;
    private readonly Lock _sync = new();

    private int _phase;
    private int _endReason = -1;
    private int _aborted;
    private long _deadline = long.MaxValue;
    private long _lastReceive;
    private long _lastPing;
    private int _missedPongs;
    private volatile bool _pingOutstanding;
    private volatile bool _shutdownRequested;
    private volatile bool _discarding;
    private volatile bool _awaitingFirstMessage;
    private bool _failed;
    private bool _closeSent;
    private bool _holdsSlot;
    private bool _handOff;
    private CancellationTokenSource? _closedSource;
    private IWebSocketSession? _session;

    // Outbound: a ring of frame references guarded by _sync, drained by one worker at a time.
    private OutboundMessage?[]? _queue;
    private int _queueHead;
    private int _queueCount;
    private long _queuedBytes;
    private bool _draining;
    private bool _drainDeferred;
    private int _batchThread;
    private bool _outputFailed;
    private ValueTask<FlushResult> _pendingFlush;
    private Action? _onFlushCompleted;
    private TaskCompletionSource? _drained;

    // Inbound: the frame being streamed into the assembly buffer and the message being assembled.
    private long _frameRemaining;
    private uint _frameMask;
    private bool _frameFin;
    private bool _inMessage;
    private bool _messageIsText;
    private byte[]? _assembly;
    private int _assemblyLength;
    private Utf8Validator _utf8;
    private long _framesInBatch;

    // Traffic counters. Each has a single writer (the read loop, or the drain, which runs one at a time) so
    // the hot path does plain adds; the heartbeat publishes the deltas to Prometheus. Incrementing shared
    // Prometheus counters per batch would cost more than the rest of a small message's handling.
    private long _framesIn;
    private long _messagesIn;
    private long _bytesIn;
    private long _framesOut;
    private long _bytesOut;
    private long _flushes;
    private long _framesInPublished;
    private long _messagesInPublished;
    private long _bytesInPublished;
    private long _framesOutPublished;
    private long _bytesOutPublished;
    private long _flushesPublished;

    /// <param name="services">What every connection of the server shares.</param>
    /// <param name="transport">The connection's pipes (decrypted when TLS is on).</param>
    /// <param name="remoteEndPoint">The client's address, for per-address limits and the application.</param>
    /// <param name="context">Kestrel's connection, aborted when a deadline passes; null in in-memory tests.</param>
    /// <param name="pendingSlot">
    /// The connection's hold on the pending-handshake capacity (taken at accept by the connection middleware), released
    /// when the upgrade completes or the connection ends; null where nothing was counted (in-memory tests).
    /// </param>
    /// <param name="pipeline">
    /// The HTTP pipeline a connection whose first request is not for the WebSocket path is handed to (awaited here, so a
    /// connection costs one asynchronous frame whichever stack serves it); null: <see cref="RunAsync"/> returns
    /// <see cref="TransportOutcome.HandedOff"/> instead (in-memory tests).
    /// </param>
    public TransportConnection(
        TransportServices services,
        IDuplexPipe transport,
        IPEndPoint? remoteEndPoint,
        ConnectionContext? context,
        ConnectionRegistry.PendingSlot? pendingSlot = null,
        ConnectionDelegate? pipeline = null)
    {
        _pipeline = pipeline;
        _services = services;
        _options = services.Options;
        _input = transport.Input;
        _output = transport.Output;
        _context = context;
        _pendingSlot = pendingSlot;
        RemoteEndPoint = remoteEndPoint;
        Id = services.Registry.Add(this);
    }

    /// <summary>
    /// A WebSocket upgrade that arrived on a keep-alive connection the HTTP pipeline already owns: the handshake is
    /// validated here exactly as on the raw path, answered through <paramref name="response"/> (which switches the
    /// connection and hands back its stream), and the frames then run over that stream.
    /// </summary>
    internal TransportConnection(TransportServices services, IUpgradeResponse response, IPEndPoint? remoteEndPoint, ConnectionRegistry.PendingSlot? pendingSlot)
        : this(services, NotYetUpgraded(), remoteEndPoint, context: null, pendingSlot)
    {
        _upgradeResponse = response;
    }

    /// <summary>Stand-in pipes until the pipeline has switched protocols (nothing is read or written through them).</summary>
    private static IDuplexPipe NotYetUpgraded()
    {
        var pipe = new Pipe();
        return new StreamPipes(pipe.Reader, pipe.Writer);
    }

    /// <inheritdoc />
    public long Id { get; }

    /// <inheritdoc />
    public IPEndPoint? RemoteEndPoint { get; }

    /// <inheritdoc />
    public CancellationToken Closed
    {
        get
        {
            lock (_sync)
            {
                // Created on first use: most sessions never ask, and an idle connection should stay small.
                if (_closedSource is null)
                {
                    _closedSource = new CancellationTokenSource();
                    if (_phase == PhaseClosed)
                    {
                        _closedSource.Cancel();
                    }
                }

                return _closedSource.Token;
            }
        }
    }

    /// <summary>The reason recorded for the end of this connection, or null while it is alive.</summary>
    internal ConnectionEndReason? EndReason => Volatile.Read(ref _endReason) is int r and >= 0 ? (ConnectionEndReason)r : null;

    /// <summary>
    /// Runs the connection: a request to the WebSocket path is served here to completion; any other request is left
    /// unconsumed in the pipe and <see cref="TransportOutcome.HandedOff"/> is returned, and the caller passes the
    /// connection on to the HTTP pipeline. Never throws.
    /// </summary>
    public async Task<TransportOutcome> RunAsync()
    {
        _services.Metrics.TcpConnectionsOpen.Inc();
        Volatile.Write(ref _deadline, Environment.TickCount64 + _services.HandshakeTimeoutMs);
        bool handedOff = false;
        try
        {
            HttpRequestHead? request = await ReadWebSocketRequestAsync().ConfigureAwait(false);
            if (request is null)
            {
                handedOff = _handOff;
            }
            else if (await HandleUpgradeAsync(request).ConfigureAwait(false))
            {
                await RunWebSocketAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            RecordFailure(ex);
        }
        finally
        {
            if (handedOff)
            {
                // Not ours: the pipes (and the pending slot) stay with the connection for the HTTP pipeline.
                lock (_sync)
                {
                    _phase = PhaseClosed;
                }

                _services.Registry.Remove(Id);
            }
            else
            {
                await FinishAsync().ConfigureAwait(false);
            }
        }

        if (handedOff && _pipeline is not null && _context is not null)
        {
            ConnectionRegistry.PendingSlot? slot = _pendingSlot;
            try
            {
                if (slot is not null)
                {
                    // An upgrade arriving later on this keep-alive connection releases it (PipelineWebSocketEndpoint).
                    _context.Items[ConnectionRegistry.PendingSlot.ItemsKey] = slot;
                }

                await _pipeline(_context).ConfigureAwait(false);
            }
            finally
            {
                LeaveHandshakePhase();
                _services.Metrics.TcpConnectionsOpen.Dec();
            }
        }
        else if (handedOff)
        {
            _services.Metrics.TcpConnectionsOpen.Dec();
        }

        return handedOff ? TransportOutcome.HandedOff : TransportOutcome.Completed;
    }

    /// <summary>
    /// Runs a WebSocket upgrade that reached the HTTP pipeline (see the constructor taking an <see cref="IUpgradeResponse"/>)
    /// to completion. Never throws.
    /// </summary>
    internal async Task RunUpgradeAsync(HttpRequestHead request)
    {
        Volatile.Write(ref _deadline, Environment.TickCount64 + _services.HandshakeTimeoutMs);
        try
        {
            if (await HandleUpgradeAsync(request).ConfigureAwait(false))
            {
                await RunWebSocketAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            RecordFailure(ex);
        }
        finally
        {
            await FinishAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The end reason of an exception that escaped the connection's run: the peer went away, or a bug (logged).</summary>
    private void RecordFailure(Exception ex)
    {
        if (IsConnectionFailure(ex))
        {
            RecordEnd(ConnectionEndReason.ConnectionReset);
            return;
        }

        LogUnexpected(_services.Logger, Id, ex);
        RecordEnd(ConnectionEndReason.InternalError);
    }

    /// <inheritdoc />
    public bool TrySend(OutboundMessage message)
    {
        if (!message.IsCompleted)
        {
            ThrowHelper.ThrowInvalidOperation("Complete() the message before sending it.");
        }

        bool overBound;
        bool schedule = false;
        lock (_sync)
        {
            if (_phase != PhaseOpen)
            {
                return false;
            }

            overBound = _queuedBytes + message.FrameLength > _options.MaxOutboundBytesPerConnection;
            if (!overBound)
            {
                message.AddReference();
                schedule = EnqueueLocked(message);
            }
        }

        if (overBound)
        {
            CloseSlowConsumer();
            return false;
        }

        if (schedule)
        {
            ScheduleDrain();
        }

        return true;
    }

    private void CloseSlowConsumer()
    {
        // The peer does not read fast enough: drop what is queued rather than grow server memory. 1013 (try again
        // later), not 1008: a client on a slow link did nothing wrong and should reconnect and resume.
        _services.Metrics.SlowConsumerCloses.Inc();
        StartClose(WebSocketCloseCodes.TryAgainLater, "slow consumer", ConnectionEndReason.SlowConsumer, _services.CloseTimeoutMs, dropQueued: true);
    }

    /// <inheritdoc />
    public void Close(ushort statusCode, string reason)
    {
        if (!WebSocketCloseCodes.IsValidOnWire(statusCode))
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(statusCode), "Not a close code that may be sent (RFC 6455 section 7.4).");
        }

        StartClose(statusCode, reason, ConnectionEndReason.ServerClosed, _services.CloseTimeoutMs, dropQueued: false);
    }

    /// <summary>Server shutdown: WebSockets get 1001, idle HTTP connections are ended.</summary>
    internal void CloseForShutdown(long deadline)
    {
        _shutdownRequested = true;
        int phase = Volatile.Read(ref _phase);
        if (phase == PhaseHttp)
        {
            // Wakes a keep-alive connection waiting for its next request; a request in progress finishes first.
            _input.CancelPendingRead();
            return;
        }

        if (StartClose(WebSocketCloseCodes.GoingAway, "server shutting down", ConnectionEndReason.ServerShutdown, deadline - Environment.TickCount64, dropQueued: false))
        {
            return;
        }

        // Already closing: make sure the shutdown deadline applies.
        lock (_sync)
        {
            _deadline = Math.Min(_deadline, deadline);
        }
    }

    /// <summary>
    /// Called by the registry's heartbeat: deadlines and keep-alive pings. Every connection pinged in one tick gets
    /// the same frame (its payload is the tick's timestamp): <paramref name="ping"/> is created by the first one
    /// that needs it and shared by the rest, so a tick that pings thousands of connections encodes one frame
    /// instead of renting a message and a buffer per connection. The caller disposes it after the tick.
    /// A due ping (or the close after too many missed pongs) takes one of the tick's <paramref name="pingBudget"/>;
    /// when none is left it waits for the next tick.
    /// </summary>
    internal void OnHeartbeat(long now, ref OutboundMessage? ping, ref int pingBudget)
    {
        PublishTraffic();
        if (now >= Volatile.Read(ref _deadline))
        {
            int phase = Volatile.Read(ref _phase);
            if (phase == PhaseOpen && _awaitingFirstMessage)
            {
                // The application required a first message (a Hello) within the handshake timeout: a normal close,
                // the stream itself is fine.
                _services.Metrics.HandshakeFailed(HandshakeFailure.Timeout).Inc();
                StartClose(WebSocketCloseCodes.ProtocolError, "no message within the handshake timeout", ConnectionEndReason.HandshakeTimeout, _services.CloseTimeoutMs, dropQueued: false);
                return;
            }

            if (phase == PhaseHttp)
            {
                _services.Metrics.HandshakeFailed(HandshakeFailure.Timeout).Inc();
            }

            Abort(phase == PhaseHttp ? ConnectionEndReason.HandshakeTimeout : ConnectionEndReason.ConnectionReset);
            return;
        }

        if (Volatile.Read(ref _phase) != PhaseOpen)
        {
            return;
        }

        long interval = _services.PingIntervalMs;
        if (now - Volatile.Read(ref _lastReceive) < interval || now - _lastPing < interval)
        {
            return;
        }

        if (pingBudget <= 0)
        {
            // The tick has sent its share (ConnectionRegistry.PingBudget): this one is due again next tick, and a
            // missed pong is only counted when its ping (or the close) actually goes out.
            _services.Metrics.PingsDeferred.Inc();
            return;
        }

        pingBudget--;
        if (_pingOutstanding)
        {
            _services.Metrics.PongsMissed.Inc();
            if (++_missedPongs >= _options.MaxMissedPongs)
            {
                StartClose(WebSocketCloseCodes.GoingAway, "ping timeout", ConnectionEndReason.IdleTimeout, _services.CloseTimeoutMs, dropQueued: true);
                return;
            }
        }

        _lastPing = now;
        _pingOutstanding = true;
        ping ??= CreatePing(now);

        // TrySend takes this connection's own reference and applies the outbound bound, like any control frame
        // while open (a closing connection has sent its Close, after which no ping may follow).
        if (TrySend(ping))
        {
            _services.Metrics.PingsSent.Inc();
        }
    }

    /// <summary>A ping frame carrying <paramref name="now"/> (big-endian milliseconds) as its payload.</summary>
    internal static OutboundMessage CreatePing(long now)
    {
        Span<byte> payload = stackalloc byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(payload, now);
        return OutboundMessage.CreateControl(WebSocketOpcode.Ping, payload);
    }

    /// <summary>Drops the connection now (deadline passed, or shutdown gave up); the first recorded reason wins.</summary>
    internal void Abort(ConnectionEndReason reason)
    {
        RecordEnd(reason);
        if (Interlocked.Exchange(ref _aborted, 1) != 0)
        {
            return;
        }

        _input.CancelPendingRead();
        _output.CancelPendingFlush();
        _context?.Abort(new ConnectionAbortedException($"Connection aborted: {reason}."));
        _upgradeResponse?.Abort();
        CancellationTokenSource? closed;
        lock (_sync)
        {
            closed = _closedSource;
        }

        // Callbacks run on the thread pool, not on the heartbeat thread that may be aborting many connections.
        _ = closed?.CancelAsync();
    }

    void IThreadPoolWorkItem.Execute() => Drain();

    /// <summary>Adds the traffic since the last call to the Prometheus counters (heartbeat and end of connection).</summary>
    internal void PublishTraffic()
    {
        // Most connections are idle between ticks: skip the lock when nothing moved. The published
        // fields only change under the lock, so a stale read here at worst takes the lock needlessly.
        if (Volatile.Read(ref _bytesIn) == _bytesInPublished && Volatile.Read(ref _flushes) == _flushesPublished)
        {
            return;
        }

        lock (_sync)
        {
            TransportMetrics metrics = _services.Metrics;
            Publish(metrics.FramesReceived, Volatile.Read(ref _framesIn), ref _framesInPublished);
            Publish(metrics.MessagesReceived, Volatile.Read(ref _messagesIn), ref _messagesInPublished);
            Publish(metrics.BytesReceived, Volatile.Read(ref _bytesIn), ref _bytesInPublished);
            Publish(metrics.FramesSent, Volatile.Read(ref _framesOut), ref _framesOutPublished);
            Publish(metrics.BytesSent, Volatile.Read(ref _bytesOut), ref _bytesOutPublished);
            Publish(metrics.Flushes, Volatile.Read(ref _flushes), ref _flushesPublished);
        }

        static void Publish(Prometheus.Counter counter, long total, ref long published)
        {
            if (total != published)
            {
                counter.Inc(total - published);
                published = total;
            }
        }
    }

    private static bool IsConnectionFailure(Exception ex) =>
        ex is IOException or ConnectionResetException or ConnectionAbortedException or OperationCanceledException or ObjectDisposedException;

    private void RecordEnd(ConnectionEndReason reason) => Interlocked.CompareExchange(ref _endReason, (int)reason, -1);

    private bool IsAborted => Volatile.Read(ref _aborted) != 0;

    // ---------------------------------------------------------------- HTTP phase

    /// <summary>
    /// Peeks at the request line. A request for the WebSocket path is read whole (and consumed) and returned; for any
    /// other path nothing is consumed, <see cref="_handOff"/> is set and null returned, so the HTTP pipeline reads the
    /// request from the start. Null without hand-off: the connection should end (peer gone, shutdown, bad request).
    /// </summary>
    private async ValueTask<HttpRequestHead?> ReadWebSocketRequestAsync()
    {
        bool ours = false;
        while (true)
        {
            ReadResult result = await _input.ReadAsync().ConfigureAwait(false);
            if (result.IsCanceled)
            {
                if (IsAborted || _shutdownRequested)
                {
                    return null;
                }

                continue;
            }

            ReadOnlySequence<byte> buffer = result.Buffer;
            if (!ours)
            {
                RequestRoute route = HttpRequestParser.Route(buffer, _options.WebSocketPath, _options.MaxRequestHeaderBytes);
                if (route == RequestRoute.Pipeline)
                {
                    // Consumed and examined nothing: the pipeline's first read returns these bytes at once.
                    _input.AdvanceTo(buffer.Start);
                    _handOff = true;
                    return null;
                }

                ours = route == RequestRoute.WebSocket;
            }

            if (ours)
            {
                HttpParseStatus status = HttpRequestParser.TryParse(buffer, _options.MaxRequestHeaderBytes, out HttpRequestHead? request, out SequencePosition consumed);
                if (status == HttpParseStatus.Complete)
                {
                    _input.AdvanceTo(consumed);
                    return request;
                }

                if (status != HttpParseStatus.Incomplete)
                {
                    _input.AdvanceTo(buffer.End);
                    bool tooLarge = status == HttpParseStatus.HeadersTooLarge;
                    _services.Metrics.HandshakeFailed(tooLarge ? HandshakeFailure.HeadersTooLarge : HandshakeFailure.BadRequest).Inc();
                    await WriteErrorAsync(tooLarge ? 431 : 400, tooLarge ? "request head too large" : "malformed request").ConfigureAwait(false);
                    return null;
                }
            }

            _input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                return null; // peer went away before a whole request line or head arrived
            }
        }
    }

    private async ValueTask<bool> HandleUpgradeAsync(HttpRequestHead request)
    {
        if (!request.IsGet)
        {
            return await RejectAsync(HandshakeFailure.MethodNotAllowed, 405, "the WebSocket endpoint only accepts GET", "Allow: GET\r\n").ConfigureAwait(false);
        }

        if (!request.IsHttp11 || request.Host is null || request.HasBody)
        {
            return await RejectAsync(HandshakeFailure.BadRequest, 400, "a WebSocket upgrade needs HTTP/1.1, a Host header and no body").ConfigureAwait(false);
        }

        if (!HttpTokens.ContainsToken(request.Upgrade, "websocket"))
        {
            return await RejectAsync(HandshakeFailure.UpgradeRequired, 426, "this endpoint requires a WebSocket upgrade", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n").ConfigureAwait(false);
        }

        if (!HttpTokens.ContainsToken(request.Connection, "upgrade"))
        {
            return await RejectAsync(HandshakeFailure.BadRequest, 400, "Connection header must contain Upgrade").ConfigureAwait(false);
        }

        if (request.SecWebSocketVersion != "13")
        {
            // RFC 6455 section 4.4: answer 426 listing the versions this server speaks.
            return await RejectAsync(HandshakeFailure.UnsupportedVersion, 426, "unsupported WebSocket version", "Sec-WebSocket-Version: 13\r\n").ConfigureAwait(false);
        }

        if (request.SecWebSocketKeyCount != 1 || !IsValidKey(request.SecWebSocketKey))
        {
            return await RejectAsync(HandshakeFailure.BadRequest, 400, "Sec-WebSocket-Key must be 16 bytes in base64").ConfigureAwait(false);
        }

        if (request.Origin is not null && _services.AllowedOrigins.Count > 0 && !_services.AllowedOrigins.Contains(request.Origin))
        {
            return await RejectAsync(HandshakeFailure.OriginForbidden, 403, "origin not allowed").ConfigureAwait(false);
        }

        if (!_services.Registry.TryAcquireWebSocket(out ConnectionRejection rejection))
        {
            _services.Metrics.Rejected(rejection).Inc();
            await WriteErrorAsync(503, rejection == ConnectionRejection.ShuttingDown ? "server shutting down" : "too many connections", "Retry-After: 1\r\n").ConfigureAwait(false);
            return false;
        }

        _holdsSlot = true;
        IReadOnlyList<string> offered = HttpTokens.SplitList(request.SecWebSocketProtocol);
        var handshake = new HandshakeRequest
        {
            Path = request.Path,
            Query = request.Query,
            Origin = request.Origin,
            Authorization = request.Authorization,
            Cookie = request.Cookie,
            OriginAllowListed = request.Origin is not null && _services.AllowedOrigins.Contains(request.Origin),
            SubProtocols = offered,
            RemoteEndPoint = RemoteEndPoint,
        };

        HandshakeDecision decision;
        try
        {
            decision = await _services.Application.OnHandshakeAsync(handshake, Closed).ConfigureAwait(false);
        }
        catch (Exception ex) when (!IsAborted)
        {
            LogApplicationFailure(_services.Logger, Id, ex);
            return await RejectAsync(HandshakeFailure.ApplicationRejected, 500, "handshake failed").ConfigureAwait(false);
        }

        if (!decision.Accepted)
        {
            int status = decision.StatusCode is >= 400 and <= 599 ? decision.StatusCode : 500;
            if (!TryFormatRejectionHeaders(decision, out string? headers))
            {
                LogBadRejectionHeaders(_services.Logger, Id);
                return await RejectAsync(HandshakeFailure.ApplicationRejected, 500, "handshake failed").ConfigureAwait(false);
            }

            return await RejectAsync(HandshakeFailure.ApplicationRejected, status, decision.Reason ?? HttpResponseWriter.ReasonPhrase(status), headers).ConfigureAwait(false);
        }

        if (decision.SubProtocol is not null && !offered.Contains(decision.SubProtocol, StringComparer.Ordinal))
        {
            LogBadSubProtocol(_services.Logger, Id, decision.SubProtocol);
            return await RejectAsync(HandshakeFailure.ApplicationRejected, 500, "handshake failed").ConfigureAwait(false);
        }

        if (_services.Registry.IsShuttingDown)
        {
            _services.Metrics.Rejected(ConnectionRejection.ShuttingDown).Inc();
            await WriteErrorAsync(503, "server shutting down", "Retry-After: 1\r\n").ConfigureAwait(false);
            return false;
        }

        if (_upgradeResponse is { } pipeline)
        {
            // Through the HTTP pipeline: it writes the 101 and hands over the connection's stream.
            IDuplexPipe? upgraded = await pipeline.AcceptAsync(request.SecWebSocketKey!, decision.SubProtocol).ConfigureAwait(false);
            if (upgraded is null)
            {
                return false;
            }

            _input = upgraded.Input;
            _output = upgraded.Output;
        }
        else
        {
            HttpResponseWriter.WriteSwitchingProtocols(_output, request.SecWebSocketKey!, decision.SubProtocol);
            FlushResult flush = await _output.FlushAsync().ConfigureAwait(false);
            if (flush.IsCompleted || flush.IsCanceled)
            {
                return false;
            }
        }

        _services.Metrics.ConnectionsOpen.Inc();
        _services.Metrics.ConnectionsTotal.Inc();
        long now = Environment.TickCount64;
        Volatile.Write(ref _lastReceive, now);
        _lastPing = now;
        lock (_sync)
        {
            _phase = PhaseOpen;
            _awaitingFirstMessage = decision.RequireFirstMessage;
            _deadline = decision.RequireFirstMessage ? now + _services.HandshakeTimeoutMs : long.MaxValue;
        }

        LeaveHandshakePhase();

        if (_shutdownRequested)
        {
            // Shutdown began while the 101 was in flight: this connection missed the broadcast 1001.
            StartClose(WebSocketCloseCodes.GoingAway, "server shutting down", ConnectionEndReason.ServerShutdown, _services.CloseTimeoutMs, dropQueued: false);
        }

        try
        {
            _session = _services.Application.OnOpen(this, decision.State);
        }
        catch (Exception ex)
        {
            LogApplicationFailure(_services.Logger, Id, ex);
            StartClose(WebSocketCloseCodes.InternalError, "internal error", ConnectionEndReason.InternalError, _services.CloseTimeoutMs, dropQueued: true);
        }

        return true;
    }

    private async ValueTask<bool> RejectAsync(HandshakeFailure failure, int statusCode, string message, string? extraHeaders = null)
    {
        _services.Metrics.HandshakeFailed(failure).Inc();
        if (_holdsSlot)
        {
            _holdsSlot = false;
            _services.Registry.ReleaseWebSocket();
        }

        RecordEnd(ConnectionEndReason.HandshakeRejected);
        await WriteErrorAsync(statusCode, message, extraHeaders).ConfigureAwait(false);
        return false;
    }

    private async ValueTask WriteErrorAsync(int statusCode, string message, string? extraHeaders = null)
    {
        if (_upgradeResponse is { } pipeline)
        {
            await pipeline.RejectAsync(statusCode, message, extraHeaders).ConfigureAwait(false);
            return;
        }

        HttpResponseWriter.WriteError(_output, statusCode, message, extraHeaders);
        await _output.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>Retry-After and WWW-Authenticate of an application rejection; false when the challenge could inject header lines.</summary>
    private static bool TryFormatRejectionHeaders(in HandshakeDecision decision, out string? headers)
    {
        headers = null;
        if (decision.Challenge is { } challenge)
        {
            foreach (char c in challenge)
            {
                if (c is < ' ' or > '~')
                {
                    return false;
                }
            }

            headers = "WWW-Authenticate: " + challenge + "\r\n";
        }

        if (decision.RetryAfterSeconds > 0)
        {
            headers += "Retry-After: " + decision.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\r\n";
        }

        return true;
    }

    /// <summary>Gives the pending slot back (once) and drops the reference, so an open WebSocket does not keep it alive.</summary>
    private void LeaveHandshakePhase() => Interlocked.Exchange(ref _pendingSlot, null)?.Release();

    private static bool IsValidKey(string? key)
    {
        Span<byte> decoded = stackalloc byte[18];
        return key is { Length: 24 } && Convert.TryFromBase64String(key, decoded, out int written) && written == 16;
    }

    // ---------------------------------------------------------------- WebSocket read side

    private enum ReadStep
    {
        NeedMoreData,
        DeliverInline,
        DeliverAssembled,
        Stop,
    }

    private async ValueTask RunWebSocketAsync()
    {
        while (true)
        {
            ReadResult result = await _input.ReadAsync().ConfigureAwait(false);
            if (result.IsCanceled)
            {
                if (IsAborted)
                {
                    return;
                }

                continue;
            }

            ReadOnlySequence<byte> buffer = result.Buffer;
            long startLength = buffer.Length;
            if (startLength > 0)
            {
                // Any inbound traffic proves the peer alive, not only pongs.
                Volatile.Write(ref _lastReceive, Environment.TickCount64);
                _missedPongs = 0;
                _pingOutstanding = false;
            }

            bool stop = false;
            long messages = 0;
            BeginBatch();
            try
            {
                while (true)
                {
                    ReadStep step = ProcessFrames(ref buffer, out ReadOnlySequence<byte> message, out bool isText);
                    if (step == ReadStep.NeedMoreData)
                    {
                        break;
                    }

                    if (step == ReadStep.Stop)
                    {
                        stop = true;
                        break;
                    }

                    messages++;
                    if (_awaitingFirstMessage)
                    {
                        FirstMessageArrived();
                    }

                    try
                    {
                        if (!_discarding && _session is not null)
                        {
                            ValueTask handled = _session.OnMessageAsync(message, isText);
                            if (!handled.IsCompletedSuccessfully)
                            {
                                // The application goes asynchronous (e.g. waits for a commit): what it queued
                                // so far must not wait for it, and nothing else should be deferred meanwhile.
                                EndBatch();
                                await handled.ConfigureAwait(false);
                                BeginBatch();
                            }
                        }
                    }
                    catch (Exception ex) when (!IsConnectionFailure(ex))
                    {
                        LogApplicationFailure(_services.Logger, Id, ex);
                        StartClose(WebSocketCloseCodes.InternalError, "internal error", ConnectionEndReason.InternalError, _services.CloseTimeoutMs, dropQueued: true);
                    }
                    finally
                    {
                        if (step == ReadStep.DeliverAssembled)
                        {
                            ReturnAssembly();
                        }
                    }
                }
            }
            finally
            {
                // One flush for everything this batch of frames produced (echoes, pongs, acks).
                EndBatch();
                Volatile.Write(ref _messagesIn, _messagesIn + messages);
                Volatile.Write(ref _framesIn, _framesIn + _framesInBatch);
                Volatile.Write(ref _bytesIn, _bytesIn + (startLength - buffer.Length));
                _framesInBatch = 0;
                _input.AdvanceTo(buffer.Start, buffer.End);
            }

            if (stop || IsAborted)
            {
                return;
            }

            if (result.IsCompleted)
            {
                // EOF without a Close frame: abnormal closure (1006) from our side's point of view.
                RecordEnd(ConnectionEndReason.ConnectionReset);
                return;
            }
        }
    }

    /// <summary>
    /// Consumes frames from <paramref name="buffer"/> until a complete message is ready, more bytes are
    /// needed, or reading must stop. Control frames are answered here; payloads are unmasked exactly once.
    /// </summary>
    private ReadStep ProcessFrames(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> message, out bool isText)
    {
        message = default;
        isText = false;
        long frames = 0;
        try
        {
            while (true)
            {
                if (_failed)
                {
                    // The connection was failed (RFC 6455 section 7.1.7): our Close is queued, and the peer's stream
                    // cannot be parsed any further, so its Close is not awaited. Stop reading; TCP closes once our
                    // Close is flushed.
                    return ReadStep.Stop;
                }

                if (_frameRemaining > 0)
                {
                    if (buffer.IsEmpty)
                    {
                        return ReadStep.NeedMoreData;
                    }

                    long take = Math.Min(_frameRemaining, buffer.Length);
                    if (!_discarding)
                    {
                        AppendPayload(buffer.Slice(0, take));
                        if (_failed)
                        {
                            return ReadStep.Stop;
                        }
                    }

                    buffer = buffer.Slice(take);
                    _frameRemaining -= take;
                    if (_frameRemaining > 0)
                    {
                        return ReadStep.NeedMoreData;
                    }

                    if (_frameFin && !_discarding && TryFinishMessage(out message, out isText))
                    {
                        return ReadStep.DeliverAssembled;
                    }

                    continue;
                }

                if (!WebSocketFrame.TryParseHeader(buffer, out FrameHeader header))
                {
                    return ReadStep.NeedMoreData;
                }

                if (_discarding)
                {
                    // After our Close: only the peer's Close matters; everything else is skipped unparsed.
                    if (header.Opcode == WebSocketOpcode.Close)
                    {
                        buffer = buffer.Slice(Math.Min(buffer.Length, header.HeaderLength + (long)Math.Min(header.PayloadLength, 125UL)));
                        return ReadStep.Stop;
                    }

                    buffer = buffer.Slice(header.HeaderLength);
                    _frameRemaining = header.PayloadLength > long.MaxValue ? long.MaxValue : (long)header.PayloadLength;
                    continue;
                }

                ushort violation = WebSocketFrame.Validate(header, _options.MaxMessageBytes);
                if (violation == 0 && !header.IsControl)
                {
                    violation = CheckFragmentation(header);
                }

                if (violation != 0)
                {
                    Fail(violation);
                    buffer = buffer.Slice(header.HeaderLength);
                    _frameRemaining = header.PayloadLength > long.MaxValue ? long.MaxValue : (long)header.PayloadLength;
                    continue;
                }

                long payloadLength = (long)header.PayloadLength;
                if (header.IsControl)
                {
                    long total = header.HeaderLength + payloadLength;
                    if (buffer.Length < total)
                    {
                        return ReadStep.NeedMoreData;
                    }

                    frames++;
                    bool keepReading = HandleControlFrame(header, buffer.Slice(header.HeaderLength, payloadLength));
                    buffer = buffer.Slice(total);
                    if (!keepReading)
                    {
                        return ReadStep.Stop;
                    }

                    continue;
                }

                if (header.Opcode != WebSocketOpcode.Continuation)
                {
                    if (header.Fin && header.HeaderLength + payloadLength <= InlineFrameLimit)
                    {
                        long total = header.HeaderLength + payloadLength;
                        if (buffer.Length < total)
                        {
                            return ReadStep.NeedMoreData;
                        }

                        // Zero copy: unmask in the pipe's own memory, hand out a slice of it.
                        ReadOnlySequence<byte> payload = buffer.Slice(header.HeaderLength, payloadLength);
                        buffer = buffer.Slice(total);
                        frames++;
                        isText = header.Opcode == WebSocketOpcode.Text;
                        if (!UnmaskAndValidate(payload, header.MaskKey, isText))
                        {
                            Fail(WebSocketCloseCodes.InvalidPayload);
                            continue;
                        }

                        message = payload;
                        return ReadStep.DeliverInline;
                    }

                    _inMessage = true;
                    _messageIsText = header.Opcode == WebSocketOpcode.Text;
                    _assemblyLength = 0;
                    _utf8.Reset();
                }

                if (_assemblyLength + payloadLength > _options.MaxMessageBytes)
                {
                    Fail(WebSocketCloseCodes.MessageTooBig);
                    buffer = buffer.Slice(header.HeaderLength);
                    _frameRemaining = payloadLength;
                    continue;
                }

                EnsureAssembly(_assemblyLength + payloadLength);
                buffer = buffer.Slice(header.HeaderLength);
                frames++;
                _frameRemaining = payloadLength;
                _frameMask = header.MaskKey;
                _frameFin = header.Fin;
                if (payloadLength == 0 && header.Fin && TryFinishMessage(out message, out isText))
                {
                    return ReadStep.DeliverAssembled;
                }
            }
        }
        finally
        {
            _framesInBatch += frames;
        }
    }

    /// <summary>Disarms the first-message deadline (<see cref="HandshakeDecision.RequireFirstMessage"/>).</summary>
    private void FirstMessageArrived()
    {
        lock (_sync)
        {
            _awaitingFirstMessage = false;
            if (_phase == PhaseOpen)
            {
                _deadline = long.MaxValue; // a closing connection keeps its close deadline
            }
        }
    }

    private ushort CheckFragmentation(in FrameHeader header)
    {
        bool continuation = header.Opcode == WebSocketOpcode.Continuation;
        if (continuation != _inMessage)
        {
            // A continuation with nothing to continue, or a new message inside a fragmented one (5.4).
            return WebSocketCloseCodes.ProtocolError;
        }

        return 0;
    }

    /// <summary>Copies and unmasks one chunk of the current frame into the assembly buffer, validating text on the way.</summary>
    private void AppendPayload(ReadOnlySequence<byte> chunk)
    {
        foreach (ReadOnlyMemory<byte> segment in chunk)
        {
            Span<byte> destination = _assembly.AsSpan(_assemblyLength, segment.Length);
            WebSocketMask.Apply(segment.Span, destination, _frameMask);
            _frameMask = WebSocketMask.Rotate(_frameMask, segment.Length);
            _assemblyLength += segment.Length;
            if (_messageIsText && !_utf8.TryAppend(destination))
            {
                Fail(WebSocketCloseCodes.InvalidPayload);
                return;
            }
        }
    }

    private bool TryFinishMessage(out ReadOnlySequence<byte> message, out bool isText)
    {
        _inMessage = false;
        isText = _messageIsText;
        if (isText && !_utf8.IsComplete)
        {
            Fail(WebSocketCloseCodes.InvalidPayload); // the message ended inside a code point
            message = default;
            ReturnAssembly();
            return false;
        }

        message = _assembly is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(_assembly, 0, _assemblyLength);
        return true;
    }

    private static bool UnmaskAndValidate(ReadOnlySequence<byte> payload, uint mask, bool isText)
    {
        var utf8 = default(Utf8Validator);
        foreach (ReadOnlyMemory<byte> segment in payload)
        {
            // The pipe hands out read-only memory, but the bytes are ours until AdvanceTo: unmask in place.
            Span<byte> span = System.Runtime.InteropServices.MemoryMarshal.AsMemory(segment).Span;
            mask = WebSocketMask.ApplyInPlace(span, mask);
            if (isText && !utf8.TryAppend(span))
            {
                return false;
            }
        }

        return !isText || utf8.IsComplete;
    }

    private void EnsureAssembly(long required)
    {
        if (_assembly is not null && _assembly.Length >= required)
        {
            return;
        }

        int size = (int)Math.Min(_options.MaxMessageBytes, Math.Max(required, Math.Max(4096, (_assembly?.Length ?? 0) * 2L)));
        byte[] larger = ArrayPool<byte>.Shared.Rent(size);
        if (_assembly is not null)
        {
            _assembly.AsSpan(0, _assemblyLength).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_assembly);
        }

        _assembly = larger;
    }

    private void ReturnAssembly()
    {
        // Give the buffer back after every assembled message: an idle connection holds no memory.
        if (_assembly is not null)
        {
            ArrayPool<byte>.Shared.Return(_assembly);
            _assembly = null;
        }

        _assemblyLength = 0;
    }

    /// <summary>Answers ping, notes pong, runs the close handshake; false when reading must stop.</summary>
    private bool HandleControlFrame(in FrameHeader header, ReadOnlySequence<byte> maskedPayload)
    {
        Span<byte> payload = stackalloc byte[WebSocketFrame.MaxControlPayload];
        payload = payload.Slice(0, (int)maskedPayload.Length);
        maskedPayload.CopyTo(payload);
        WebSocketMask.ApplyInPlace(payload, header.MaskKey);

        switch (header.Opcode)
        {
            case WebSocketOpcode.Ping:
                TryEnqueueControl(OutboundMessage.CreateControl(WebSocketOpcode.Pong, payload), countTowardBound: true);
                return true;
            case WebSocketOpcode.Pong:
                _pingOutstanding = false;
                _missedPongs = 0;
                return true;
        }

        ushort code = 0;
        if (payload.Length == 1)
        {
            Fail(WebSocketCloseCodes.ProtocolError);
            return false;
        }

        if (payload.Length >= 2)
        {
            code = (ushort)((payload[0] << 8) | payload[1]);
            if (!WebSocketCloseCodes.IsValidOnWire(code))
            {
                Fail(WebSocketCloseCodes.ProtocolError);
                return false;
            }

            if (!System.Text.Unicode.Utf8.IsValid(payload.Slice(2)))
            {
                Fail(WebSocketCloseCodes.InvalidPayload);
                return false;
            }
        }

        // Echo the status code (7.1.5); the empty-Close case is answered with an empty Close.
        bool sent = false;
        lock (_sync)
        {
            if (_phase == PhaseOpen)
            {
                _phase = PhaseClosing;
                _closeSent = true;
                _deadline = Environment.TickCount64 + _services.CloseTimeoutMs;
                sent = true;
            }
        }

        if (sent)
        {
            RecordEnd(ConnectionEndReason.ClientClosed);
            _discarding = true;
            OutboundMessage reply = OutboundMessage.CreateControl(WebSocketOpcode.Close, payload.Length >= 2 ? payload.Slice(0, 2) : default);
            EnqueueFinal(reply);
        }

        return false;
    }

    /// <summary>
    /// Fails the connection for a protocol violation (RFC 6455 section 7.1.7): queues our Close and stops reading, so the
    /// TCP connection closes as soon as the Close is flushed, without waiting for a Close from a peer whose byte stream
    /// can no longer be parsed.
    /// </summary>
    private void Fail(ushort code)
    {
        _failed = true;
        _services.Metrics.Violation(code).Inc();
        ConnectionEndReason reason = code switch
        {
            WebSocketCloseCodes.InvalidPayload => ConnectionEndReason.InvalidPayload,
            WebSocketCloseCodes.MessageTooBig => ConnectionEndReason.MessageTooBig,
            _ => ConnectionEndReason.ProtocolError,
        };
        string text = code switch
        {
            WebSocketCloseCodes.InvalidPayload => "invalid UTF-8",
            WebSocketCloseCodes.MessageTooBig => "message too big",
            _ => "protocol error",
        };
        _inMessage = false;
        ReturnAssembly();
        StartClose(code, text, reason, _services.CloseTimeoutMs, dropQueued: false);
        _discarding = true;
    }

    // ---------------------------------------------------------------- close and teardown

    /// <summary>
    /// Moves Open → Closing: queues our Close frame (after what is queued, or instead of it when
    /// <paramref name="dropQueued"/>) and arms the close deadline. False when already closing.
    /// </summary>
    private bool StartClose(ushort code, string? reason, ConnectionEndReason endReason, long timeoutMs, bool dropQueued)
    {
        OutboundMessage close = OutboundMessage.CreateClose(code, reason);
        bool schedule;
        lock (_sync)
        {
            if (_phase != PhaseOpen)
            {
                close.Dispose();
                return false;
            }

            _phase = PhaseClosing;
            _closeSent = true;
            _deadline = Environment.TickCount64 + Math.Max(0, timeoutMs);
            if (dropQueued)
            {
                ClearQueueLocked();
            }

            schedule = EnqueueLocked(close);
        }

        RecordEnd(endReason);
        _discarding = true;
        if (schedule)
        {
            ScheduleDrain();
        }

        return true;
    }

    private async ValueTask FinishAsync()
    {
        bool wasWebSocket;
        lock (_sync)
        {
            wasWebSocket = _phase != PhaseHttp;
            _phase = PhaseClosed;
            if (_deadline == long.MaxValue || !wasWebSocket)
            {
                _deadline = Environment.TickCount64 + _services.CloseTimeoutMs;
            }
        }

        RecordEnd(ConnectionEndReason.ConnectionReset);
        try
        {
            // In-flight writes (our Close frame included) get until the deadline; the heartbeat aborts after it.
            await WaitForDrainAsync().ConfigureAwait(false);
        }
        finally
        {
            lock (_sync)
            {
                ClearQueueLocked();
            }

            ReturnAssembly();
            PublishTraffic();
            await _output.CompleteAsync().ConfigureAwait(false);
            await _input.CompleteAsync().ConfigureAwait(false);
            LeaveHandshakePhase();
            _services.Registry.Remove(Id);
            _services.Metrics.TcpConnectionsOpen.Dec();
            if (_holdsSlot)
            {
                _holdsSlot = false;
                _services.Registry.ReleaseWebSocket();
            }

            ConnectionEndReason reason = (ConnectionEndReason)Volatile.Read(ref _endReason);
            if (wasWebSocket)
            {
                _services.Metrics.ConnectionsOpen.Dec();
                _services.Metrics.Closed(reason).Inc();
                try
                {
                    _session?.OnClosed(reason);
                }
                catch (Exception ex)
                {
                    LogApplicationFailure(_services.Logger, Id, ex);
                }
            }

            CancellationTokenSource? closed;
            lock (_sync)
            {
                closed = _closedSource;
            }

            if (closed is not null)
            {
                try
                {
                    closed.Cancel();
                }
                catch (AggregateException ex)
                {
                    LogApplicationFailure(_services.Logger, Id, ex);
                }
            }
        }
    }

    // ---------------------------------------------------------------- outbound queue and drain

    private bool TryEnqueueControl(OutboundMessage message, bool countTowardBound)
    {
        bool schedule;
        bool slow = false;
        lock (_sync)
        {
            if (_phase is not (PhaseOpen or PhaseClosing) || _closeSent && message.Opcode != WebSocketOpcode.Close)
            {
                // After our Close nothing else may follow it on the wire (5.5.1).
                message.Dispose();
                return false;
            }

            if (countTowardBound && _queuedBytes + message.FrameLength > _options.MaxOutboundBytesPerConnection)
            {
                slow = true;
                schedule = false;
            }
            else
            {
                schedule = EnqueueLocked(message);
            }
        }

        if (slow)
        {
            message.Dispose();
            CloseSlowConsumer();
            return false;
        }

        if (schedule)
        {
            ScheduleDrain();
        }

        return true;
    }

    /// <summary>Queues our Close reply (phase already moved to Closing by the caller).</summary>
    private void EnqueueFinal(OutboundMessage close)
    {
        bool schedule;
        lock (_sync)
        {
            schedule = EnqueueLocked(close);
        }

        if (schedule)
        {
            ScheduleDrain();
        }
    }

    /// <summary>Appends a referenced message; returns true when the caller must schedule the drain worker.</summary>
    private bool EnqueueLocked(OutboundMessage message)
    {
        OutboundMessage?[]? queue = _queue;
        if (queue is null || _queueCount == queue.Length)
        {
            var larger = new OutboundMessage?[queue is null ? 8 : queue.Length * 2];
            for (int i = 0; i < _queueCount; i++)
            {
                larger[i] = queue![(_queueHead + i) % queue.Length];
            }

            _queue = queue = larger;
            _queueHead = 0;
        }

        queue[(_queueHead + _queueCount) % queue.Length] = message;
        _queueCount++;
        _queuedBytes += message.FrameLength;
        if (_draining)
        {
            return false;
        }

        _draining = true;
        if (_batchThread == Environment.CurrentManagedThreadId)
        {
            // Queued by the read loop itself while it processes a batch: drained once when the batch ends.
            _drainDeferred = true;
            return false;
        }

        return true;
    }

    /// <summary>
    /// The read loop starts processing frames synchronously on this thread: sends it makes are coalesced
    /// until <see cref="EndBatch"/> instead of each scheduling a drain.
    /// </summary>
    private void BeginBatch() => Volatile.Write(ref _batchThread, Environment.CurrentManagedThreadId);

    /// <summary>Ends coalescing and drains inline on the reader's thread: no thread hop for replies.</summary>
    private void EndBatch()
    {
        // No lock: only the batch thread itself sets _drainDeferred (EnqueueLocked matches its thread id).
        Volatile.Write(ref _batchThread, 0);
        if (_drainDeferred)
        {
            _drainDeferred = false;
            Drain();
        }
    }

    private OutboundMessage? DequeueLocked()
    {
        if (_queueCount == 0)
        {
            return null;
        }

        OutboundMessage?[] queue = _queue!;
        OutboundMessage message = queue[_queueHead]!;
        queue[_queueHead] = null;
        _queueHead = (_queueHead + 1) % queue.Length;
        _queueCount--;
        _queuedBytes -= message.FrameLength;
        if (_queueCount == 0)
        {
            _queueHead = 0;
            if (queue.Length > 64)
            {
                _queue = null; // a burst grew the ring; do not keep it on an idle connection
            }
        }

        return message;
    }

    private void ClearQueueLocked()
    {
        while (DequeueLocked() is OutboundMessage message)
        {
            message.Release();
        }
    }

    private void ScheduleDrain()
    {
        if (_services.InlineOutput)
        {
            Drain();
        }
        else
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: true);
        }
    }

    /// <summary>
    /// Copies every queued frame into the socket pipe and flushes once per batch: frames queued while a
    /// flush is in progress go out together in the next one (write coalescing). Runs on one thread at a time.
    /// </summary>
    private void Drain()
    {
        // Ack frames' op timestamps, observed once their batch is flushed (Hosting.LatencyMetrics); 0 B per op.
        Span<Engine.Sequencing.OpTimestamps> acks = stackalloc Engine.Sequencing.OpTimestamps[8];
        while (true)
        {
            int ackCount = 0;
            long frames = 0;
            long bytes = 0;
            TaskCompletionSource? drained = null;
            bool idle = false;
            lock (_sync)
            {
                // One lock per batch. Senders wait at most for the copy of frames already encoded; the
                // flush (the part that can wait on the socket) happens outside the lock.
                while (DequeueLocked() is OutboundMessage message)
                {
                    if (!_outputFailed)
                    {
                        try
                        {
                            ReadOnlyMemory<byte> frame = message.Frame;
                            _output.Write(frame.Span);
                            frames++;
                            bytes += frame.Length;
                            if (message.Timestamps.IsSet)
                            {
                                acks[ackCount++] = message.Timestamps;
                                if (ackCount == acks.Length)
                                {
                                    Hosting.LatencyMetrics.ObserveWritten(acks, System.Diagnostics.Stopwatch.GetTimestamp());
                                    ackCount = 0;
                                }
                            }
                        }
                        catch (Exception ex) when (IsConnectionFailure(ex))
                        {
                            _outputFailed = true;
                        }
                    }

                    message.Release();
                }

                if (frames == 0 || _outputFailed)
                {
                    _draining = false;
                    drained = _drained;
                    _drained = null;
                    idle = true;
                }
            }

            if (idle)
            {
                drained?.TrySetResult();
                return;
            }

            Volatile.Write(ref _framesOut, _framesOut + frames);
            Volatile.Write(ref _bytesOut, _bytesOut + bytes);
            Volatile.Write(ref _flushes, _flushes + 1);
            ValueTask<FlushResult> flush;
            try
            {
                flush = _output.FlushAsync();
            }
            catch (Exception ex) when (IsConnectionFailure(ex))
            {
                _outputFailed = true;
                continue;
            }

            if (!flush.IsCompleted)
            {
                // Backpressure: the socket pipe is above its pause threshold. Resume when it drains;
                // frames queued meanwhile are coalesced into the next batch.
                _pendingFlush = flush;
                Hosting.LatencyMetrics.ObserveWritten(acks[..ackCount], System.Diagnostics.Stopwatch.GetTimestamp());
                flush.GetAwaiter().UnsafeOnCompleted(_onFlushCompleted ??= OnFlushCompleted);
                return;
            }

            ObserveFlush(flush);
            Hosting.LatencyMetrics.ObserveWritten(acks[..ackCount], System.Diagnostics.Stopwatch.GetTimestamp());
        }
    }

    private void OnFlushCompleted()
    {
        ValueTask<FlushResult> flush = _pendingFlush;
        _pendingFlush = default;
        ObserveFlush(flush);
        Drain();
    }

    private void ObserveFlush(ValueTask<FlushResult> flush)
    {
        try
        {
            FlushResult result = flush.GetAwaiter().GetResult();
            if (result.IsCanceled || result.IsCompleted)
            {
                _outputFailed = true; // aborted, or the socket's reader side is gone
            }
        }
        catch (Exception ex) when (IsConnectionFailure(ex))
        {
            _outputFailed = true;
        }
    }

    private Task WaitForDrainAsync()
    {
        lock (_sync)
        {
            if (!_draining && _queueCount == 0)
            {
                return Task.CompletedTask;
            }

            _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _drained.Task;
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Connection {ConnectionId}: unexpected transport failure")]
    private static partial void LogUnexpected(ILogger logger, long connectionId, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Connection {ConnectionId}: the application threw")]
    private static partial void LogApplicationFailure(ILogger logger, long connectionId, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Connection {ConnectionId}: the application chose sub-protocol '{SubProtocol}' that the client did not offer")]
    private static partial void LogBadSubProtocol(ILogger logger, long connectionId, string subProtocol);

    [LoggerMessage(Level = LogLevel.Error, Message = "Connection {ConnectionId}: the application's rejection carried a WWW-Authenticate challenge with control or non-ASCII characters")]
    private static partial void LogBadRejectionHeaders(ILogger logger, long connectionId);
}
