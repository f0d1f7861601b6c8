using System.Net;
using System.Net.Sockets;
using System.Text;
using Collab.Engine.Text;
using Collab.LoadTest.Metrics;
using Collab.LoadTest.Scheduling;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.LoadTest.Client;

/// <summary>What a simulated client does.</summary>
internal enum ClientRole
{
    /// <summary>Submits ops on the schedule and receives the others'.</summary>
    Writer,

    /// <summary>Only receives (fan-out scenarios): tracks version and length, measures broadcast latency.</summary>
    Reader,

    /// <summary>Opens the document once more after the run to fetch the server's snapshot for the convergence check.</summary>
    Checker,
}

/// <summary>Connection and subscription state of a <see cref="LightClient"/>.</summary>
internal enum ClientState
{
    Idle,
    Connecting,
    AwaitingWelcome,
    AwaitingSubscription,
    CatchingUp,
    Live,
    Disconnected,
    Closed,
}

/// <summary>
/// An op this client submitted and has not seen acknowledged yet: an insert at <paramref name="Position"/> of
/// <paramref name="Text"/> (ASCII), or of the token derived from the seq when it is null (every scheduled op).
/// <paramref name="Scheduled"/> 0 marks a setup op, left out of the statistics.
/// </summary>
internal readonly record struct PendingOp(ulong Seq, long Scheduled, long BaseVersion, int Position, byte[]? Text = null);

/// <summary>A Subscribe or Hello was refused by the server.</summary>
internal sealed class ServerRefusedException(string message) : Exception(message);

/// <summary>
/// One simulated client: a raw TCP socket with its own RFC 6455 client framing, one document, and just enough
/// protocol state to produce valid ops and check what it receives — the document's version and length, the
/// unacknowledged ops, and (optionally) a full replica of the text. Hot messages (Ops, Ack) are decoded in place
/// without allocating; everything else goes through the generated protobuf classes.
/// </summary>
/// <remarks>
/// Threads: the receive loop runs on the socket engine's thread (inline completions), the scheduler calls
/// <see cref="OnScheduled"/> from its own thread, and the run's control flow connects, drops and closes. All
/// state is guarded by one lock per client; sends are non-blocking writes under that lock, with an outbox
/// flushed asynchronously if the socket buffer is ever full (a slow server never blocks the scheduler).
/// </remarks>
internal sealed class LightClient : IScheduleTarget
{
    private const int InitialReceiveBuffer = 4096;
    private const int HeaderGap = WebSocketFraming.MaxClientHeaderLength;
    private const int SolIp = 0;
    private const int IpBindAddressNoPort = 24;

    private static readonly byte[] s_tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"u8.ToArray();

    private readonly RunContext _ctx;
    private readonly Lock _gate = new();
    private readonly Queue<PendingOp> _pending = new();
    private readonly Queue<long> _backlog = new();
    private byte[] _scratch = new byte[256];
    private ulong _rng;

    private Socket? _socket;
    private int _generation;
    private ClientState _state;
    private TaskCompletionSource? _ready;
    private bool _hasDocument;
    private long _version;
    private long _length;
    private long _catchUpTarget;
    private ulong _lastSeq;
    private ulong _lastAckedSeq;
    private long _droppedAt;

    private int _pingsInFlight; // ping mode: Pings sent on this connection and not answered yet (a drain waits for them)

    private byte[]? _outbox;
    private int _outboxLength;
    private bool _flushing;

    private byte[]? _fragments;
    private int _fragmentLength;

    public LightClient(RunContext ctx, int index, DocState doc, Uri server, IPAddress? source, ClientRole role, bool replica, int trackCapacity)
    {
        _ctx = ctx;
        Index = index;
        Doc = doc;
        Server = server;
        Source = source;
        Role = role;
        Replica = replica ? new DocReplica() : null;
        Track = role == ClientRole.Writer ? new OpTrack(trackCapacity) : null;
        _rng = (ulong)(ctx.Seed + 1) * 0x9E3779B97F4A7C15UL ^ (ulong)(index + 1) * 0xBF58476D1CE4E5B9UL;
        if (_rng == 0)
        {
            _rng = 1;
        }
    }

    public int Index { get; }

    public DocState Doc { get; }

    public Uri Server { get; }

    public IPAddress? Source { get; }

    public ClientRole Role { get; }

    /// <summary>The server-assigned client id (kept across reconnects, which resume it).</summary>
    public string? ClientId { get; private set; }

    public byte[] ClientIdUtf8 { get; private set; } = [];

    public OpTrack? Track { get; }

    public DocReplica? Replica { get; private set; }

    /// <summary>The snapshot text a <see cref="ClientRole.Checker"/> received.</summary>
    public string? SnapshotText { get; private set; }

    /// <summary>Set when this client saw something that makes its state unreliable (a gap, a replica failure).</summary>
    public string? Fault { get; private set; }

