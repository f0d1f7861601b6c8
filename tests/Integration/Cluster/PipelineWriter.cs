using System.Buffers;
using System.Net.WebSockets;
using System.Threading.Channels;
using Collab.Engine.Text;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Integration.Tests.Cluster;

/// <summary>
/// A client written from docs/PROTOCOL.md alone that pipelines: up to <c>window</c> submits in flight on one connection
/// (§11 allows it), each an insert of a unique tag at offset 0 based on the last version it knows. It follows the spec's
/// rules for everything that can go wrong: on any connection loss it reconnects (through the balancer) resuming its
/// client id, resubscribes from its last version and resends every unresolved op in seq order with the same seq; a
/// retryable error resends the op after a backoff (UNAVAILABLE: outcome unknown); an op that arrives in Ops under its own
/// (client id, seq) is acknowledged by it. It records every acknowledgement and every non-retryable refusal.
/// </summary>
internal sealed class PipelineWriter : IAsyncDisposable
{
    private readonly Func<Uri> _uri;
    private readonly string _docId;
    private readonly string _name;
    private readonly int _window;
    private readonly SortedDictionary<ulong, Pending> _pending = [];
    private readonly Lock _gate = new();
    private readonly byte[] _buffer = new byte[1 << 20];
    private ClientWebSocket? _socket;
    private Channel<ServerMessage>? _inbox;
    private Task? _receiving;
    private string _clientId = string.Empty;
    private long _version;
    private ulong _nextSeq;
    private bool _live;

    public PipelineWriter(Func<Uri> uri, string docId, string name, int window)
    {
        _uri = uri;
        _docId = docId;
        _name = name;
        _window = window;
    }

    public string ClientId => _clientId;

    public string DocId => _docId;

    /// <summary>(seq, version) of every acknowledged op; version 0 for ALREADY_COMMITTED (committed, version no longer known).</summary>
    public List<(ulong Seq, long Version)> Acked { get; } = [];

    /// <summary>Non-retryable refusals of a submit: must stay empty for ops that were sequenced.</summary>
    public List<(ulong Seq, ErrorCode Code, string Message)> Refused { get; } = [];

    /// <summary>Protocol-level surprises (a fresh client id, an ack contradicting an earlier one, a gap).</summary>
    public List<string> Anomalies { get; } = [];

    public int Connections { get; private set; }

    public int RetryableErrors { get; private set; }

    public int Submitted => (int)_nextSeq;

