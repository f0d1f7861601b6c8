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
/// <para>One concern per file, as in Pipelines.Sockets.Unofficial's SocketConnection: this file holds the state they
/// share, the run, the heartbeat (deadlines, pings, traffic counters) and abort; <c>.Http.cs</c> the HTTP phase and the
/// upgrade, <c>.Receive.cs</c> framing and the read loop, <c>.Send.cs</c> the outbound queue and its drain,
/// <c>.Close.cs</c> the close handshake and teardown.</para>
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "_closedSource has no timer and no linked registrations, so it holds nothing to release; sessions may read Closed after the end, which a disposed source would throw on.")]
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
    private static StreamPipes NotYetUpgraded()
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
    public Task<TransportOutcome> RunAsync() => RunCoreAsync(upgradeRequest: null);

    /// <summary>
    /// Runs a WebSocket upgrade that reached the HTTP pipeline (see the constructor taking an <see cref="IUpgradeResponse"/>)
    /// to completion. Never throws.
    /// </summary>
    internal Task RunUpgradeAsync(HttpRequestHead request) => RunCoreAsync(request);

    /// <summary>
    /// The connection's one asynchronous frame, from the routing peek (or the pipeline's upgrade request) to the end:
    /// the read loop is written out here rather than awaited as a method of its own, because every idle connection
    /// is parked in it and each async method awaiting another keeps a state machine of its own alive (184 B a
    /// connection).
    /// </summary>
    private async Task<TransportOutcome> RunCoreAsync(HttpRequestHead? upgradeRequest)
    {
        if (upgradeRequest is null)
        {
            TransportMetrics.TcpConnectionsOpen.Inc();
        }

        Volatile.Write(ref _deadline, Environment.TickCount64 + _services.HandshakeTimeoutMs);
        bool handedOff = false;
        try
        {
            HttpRequestHead? request = upgradeRequest ?? await ReadWebSocketRequestAsync().ConfigureAwait(false);
            if (request is null)
            {
                handedOff = _handOff;
            }
            else if (await HandleUpgradeAsync(request).ConfigureAwait(false))
            {
                // The read loop; framing and delivery are in TransportConnection.Receive.cs.
                bool reading = true;
                while (reading)
                {
                    ReadResult result = await _input.ReadAsync().ConfigureAwait(false);
                    if (result.IsCanceled)
                    {
                        reading = !IsAborted;
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
                                TransportLog.ApplicationFailure(_services.Logger, Id, ex);
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
                        reading = false;
                    }
                    else if (result.IsCompleted)
                    {
                        // EOF without a Close frame: abnormal closure (1006) from our side's point of view.
                        RecordEnd(ConnectionEndReason.ConnectionReset);
                        reading = false;
                    }
                }
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
                TransportMetrics.TcpConnectionsOpen.Dec();
            }
        }
        else if (handedOff)
        {
            TransportMetrics.TcpConnectionsOpen.Dec();
        }

        return handedOff ? TransportOutcome.HandedOff : TransportOutcome.Completed;
    }

    /// <summary>The end reason of an exception that escaped the connection's run: the peer went away, or a bug (logged).</summary>
    private void RecordFailure(Exception ex)
    {
        if (IsConnectionFailure(ex))
        {
            RecordEnd(ConnectionEndReason.ConnectionReset);
            return;
        }

        TransportLog.Unexpected(_services.Logger, Id, ex);
        RecordEnd(ConnectionEndReason.InternalError);
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
                TransportMetrics.HandshakeFailed(HandshakeFailure.Timeout).Inc();
                StartClose(WebSocketCloseCodes.ProtocolError, "no message within the handshake timeout", ConnectionEndReason.HandshakeTimeout, _services.CloseTimeoutMs, dropQueued: false);
                return;
            }

            if (phase == PhaseHttp)
            {
                TransportMetrics.HandshakeFailed(HandshakeFailure.Timeout).Inc();
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
            TransportMetrics.PingsDeferred.Inc();
            return;
        }

        pingBudget--;
        if (_pingOutstanding)
        {
            TransportMetrics.PongsMissed.Inc();
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
            TransportMetrics.PingsSent.Inc();
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
        closed?.CancelAsync().Forget(_services.Logger, "connection-closed callbacks");
    }

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
            Publish(TransportMetrics.FramesReceived, Volatile.Read(ref _framesIn), ref _framesInPublished);
            Publish(TransportMetrics.MessagesReceived, Volatile.Read(ref _messagesIn), ref _messagesInPublished);
            Publish(TransportMetrics.BytesReceived, Volatile.Read(ref _bytesIn), ref _bytesInPublished);
            Publish(TransportMetrics.FramesSent, Volatile.Read(ref _framesOut), ref _framesOutPublished);
            Publish(TransportMetrics.BytesSent, Volatile.Read(ref _bytesOut), ref _bytesOutPublished);
            Publish(TransportMetrics.Flushes, Volatile.Read(ref _flushes), ref _flushesPublished);
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
}