    public ulong LastSeq
    {
        get
        {
            lock (_gate)
            {
                return _lastSeq;
            }
        }
    }

    public ClientState State
    {
        get
        {
            lock (_gate)
            {
                return _state;
            }
        }
    }

    /// <summary>Dropped by the storm (or the network) and not yet live again on a new connection.</summary>
    public bool AwaitingResume
    {
        get
        {
            lock (_gate)
            {
                return _droppedAt != 0;
            }
        }
    }

    /// <summary>Version, length and outstanding work, read together.</summary>
    public (long Version, long Length, int Pending, int Backlog) Progress
    {
        get
        {
            lock (_gate)
            {
                return (_version, _length, _pending.Count + _pingsInFlight, _backlog.Count);
            }
        }
    }

    // ------------------------------------------------------------------ connection life cycle

    /// <summary>
    /// Connects, upgrades, says Hello (resuming the client id after the first time) and subscribes (a snapshot the
    /// first time, from the last known version afterwards); completes once the client is live and caught up.
    /// </summary>
    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_state == ClientState.Closed)
            {
                throw new ObjectDisposedException(nameof(LightClient));
            }

            _state = ClientState.Connecting;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_ctx.Settings.ConnectTimeout);
        IPEndPoint endpoint = _ctx.EndPointFor(Server);
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (Source is not null)
            {
                // Choose the source address only; the port is picked at connect time, per destination, so each
                // source address has its own ephemeral range.
                socket.SetRawSocketOption(SolIp, IpBindAddressNoPort, BitConverter.GetBytes(1));
                socket.Bind(new IPEndPoint(Source, 0));
            }

            await socket.ConnectAsync(endpoint, timeout.Token).ConfigureAwait(false);
            (byte[] buffer, int leftover) = await HandshakeAsync(socket, timeout.Token).ConfigureAwait(false);
            socket.Blocking = false;

            TaskCompletionSource ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
            int generation;
            lock (_gate)
            {
                if (_state == ClientState.Closed)
                {
                    throw new ObjectDisposedException(nameof(LightClient));
                }

                generation = ++_generation;
                _socket = socket;
                _state = ClientState.AwaitingWelcome;
                _ready = ready;
                _outboxLength = 0;
                _flushing = false;
                _fragmentLength = 0;
                SendControlMessageLocked(new ClientMessage
                {
                    Hello = new Hello
                    {
                        ProtocolVersion = (uint)ProtocolVersion.Current,
                        ClientId = ClientId ?? string.Empty,
                        ClientName = _ctx.Settings.ClientName,
                    },
                });
            }

            _ = ReceiveLoopAsync(socket, generation, buffer, leftover);
            await ready.Task.WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch
        {
            lock (_gate)
            {
                if (ReferenceEquals(_socket, socket))
                {
                    _socket = null;
                    _generation++;
                }

                if (_state != ClientState.Closed)
                {
                    _state = ClientState.Disconnected;
                }
            }

            socket.Dispose();
            throw;
        }
    }

    /// <summary>Drops the connection the hard way (TCP RST), as a network failure would; the client then reconnects.</summary>
    public void Drop()
    {
        Socket? socket;
        lock (_gate)
        {
            socket = _socket;
            if (socket is null || _state == ClientState.Closed)
            {
                return;
            }

            _droppedAt = Clock.Now;
        }

        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already reset by the peer or closed by the receive loop: disposing is all that is left.
        }

        socket.Dispose();
    }

    /// <summary>Closes for good: a Close frame (1000), then the socket. No reconnect follows.</summary>
    public void Close()
    {
        Socket? socket;
        lock (_gate)
        {
            if (_state == ClientState.Closed)
            {
                return;
            }

            socket = _socket;
            if (socket is not null)
            {
                Span<byte> payload = [0x03, 0xE8]; // 1000, normal closure
                SendFrameLocked(WsOpcode.Close, payload);
            }

            _state = ClientState.Closed;
            _socket = null;
            _generation++;
            _ready?.TrySetException(new ObjectDisposedException(nameof(LightClient)));
        }

        if (socket is not null)
        {
            try
            {
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // The peer is gone already, or the receive loop disposed the socket as it ended.
            }

            socket.Dispose();
        }
    }

    /// <summary>Upgrades the connection; returns the connection's receive buffer and how many bytes after the response head it holds.</summary>
    private async Task<(byte[] Buffer, int Leftover)> HandshakeAsync(Socket socket, CancellationToken cancellationToken)
    {
        // A buffer per connection (not per client): a dying connection's loop may still hold the previous one.
        byte[] buffer = new byte[InitialReceiveBuffer];
        string key = WebSocketFraming.NewKey();
        await socket.SendAsync(WebSocketFraming.BuildUpgradeRequest(Server, key), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        int filled = 0;
        while (true)
        {
            if (filled == buffer.Length)
            {
                throw new WebSocketProtocolException("upgrade response head is larger than the receive buffer");
            }

            int read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new WebSocketProtocolException("connection closed during the upgrade");
            }

            filled += read;
            int end = WebSocketFraming.FindHeadEnd(buffer.AsSpan(0, filled));
            if (end < 0)
            {
                continue;
            }

            WebSocketFraming.ValidateUpgradeResponse(buffer.AsSpan(0, end), key);
            int leftover = filled - end;
            buffer.AsSpan(end, leftover).CopyTo(buffer);
            return (buffer, leftover);
        }
    }

    private async Task ReceiveLoopAsync(Socket socket, int generation, byte[] buffer, int filled)
    {
        Exception? failure = null;
        try
        {
            long now = Clock.Now;
            while (true)
            {
                int required = ProcessFrames(buffer, ref filled, generation, now, out bool closed);
                if (closed)
                {
                    break;
                }

                if (required > buffer.Length)
                {
                    byte[] larger = new byte[Math.Max(required, buffer.Length * 2)];
                    buffer.AsSpan(0, filled).CopyTo(larger);
                    buffer = larger;
                }

                int read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                now = Clock.Now;
                filled += read;
                Interlocked.Add(ref _ctx.Counters.BytesReceived, read);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or WebSocketProtocolException or WireFormatException or InvalidProtocolBufferException)
        {
            failure = ex;
        }
        catch (Exception ex)
        {
            // A bug in the generator: the loop is fire-and-forget, so record it loudly rather than lose the client silently.
            _ctx.Errors.Add("generator-bug", ex.ToString());
            failure = ex;
        }

        OnConnectionLost(socket, generation, failure);
    }

    /// <summary>Handles every complete frame in the buffer and compacts it; returns the size a partial frame needs.</summary>
    private int ProcessFrames(byte[] buffer, ref int filled, int generation, long now, out bool closed)
    {
        closed = false;
        int offset = 0;
        int required = 0;
        while (WebSocketFraming.TryReadServerHeader(buffer.AsSpan(offset, filled - offset), out ServerFrameHeader header))
        {
            if (filled - offset < header.FrameLength)
            {
                required = header.FrameLength;
                break;
            }

            ReadOnlySpan<byte> payload = buffer.AsSpan(offset + header.HeaderLength, header.PayloadLength);
            offset += header.FrameLength;
            switch (header.Opcode)
            {
                case WsOpcode.Binary when header.Fin && _fragmentLength == 0:
                    HandleMessage(payload, generation, now);
                    break;
                case WsOpcode.Binary or WsOpcode.Continuation:
                    if (!AppendFragment(header.Opcode, payload, header.Fin, generation, now))
                    {
                        throw new WebSocketProtocolException("continuation frame without a message to continue");
                    }

                    break;
                case WsOpcode.Text:
                    throw new WebSocketProtocolException("the server sent a text message");
                case WsOpcode.Ping:
                    lock (_gate)
                    {
                        if (generation == _generation)
                        {
                            SendFrameLocked(WsOpcode.Pong, payload);
                        }
                    }

                    break;
                case WsOpcode.Close:
                    bool serverInitiated;
                    lock (_gate)
                    {
                        // Our own Close() moved the generation on: this is the server's answer to it, not news.
                        serverInitiated = generation == _generation;
                        if (serverInitiated)
                        {
                            SendFrameLocked(WsOpcode.Close, payload.Length >= 2 ? payload[..2] : []);
                        }
                    }

                    closed = true;
                    if (serverInitiated)
                    {
                        _ctx.Errors.Add("server-close", payload.Length >= 2 ? $"close {(payload[0] << 8) | payload[1]} {Encoding.UTF8.GetString(payload[2..])}" : "close");
                    }

                    return 0;
                default:
                    break; // Pong: nothing to do.
            }
        }

        if (offset > 0)
        {
            buffer.AsSpan(offset, filled - offset).CopyTo(buffer);
            filled -= offset;
        }

        return required;
    }

    private bool AppendFragment(WsOpcode opcode, ReadOnlySpan<byte> payload, bool fin, int generation, long now)
    {
        if (opcode == WsOpcode.Continuation && _fragmentLength == 0 && _fragments is null)
        {
            return false;
        }

        _fragments ??= new byte[Math.Max(4096, payload.Length)];
        if (_fragmentLength + payload.Length > _fragments.Length)
        {
            Array.Resize(ref _fragments, Math.Max(_fragmentLength + payload.Length, _fragments.Length * 2));
        }

        payload.CopyTo(_fragments.AsSpan(_fragmentLength));
        _fragmentLength += payload.Length;
        if (fin)
        {
            int length = _fragmentLength;
            _fragmentLength = 0;
            HandleMessage(_fragments.AsSpan(0, length), generation, now);
            _fragments = null;
        }

        return true;
    }

    private void OnConnectionLost(Socket socket, int generation, Exception? failure)
    {
        ClientState previous;
        long droppedAt;
        lock (_gate)
        {
            if (generation != _generation)
            {
                socket.Dispose();
                return;
            }

            previous = _state;
            _socket = null;
            _generation++;
            _pingsInFlight = 0; // their Pongs cannot come any more: they stay unanswered
            if (_state != ClientState.Closed)
            {
                _state = ClientState.Disconnected;
            }

            _ready?.TrySetException(failure ?? new IOException("connection closed"));
            droppedAt = _droppedAt != 0 ? _droppedAt : Clock.Now;
            _droppedAt = droppedAt;
        }

        socket.Dispose();
        if (previous == ClientState.Closed)
        {
            return;
        }

        Interlocked.Increment(ref _ctx.Counters.Disconnects);
        if (previous != ClientState.Live && previous != ClientState.CatchingUp)
        {
            // Still connecting: ConnectAsync sees the failure and its caller decides.
            return;
        }

        if (!_ctx.Settings.Reconnect)
        {
            _ctx.Errors.Add("disconnected", failure?.Message);
            return;
        }

        _ = ReconnectLoopAsync();
    }

    private async Task ReconnectLoopAsync()
    {
        TimeSpan min = _ctx.Settings.ReconnectMinDelay;
        TimeSpan max = _ctx.Settings.ReconnectMaxDelay;
        for (int attempt = 1; ; attempt++)
        {
            if (min > TimeSpan.Zero)
            {
                double upper = Math.Min(max.TotalMilliseconds, min.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 20)));
                double delay = min.TotalMilliseconds + (NextDouble() * (upper - min.TotalMilliseconds));
                await Task.Delay(TimeSpan.FromMilliseconds(delay)).ConfigureAwait(false);
            }

            if (State == ClientState.Closed)
            {
                return;
            }

            try
            {
                await ConnectAsync(CancellationToken.None).ConfigureAwait(false);
                Interlocked.Increment(ref _ctx.Counters.Reconnects);
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or TimeoutException or WebSocketProtocolException or ServerRefusedException or WireFormatException or InvalidProtocolBufferException)
            {
                _ctx.Errors.Add("reconnect-attempt", ex.Message);
                if (min <= TimeSpan.Zero)
                {
                    // Even the "reconnect at once" mode must not spin on a server that refuses connections.
                    await Task.Delay(TimeSpan.FromMilliseconds(10 * attempt)).ConfigureAwait(false);
                }
            }
        }
    }

    // ------------------------------------------------------------------ scheduled submits

    /// <summary>The scheduler says an op is due (its scheduled time, not now: latency counts from the schedule).</summary>
    public void OnScheduled(long scheduled)
    {
        lock (_gate)
        {
            Interlocked.Increment(ref _ctx.Counters.Offered);
            if (_ctx.Window.Contains(scheduled))
            {
                Interlocked.Increment(ref _ctx.Counters.OfferedInWindow);
            }

            if (_ctx.Settings.SubmitMode == SubmitMode.Ping)
            {
                // A slot while disconnected is simply not answered (it shows as offered but unacknowledged).
                if (_state == ClientState.Live)
                {
                    _pingsInFlight++;
                    SendControlMessageLocked(new ClientMessage { Ping = new Ping { Nonce = (ulong)scheduled } });
                }

                return;
            }

            if (_state != ClientState.Live || (_ctx.Settings.SubmitMode == SubmitMode.OneInFlight && _pending.Count > 0))
            {
                _backlog.Enqueue(scheduled);
                return;
            }

            SubmitNewLocked(scheduled);
        }
    }

    /// <summary>
    /// Submits one op directly (setup: the initial text of a document), outside the schedule and the statistics'
    /// window. Inserts <paramref name="text"/> (ASCII) at the start.
    /// </summary>
    public void SubmitInitialText(string text)
    {
        lock (_gate)
        {
            // Scheduled time 0 marks a setup op: acked and delivered like any other, but left out of the statistics.
            ulong seq = ++_lastSeq;
            var op = new PendingOp(seq, 0, _version, 0, Encoding.ASCII.GetBytes(text));
            _pending.Enqueue(op);
            Track?.Register(seq, 0, Doc.ReceiversPerOp);
            SendSubmitLocked(op, op.Text);
        }
    }

    private void SubmitNewLocked(long scheduled)
    {
        ulong seq = ++_lastSeq;
        int position = _length <= 0 ? 0 : (int)(NextRandom() % (ulong)(_length + 1));
        var op = new PendingOp(seq, scheduled, _version, position);
        _pending.Enqueue(op);
        if (Track is not null && !Track.Register(seq, scheduled, Doc.ReceiversPerOp))
        {
            _ctx.Errors.Add("tracking-overflow", "an op was still undelivered after its slot was reused; raise --track");
        }

        Span<byte> token = stackalloc byte[_ctx.Settings.TokenLength];
        WriteToken(seq, token);
        SendSubmitLocked(op, token);
    }

    private void SendSubmitLocked(PendingOp op, ReadOnlySpan<byte> token)
    {
        int length = CollabWire.SubmitInsertLength(Doc.IdUtf8.Length, op.Seq, op.BaseVersion, op.Position, token.Length);
        EnsureScratch(length);
        CollabWire.WriteSubmitInsert(_scratch.AsSpan(HeaderGap), Doc.IdUtf8, op.Seq, op.BaseVersion, op.Position, token);
        SendPreparedLocked(WsOpcode.Binary, length);
    }

    private void WriteToken(ulong seq, Span<byte> token)
    {
        // Readable and distinct per (client, seq) for debugging; uniqueness is not needed for matching.
        ulong n = (seq * 2654435761UL) + (ulong)Index;
        for (int i = 0; i < token.Length; i++)
        {
            token[i] = s_tokenAlphabet[(int)(n % (ulong)s_tokenAlphabet.Length)];
            n /= (ulong)s_tokenAlphabet.Length;
        }
    }

    private string TokenString(ulong seq)
    {
        Span<byte> token = stackalloc byte[_ctx.Settings.TokenLength];
        WriteToken(seq, token);
        return Encoding.ASCII.GetString(token);
    }

    // ------------------------------------------------------------------ incoming messages

    private void HandleMessage(ReadOnlySpan<byte> message, int generation, long now)
    {
        Interlocked.Increment(ref _ctx.Counters.MessagesReceived);
        ServerBody kind = CollabWire.ReadEnvelope(message, out ReadOnlySpan<byte> body);
        switch (kind)
        {
            case ServerBody.Ops:
                lock (_gate)
                {
                    if (generation == _generation)
                    {
                        OnOpsLocked(body, now);
                    }
                }

                break;
            case ServerBody.Ack:
                lock (_gate)
                {
                    if (generation == _generation)
                    {
                        OnAckLocked(body, now);
                    }
                }

                break;
            case ServerBody.Pong when _ctx.Settings.SubmitMode == SubmitMode.Ping:
                OnPong(ServerMessage.Parser.ParseFrom(message).Pong.Nonce, now);
                break;
            case ServerBody.Pong or ServerBody.Presence or ServerBody.Unsubscribed or ServerBody.AuthExpiring or ServerBody.None:
                break;
            default:
                OnControlMessage(ServerMessage.Parser.ParseFrom(message), generation, now);
                break;
        }
    }

    private void OnOpsLocked(ReadOnlySpan<byte> body, long now)
    {
        var reader = new ProtoReader(body);
        while (reader.TryReadTag(out int field, out WireType wireType))
        {
            if (field == 1 && wireType == WireType.LengthDelimited)
            {
                if (!reader.ReadLengthDelimited().SequenceEqual(Doc.IdUtf8))
                {
                    _ctx.Errors.Add("wrong-document", "an Ops message for a document this connection did not subscribe");
                    return;
                }
            }
            else if (field == 2 && wireType == WireType.LengthDelimited)
            {
                OnSequencedOpLocked(CollabWire.ReadSequencedOp(reader.ReadLengthDelimited()), now);
            }
            else
            {
                reader.Skip(wireType);
            }
        }

        if (_state == ClientState.CatchingUp && _version >= _catchUpTarget)
        {
            GoLiveLocked(now);
        }
    }

    private void OnSequencedOpLocked(SequencedOpView op, long now)
    {
        if (op.Version <= _version)
        {
            _ctx.Errors.Add("duplicate-delivery", $"version {op.Version} arrived again (client at {_version})");
            return;
        }

        if (op.Version != _version + 1)
        {
            _ctx.Errors.Add("gap", $"client at version {_version} received version {op.Version}");
            Fault ??= $"gap before version {op.Version}";
        }

        if (op.ClientId.SequenceEqual(ClientIdUtf8))
        {
            // Our own op from an earlier connection, sequenced after it dropped: it is the ack (PROTOCOL.md 7, step 3).
            if (_pending.TryPeek(out PendingOp front) && front.Seq == op.ClientSeq)
            {
                CompleteFrontLocked(op.Version, now, op.Op);
            }
            else
            {
                _ctx.Errors.Add("unexpected-own-op", $"own seq {op.ClientSeq} at version {op.Version} matches no pending op");
                _version = op.Version;
                _length += CollabWire.LengthDelta(op.Op);
            }

            return;
        }

        _version = op.Version;
        _length += CollabWire.LengthDelta(op.Op);
        if (Replica is not null)
        {
            try
            {
                Replica.ApplySequenced(op.Version, op.Op, _pending.TryPeek(out PendingOp oldest) ? oldest.BaseVersion : -1);
            }
            catch (Collab.Engine.OtException ex)
            {
                ReplicaFailed(ex);
            }
        }

        ulong hash = ClientDirectory.Hash(op.Op) ^ (op.ClientSeq * 0x9E3779B97F4A7C15UL) ^ ClientDirectory.Hash(op.ClientId);
        if (!Doc.VerifyOp(op.Version, hash))
        {
            _ctx.Errors.Add("op-mismatch", $"version {op.Version} differs between clients of {Doc.Id}");
            Fault ??= $"op mismatch at version {op.Version}";
        }

        if (Role == ClientRole.Checker)
        {
            return; // Not one of the receivers an op was registered for (it joins after the run).
        }

        if (!_ctx.Directory.TryFind(op.ClientId, out LightClient sender) || sender.Track is null)
        {
            return; // An op from outside this run (another tool, or the run's setup): nothing to measure.
        }

        long scheduled = sender.Track.Deliver(op.ClientSeq, out bool extra);
        if (extra)
        {
            _ctx.Errors.Add("extra-delivery", $"op {op.ClientSeq} of a client reached more receivers than subscribed");
        }

        if (scheduled < 0)
        {
            _ctx.Errors.Add("untracked-delivery", "a delivery arrived after its op's tracking slot was reused");
            return;
        }

        if (scheduled == 0)
        {
            return; // A setup op.
        }

        _ctx.BroadcastLatency.Record(Clock.ToMicros(now - scheduled), _ctx.Window.Contains(scheduled));
        Interlocked.Increment(ref _ctx.Counters.Delivered);
        if (_ctx.Window.Contains(now))
        {
            Interlocked.Increment(ref _ctx.Counters.DeliveredInWindow);
        }
    }

    private void OnAckLocked(ReadOnlySpan<byte> body, long now)
    {
        AckView ack = CollabWire.ReadAck(body);
        if (!ack.DocId.SequenceEqual(Doc.IdUtf8))
        {
            _ctx.Errors.Add("wrong-document", "an Ack for a document this connection did not subscribe");
            return;
        }

        if (ack.ClientSeq <= _lastAckedSeq)
        {
            // A resend's duplicate ack after the original ack (or the own op in the catch-up) arrived first.
            Interlocked.Increment(ref _ctx.Counters.StaleAcks);
            return;
        }

        if (!_pending.TryPeek(out PendingOp front) || front.Seq != ack.ClientSeq)
        {
            _ctx.Errors.Add("unexpected-ack", $"ack for seq {ack.ClientSeq}, oldest pending is {(_pending.Count > 0 ? front.Seq : 0)}");
            return;
        }

        if (ack.Version != _version + 1)
        {
            _ctx.Errors.Add("ack-version", $"ack at version {ack.Version}, client at {_version}");
            Fault ??= $"ack at version {ack.Version} after {_version}";
        }

        CompleteFrontLocked(ack.Version, now, default);
        if (_state == ClientState.CatchingUp && _version >= _catchUpTarget)
        {
            GoLiveLocked(now);
        }
        else if (_state == ClientState.Live && _ctx.Settings.SubmitMode == SubmitMode.OneInFlight && _backlog.Count > 0)
        {
            SubmitNewLocked(_backlog.Dequeue());
        }
    }

    /// <summary>The oldest pending op was sequenced at <paramref name="version"/> (ack, or own op seen in Ops).</summary>
    private void CompleteFrontLocked(long version, long now, ReadOnlySpan<byte> sequencedOp)
    {
        PendingOp op = _pending.Dequeue();
        _lastAckedSeq = op.Seq;
        _version = version;
        _length += op.Text?.Length ?? _ctx.Settings.TokenLength;
        if (Replica is not null)
        {
            long oldest = _pending.TryPeek(out PendingOp next) ? next.BaseVersion : -1;
            try
            {
                if (sequencedOp.IsEmpty)
                {
                    string text = op.Text is null ? TokenString(op.Seq) : Encoding.ASCII.GetString(op.Text);
                    Replica.ApplyOwn(version, TextOp.Insert(op.Position, text), op.BaseVersion, oldest);
                }
                else
                {
                    Replica.ApplySequenced(version, sequencedOp, oldest);
                }
            }
            catch (Collab.Engine.OtException ex)
            {
                ReplicaFailed(ex);
            }
        }

        if (op.Scheduled != 0) // 0: a setup op
        {
            RecordAck(op.Scheduled, now);
        }
    }

    /// <summary>Counts the answer to the slot scheduled at <paramref name="scheduled"/>: an ack, or a Pong in ping mode.</summary>
    private void RecordAck(long scheduled, long now)
    {
        _ctx.AckLatency.Record(Clock.ToMicros(now - scheduled), _ctx.Window.Contains(scheduled));
        Interlocked.Increment(ref _ctx.Counters.Acked);
        if (_ctx.Window.Contains(now))
        {
            Interlocked.Increment(ref _ctx.Counters.AckedInWindow);
        }
    }

    /// <summary>A Pong in ping mode: its nonce is the slot's scheduled time, so it counts exactly like an ack.</summary>
    private void OnPong(ulong nonce, long now)
    {
        lock (_gate)
        {
            _pingsInFlight = Math.Max(0, _pingsInFlight - 1);
        }

        RecordAck((long)nonce, now);
    }

    private void ReplicaFailed(Exception ex)
    {
        _ctx.Errors.Add("replica", ex.Message);
        Fault ??= "replica failed: " + ex.Message;
        Replica = null;
    }

    private void OnControlMessage(ServerMessage message, int generation, long now)
    {
        lock (_gate)
        {
            if (generation != _generation)
            {
                return;
            }

            switch (message.BodyCase)
            {
                case ServerMessage.BodyOneofCase.Welcome:
                    OnWelcomeLocked(message.Welcome);
                    break;
                case ServerMessage.BodyOneofCase.Snapshot:
                    OnSnapshotLocked(message.Snapshot, now);
                    break;
                case ServerMessage.BodyOneofCase.Subscribed:
                    _catchUpTarget = message.Subscribed.CurrentVersion;
                    if (_version >= _catchUpTarget)
                    {
                        GoLiveLocked(now);
                    }
                    else
                    {
                        _state = ClientState.CatchingUp;
                    }

                    break;
                case ServerMessage.BodyOneofCase.Error:
                    OnErrorLocked(message.Error);
                    break;
                case ServerMessage.BodyOneofCase.Redirect:
                    _ctx.Errors.Add("redirect", $"{message.Redirect.Reason} -> '{message.Redirect.Url}'");
                    _socket?.Dispose(); // the receive loop ends and the client reconnects
                    break;
                default:
                    break;
            }
        }
    }

    private void OnWelcomeLocked(Welcome welcome)
    {
        if (_state != ClientState.AwaitingWelcome)
        {
            _ctx.Errors.Add("unexpected-welcome");
            return;
        }

        if (ClientId is not null && !string.Equals(ClientId, welcome.ClientId, StringComparison.Ordinal))
        {
            // The server did not resume our id: unacknowledged ops can no longer be deduplicated. The generator never
            // asks for this; it would be a server bug.
            _ctx.Errors.Add("resume-refused", $"resumed as '{welcome.ClientId}' instead of '{ClientId}'");
        }

        ClientId = welcome.ClientId;
        ClientIdUtf8 = Encoding.UTF8.GetBytes(welcome.ClientId);
        _state = ClientState.AwaitingSubscription;
        SendControlMessageLocked(new ClientMessage
        {
            Subscribe = _hasDocument
                ? new Subscribe { DocId = Doc.Id, FromVersion = _version }
                : new Subscribe { DocId = Doc.Id, Snapshot = true },
        });
    }

    private void OnSnapshotLocked(Snapshot snapshot, long now)
    {
        if (_state != ClientState.AwaitingSubscription || _hasDocument)
        {
            _ctx.Errors.Add("unexpected-snapshot");
            return;
        }

        _hasDocument = true;
        _version = snapshot.Version;
        _length = CollabWire.CountCodePoints(Encoding.UTF8.GetBytes(snapshot.Text));
        Replica?.Reset(snapshot.Text);
        if (Role == ClientRole.Checker)
        {
            SnapshotText = snapshot.Text;
        }

        GoLiveLocked(now);
    }

    private void OnErrorLocked(Error error)
    {
        string kind = "server:" + error.Code;
        _ctx.Errors.Add(kind, error.Message);
        if (_state is ClientState.AwaitingWelcome or ClientState.AwaitingSubscription)
        {
            _ready?.TrySetException(new ServerRefusedException($"{error.Code}: {error.Message}"));
            return;
        }

        if (error.ClientSeq == 0 || error.Code == ErrorCode.SeqAlreadyUsed)
        {
            // SEQ_ALREADY_USED for a resent op: it was sequenced meanwhile and its ack is on the way.
            return;
        }

        // The op was not sequenced (OVERLOADED, UNAVAILABLE, ...). A load generator does not retry it (that would
        // change the offered load): it is dropped, counted under its error code, and never acknowledged.
        int count = _pending.Count;
        for (int i = 0; i < count; i++)
        {
            PendingOp op = _pending.Dequeue();
            if (op.Seq == error.ClientSeq)
            {
                Track?.Cancel(op.Seq);
                continue;
            }

            _pending.Enqueue(op);
        }

        if (_state == ClientState.Live && _ctx.Settings.SubmitMode == SubmitMode.OneInFlight && _pending.Count == 0 && _backlog.Count > 0)
        {
            SubmitNewLocked(_backlog.Dequeue());
        }
    }

    private void GoLiveLocked(long now)
    {
        _state = ClientState.Live;
        if (_droppedAt != 0)
        {
            _ctx.ResumeTime.Record(Clock.ToMicros(now - _droppedAt), inWindow: true);
            _droppedAt = 0;
        }

        // After a reconnect: resend what the catch-up did not acknowledge, same client_seq and base (PROTOCOL.md 6).
        Span<byte> token = stackalloc byte[_ctx.Settings.TokenLength];
        foreach (PendingOp op in _pending)
        {
            WriteToken(op.Seq, token);
            SendSubmitLocked(op, op.Text ?? token);
            Interlocked.Increment(ref _ctx.Counters.Resends);
        }

        while (_backlog.Count > 0 && (_ctx.Settings.SubmitMode == SubmitMode.Pipelined || _pending.Count == 0))
        {
            SubmitNewLocked(_backlog.Dequeue());
        }

        _ready?.TrySetResult();
    }

    // ------------------------------------------------------------------ sending

    private void SendControlMessageLocked(ClientMessage message)
    {
        int length = message.CalculateSize();
        EnsureScratch(length);
        message.WriteTo(_scratch.AsSpan(HeaderGap, length));
        SendPreparedLocked(WsOpcode.Binary, length);
    }

    private void SendFrameLocked(WsOpcode opcode, ReadOnlySpan<byte> payload)
    {
        EnsureScratch(payload.Length);
        payload.CopyTo(_scratch.AsSpan(HeaderGap));
        SendPreparedLocked(opcode, payload.Length);
    }

    /// <summary>Frames and sends the payload already written at <see cref="HeaderGap"/> in the scratch buffer.</summary>
    private void SendPreparedLocked(WsOpcode opcode, int payloadLength)
    {
        uint maskKey = (uint)NextRandom();
        int headerLength = WebSocketFraming.ClientHeaderLength(payloadLength);
        int start = HeaderGap - headerLength;
        WebSocketFraming.WriteClientHeader(_scratch.AsSpan(start), opcode, payloadLength, maskKey);
        WebSocketFraming.Mask(_scratch.AsSpan(HeaderGap, payloadLength), maskKey);
        WriteLocked(_scratch.AsSpan(start, headerLength + payloadLength));
    }

    private void WriteLocked(ReadOnlySpan<byte> frame)
    {
        Socket? socket = _socket;
        if (socket is null)
        {
            return; // Disconnected: pending ops are resent after the reconnect.
        }

        if (!_flushing)
        {
            while (!frame.IsEmpty)
            {
                int sent;
                SocketError error;
                try
                {
                    sent = socket.Send(frame, SocketFlags.None, out error);
                }
                catch (ObjectDisposedException)
                {
                    return; // Dropped under us (storm): the receive loop reconnects and pending ops are resent.
                }

                if (error == SocketError.Success)
                {
                    frame = frame[sent..];
                    continue;
                }

                if (error != SocketError.WouldBlock)
                {
                    return; // The receive loop sees the broken connection and reconnects.
                }

                break;
            }

            if (frame.IsEmpty)
            {
                return;
            }

            _flushing = true;
            AppendOutbox(frame);
            _ = FlushAsync(socket, _generation);
            return;
        }

        AppendOutbox(frame);
    }

    private void AppendOutbox(ReadOnlySpan<byte> frame)
    {
        _outbox ??= new byte[Math.Max(4096, frame.Length)];
        if (_outboxLength + frame.Length > _outbox.Length)
        {
            Array.Resize(ref _outbox, Math.Max(_outboxLength + frame.Length, _outbox.Length * 2));
        }

        frame.CopyTo(_outbox.AsSpan(_outboxLength));
        _outboxLength += frame.Length;
    }

    private async Task FlushAsync(Socket socket, int generation)
    {
        byte[]? spare = null;
        try
        {
            while (true)
            {
                byte[] chunk;
                int length;
                lock (_gate)
                {
                    if (generation != _generation || _outboxLength == 0 || _outbox is null)
                    {
                        _flushing = false;
                        _outboxLength = 0;
                        return;
                    }

                    chunk = _outbox;
                    length = _outboxLength;
                    _outbox = spare;
                    _outboxLength = 0;
                }

                await socket.SendAsync(chunk.AsMemory(0, length), SocketFlags.None).ConfigureAwait(false);
                spare = chunk;
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            lock (_gate)
            {
                _flushing = false;
                _outboxLength = 0;
            }
        }
    }

    private void EnsureScratch(int payloadLength)
    {
        if (_scratch.Length < HeaderGap + payloadLength)
        {
            _scratch = new byte[HeaderGap + payloadLength];
        }
    }

    private ulong NextRandom()
    {
        // xorshift64*: fast, per client, seeded from the run's seed. Positions and mask keys need no crypto strength.
        ulong x = _rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        _rng = x;
        return x * 0x2545F4914F6CDD1DUL;
    }

    private double NextDouble()
    {
        lock (_gate)
        {
            return (NextRandom() >> 11) * (1.0 / (1UL << 53));
        }
    }
}