    public int Unresolved
    {
        get
        {
            lock (_gate)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Submits new ops until <paramref name="stopSubmitting"/>, then keeps going until every op is resolved or <paramref name="deadline"/>.</summary>
    public async Task RunAsync(CancellationToken stopSubmitting, CancellationToken deadline)
    {
        int failures = 0;
        while (!deadline.IsCancellationRequested && (!stopSubmitting.IsCancellationRequested || Unresolved > 0))
        {
            try
            {
                await ConnectAsync(deadline);
                failures = 0;
                await PumpAsync(stopSubmitting, deadline);
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException or InvalidProtocolBufferException or ConnectionLostException)
            {
                // Any loss: reconnect with backoff and resume (the spec's reconnect rule).
            }
            finally
            {
                _live = false;
                _socket?.Abort();
                if (_receiving is { } receiving)
                {
                    await receiving.ContinueWith(static _ => { }, TaskScheduler.Default);
                }

                _socket?.Dispose();
                _socket = null;
                _receiving = null;
            }

            if (!deadline.IsCancellationRequested)
            {
                await Task.Delay(Math.Min(50 << Math.Min(failures++, 4), 500), CancellationToken.None);
            }
        }
    }

    private async Task ConnectAsync(CancellationToken cancellationToken)
    {
        _socket = new ClientWebSocket();
        using var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        connect.CancelAfter(TimeSpan.FromSeconds(5));
        await _socket.ConnectAsync(_uri(), connect.Token);
        await SendAsync(new ClientMessage { Hello = new Hello { ProtocolVersion = 1, ClientId = _clientId, ClientName = _name } }, connect.Token);
        ServerMessage welcome = await ReceiveAsync(connect.Token);
        if (welcome.Welcome is null)
        {
            throw new ConnectionLostException(); // a Redirect or an Error during the handshake: try again
        }

        if (_clientId.Length > 0 && !welcome.Welcome.Resumed)
        {
            Anomalies.Add($"client id {_clientId} was not resumed (got {welcome.Welcome.ClientId})");
        }

        _clientId = welcome.Welcome.ClientId;
        Connections++;
        _inbox = Channel.CreateUnbounded<ServerMessage>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        _receiving = ReceiveLoopAsync(_socket, _inbox.Writer);
        await SendAsync(new ClientMessage { RequestId = 1, Subscribe = new Subscribe { DocId = _docId, FromVersion = _version } }, connect.Token);
    }

    /// <summary>Reads the connection into the inbox until it ends (ClientWebSocket aborts on a cancelled receive, so only this loop receives).</summary>
    private async Task ReceiveLoopAsync(ClientWebSocket socket, ChannelWriter<ServerMessage> inbox)
    {
        try
        {
            while (true)
            {
                inbox.TryWrite(await ReceiveAsync(CancellationToken.None));
            }
        }
        catch (Exception ex)
        {
            inbox.TryComplete(ex);
        }
    }

    private async Task PumpAsync(CancellationToken stopSubmitting, CancellationToken deadline)
    {
        while (!deadline.IsCancellationRequested && (!stopSubmitting.IsCancellationRequested || Unresolved > 0))
        {
            if (_live)
            {
                await SendDueAsync(stopSubmitting.IsCancellationRequested, deadline);
            }

            // Paced: a new op at most every 10 ms, sooner only as answers come in.
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(deadline);
            wait.CancelAfter(TimeSpan.FromMilliseconds(10));
            try
            {
                if (!await _inbox!.Reader.WaitToReadAsync(wait.Token))
                {
                    throw new ConnectionLostException();
                }
            }
            catch (OperationCanceledException) when (!deadline.IsCancellationRequested)
            {
                continue;
            }
            catch (ChannelClosedException)
            {
                throw new ConnectionLostException();
            }

            while (_inbox.Reader.TryRead(out ServerMessage? message))
            {
                Handle(message);
            }
        }
    }

    /// <summary>New ops up to the window, and resends that are due, in seq order.</summary>
    private async Task SendDueAsync(bool noNewOps, CancellationToken cancellationToken)
    {
        List<ClientMessage> due = [];
        lock (_gate)
        {
            long now = Environment.TickCount64;
            foreach (Pending pending in _pending.Values)
            {
                if (!pending.SentOnConnection && pending.ResendAtMs <= now)
                {
                    pending.SentOnConnection = true;
                    due.Add(Submit(pending));
                }
            }

            if (!noNewOps && _pending.Count < _window)
            {
                var fresh = new Pending(++_nextSeq, _version, $"[{_name}.{_nextSeq}]") { SentOnConnection = true };
                _pending.Add(fresh.Seq, fresh);
                due.Add(Submit(fresh));
            }
        }

        foreach (ClientMessage message in due)
        {
            await SendAsync(message, cancellationToken);
        }
    }

    private void Handle(ServerMessage message)
    {
        lock (_gate)
        {
            switch (message.BodyCase)
            {
                case ServerMessage.BodyOneofCase.Subscribed:
                    // Resume: every unresolved op goes again, in seq order, with its seq (§7).
                    _live = true;
                    foreach (Pending pending in _pending.Values)
                    {
                        pending.SentOnConnection = false;
                        pending.ResendAtMs = 0;
                    }

                    break;
                case ServerMessage.BodyOneofCase.Ops:
                    foreach (SequencedOp op in message.Ops.Ops_)
                    {
                        if (op.Version <= _version)
                        {
                            continue;
                        }

                        if (op.Version != _version + 1)
                        {
                            Anomalies.Add($"gap: op {op.Version} after {_version}");
                            throw new ConnectionLostException();
                        }

                        _version = op.Version;
                        if (op.ClientId == _clientId)
                        {
                            Resolve(op.ClientSeq, op.Version); // sequenced on an earlier connection: this is its ack
                        }
                    }

                    break;
                case ServerMessage.BodyOneofCase.Ack:
                    if (message.Ack.Version == _version + 1)
                    {
                        _version = message.Ack.Version;
                    }
                    else if (message.Ack.Version > _version + 1)
                    {
                        Anomalies.Add($"ack {message.Ack.Version} ahead of version {_version}");
                        throw new ConnectionLostException();
                    }

                    Resolve(message.Ack.ClientSeq, message.Ack.Version);
                    break;
                case ServerMessage.BodyOneofCase.Error when message.Error.ClientSeq != 0 && _pending.TryGetValue(message.Error.ClientSeq, out Pending? refused):
                    if (message.Error.Retryable)
                    {
                        RetryableErrors++;
                        refused.SentOnConnection = false;
                        refused.ResendAtMs = Environment.TickCount64 + Random.Shared.Next(50, 250);
                    }
                    else if (message.Error.Code == ErrorCode.AlreadyCommitted)
                    {
                        Resolve(refused.Seq, 0);
                    }
                    else
                    {
                        Refused.Add((refused.Seq, message.Error.Code, message.Error.Message));
                        _pending.Remove(refused.Seq);
                    }

                    break;
                case ServerMessage.BodyOneofCase.Error when message.RequestId == 1:
                    throw new ConnectionLostException(); // the subscribe failed (retryable): reconnect and try again
                case ServerMessage.BodyOneofCase.Redirect:
                    throw new ConnectionLostException();
            }
        }
    }

    private void Resolve(ulong seq, long version)
    {
        if (_pending.Remove(seq))
        {
            Acked.Add((seq, version));
            return;
        }

        // Already resolved (a duplicate ack of a resend, or its op seen in the catch-up): it must agree.
        foreach ((ulong ackedSeq, long ackedVersion) in Acked)
        {
            if (ackedSeq == seq && version != 0 && ackedVersion != 0 && ackedVersion != version)
            {
                Anomalies.Add($"seq {seq} acknowledged at version {ackedVersion} and at {version}");
            }
        }
    }

    private ClientMessage Submit(Pending pending)
    {
        var buffer = new ArrayBufferWriter<byte>();
        TextOpCodec.Encode(TextOp.Insert(0, pending.Tag), buffer);
        return new ClientMessage
        {
            Submit = new Submit { DocId = _docId, ClientSeq = pending.Seq, BaseVersion = pending.BaseVersion, Op = ByteString.CopyFrom(buffer.WrittenSpan) },
        };
    }

    private async Task SendAsync(ClientMessage message, CancellationToken cancellationToken) =>
        await _socket!.SendAsync(message.ToByteArray(), WebSocketMessageType.Binary, endOfMessage: true, cancellationToken);

    private async Task<ServerMessage> ReceiveAsync(CancellationToken cancellationToken)
    {
        int length = 0;
        while (true)
        {
            ValueWebSocketReceiveResult result = await _socket!.ReceiveAsync(_buffer.AsMemory(length), cancellationToken);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                throw new ConnectionLostException();
            }

            length += result.Count;
            if (result.EndOfMessage)
            {
                return ServerMessage.Parser.ParseFrom(_buffer, 0, length);
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        _socket?.Abort();
        _socket?.Dispose();
        return ValueTask.CompletedTask;
    }

    private sealed class Pending(ulong seq, long baseVersion, string tag)
    {
        public ulong Seq { get; } = seq;

        /// <summary>The version the op was made against (kept for resends: the op is the same op).</summary>
        public long BaseVersion { get; } = baseVersion;

        public string Tag { get; } = tag;

        public bool SentOnConnection { get; set; }

        public long ResendAtMs { get; set; }
    }

    private sealed class ConnectionLostException : Exception;
}
