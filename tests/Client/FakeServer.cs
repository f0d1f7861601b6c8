using System.Buffers;
using System.Net.WebSockets;
using System.Threading.Channels;
using Collab.Client.Transport;
using Collab.Engine.RichText;
using Collab.Engine.Text;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Client.Tests;

/// <summary>
/// A scripted server: every client connect becomes a <see cref="FakeConnection"/> the test
/// accepts, reads <see cref="ClientMessage"/>s from and writes <see cref="ServerMessage"/>s to.
/// In memory by default; over a real loopback WebSocket through one of the SDK's transports with
/// <see cref="FakeWire.Pipelines"/> or <see cref="FakeWire.ClientWebSocket"/> (<see cref="FakeSocketHost"/>).
/// </summary>
internal sealed class FakeServer(FakeWire wire = FakeWire.InMemory) : IClientTransportFactory
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    public FakeWire Wire { get; } = wire;

    private readonly Channel<FakeConnection> _accepted = Channel.CreateUnbounded<FakeConnection>();
    private readonly Queue<Exception> _connectFailures = new();
    private readonly Lock _gate = new();

    public List<TransportConnectRequest> Requests { get; } = [];

    /// <summary>The next connect attempts fail with these exceptions, in order.</summary>
    public void FailNextConnect(Exception exception)
    {
        lock (_gate)
        {
            _connectFailures.Enqueue(exception);
        }
    }

    public int ConnectAttempts
    {
        get
        {
            lock (_gate)
            {
                return Requests.Count;
            }
        }
    }

    public ValueTask<IClientTransport> ConnectAsync(TransportConnectRequest request, CancellationToken cancellationToken)
    {
        Exception? failure;
        lock (_gate)
        {
            Requests.Add(request);
            _connectFailures.TryDequeue(out failure);
        }

        if (Wire != FakeWire.InMemory)
        {
            return ConnectOverSocketAsync(request, failure, cancellationToken);
        }

        if (failure is not null)
        {
            return ValueTask.FromException<IClientTransport>(failure);
        }

        var connection = new FakeConnection(request);
        _accepted.Writer.TryWrite(connection);
        return ValueTask.FromResult<IClientTransport>(connection.ClientSide);
    }

    private async ValueTask<IClientTransport> ConnectOverSocketAsync(TransportConnectRequest request, Exception? failure, CancellationToken cancellationToken)
    {
        var connection = new FakeConnection(request);
        IClientTransport transport = await FakeSocketHost.ConnectAsync(Wire, connection, failure, cancellationToken);
        connection.ClientSide = transport;
        _accepted.Writer.TryWrite(connection);
        return transport;
    }

    public async Task<FakeConnection> AcceptAsync()
    {
        using var cts = new CancellationTokenSource(Timeout);
        return await _accepted.Reader.ReadAsync(cts.Token);
    }

    public bool HasPendingConnection => _accepted.Reader.Count > 0;

    /// <summary>Accepts a connection and answers its Hello with Welcome.</summary>
    public async Task<(FakeConnection Connection, Hello Hello)> AcceptAndWelcomeAsync(string clientId = "c1", bool? resumed = null, uint maxOpBytes = 0, uint maxPresenceBytes = 0)
    {
        FakeConnection connection = await AcceptAsync();
        Hello hello = (await connection.ReceiveAsync(ClientMessage.BodyOneofCase.Hello)).Hello;
        connection.Send(new ServerMessage
        {
            Welcome = new Welcome
            {
                ProtocolVersion = 1,
                ServerId = "fake",
                ClientId = clientId,
                Resumed = resumed ?? hello.ClientId == clientId,
                MaxMessageBytes = 1 << 20,
                MaxOpBytes = maxOpBytes,
                MaxPresenceBytes = maxPresenceBytes,
            },
        });
        return (connection, hello);
    }

    public static CollabClientOptions Options(FakeServer server) => new()
    {
        TransportFactory = server,
        Reconnect = new ReconnectPolicy { MinDelay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromMilliseconds(5) },
        PingInterval = System.Threading.Timeout.InfiniteTimeSpan,
        ConnectTimeout = TimeSpan.FromSeconds(5),
    };
}

/// <summary>One in-memory connection; the test holds the server side.</summary>
internal sealed class FakeConnection
{
    private readonly Channel<Frame> _toClient = Channel.CreateUnbounded<Frame>();
    private readonly Channel<Frame> _toServer = Channel.CreateUnbounded<Frame>();

    public FakeConnection(TransportConnectRequest request)
    {
        Request = request;
        ClientSide = new ClientTransport(this);
    }

    public TransportConnectRequest Request { get; }

    /// <summary>The client's transport: in memory, or the SDK's real one over a socket.</summary>
    public IClientTransport ClientSide { get; set; }

    /// <summary>Over a socket: the server end (upgrade request, close state); null in memory.</summary>
    public FakeSocketEnd? SocketEnd { get; private set; }

    /// <summary>
    /// Set when the client started the close handshake. Over a socket, reading it waits (boundedly) until the server end
    /// has read everything the client sent, so a close frame still in flight is not missed.
    /// </summary>
    public WebSocketCloseStatus? ClientCloseStatus
    {
        get
        {
            SocketEnd?.InboundDone.Wait(FakeServer.Timeout);
            return _clientCloseStatus;
        }

        private set => _clientCloseStatus = value;
    }

    private WebSocketCloseStatus? _clientCloseStatus;

    /// <summary>Binds this connection to the server end of a real WebSocket (socket wires).</summary>
    public void Attach(System.Net.Sockets.Socket socket, WebSocket webSocket, string requestLine, Dictionary<string, string> headers)
    {
        SocketEnd = new FakeSocketEnd(socket, webSocket, requestLine, headers);
        SocketEnd.Start(_toClient.Reader, _toServer.Writer, status => ClientCloseStatus = status);
    }

    public bool Aborted { get; private set; }

    public void Send(ServerMessage message) => _toClient.Writer.TryWrite(new Frame(message.ToByteArray(), null, null, false));

    public void SendRaw(byte[] payload) => _toClient.Writer.TryWrite(new Frame(payload, null, null, false));

    /// <summary>The server closes with a close frame.</summary>
    public void Close(WebSocketCloseStatus status, string description = "") => _toClient.Writer.TryWrite(new Frame(null, status, description, false));

    /// <summary>The connection breaks without a close handshake.</summary>
    public void Drop() => _toClient.Writer.TryWrite(new Frame(null, null, null, true));

    /// <summary>The next message from the client; fails when the client closed or aborted instead.</summary>
    public async Task<ClientMessage> ReceiveAsync()
    {
        using var cts = new CancellationTokenSource(FakeServer.Timeout);
        Frame frame = await _toServer.Reader.ReadAsync(cts.Token);
        if (frame.Payload is null)
        {
            throw new InvalidOperationException($"The client closed the connection ({frame.Close}) instead of sending.");
        }

        return ClientMessage.Parser.ParseFrom(frame.Payload);
    }

    /// <summary>The next message, skipping Pings, asserting its kind.</summary>
    public async Task<ClientMessage> ReceiveAsync(ClientMessage.BodyOneofCase expected)
    {
        while (true)
        {
            ClientMessage message = await ReceiveAsync();
            if (message.BodyCase == ClientMessage.BodyOneofCase.Ping && expected != ClientMessage.BodyOneofCase.Ping)
            {
                continue;
            }

            Assert.Equal(expected, message.BodyCase);
            return message;
        }
    }

    /// <summary>True when no client message is waiting (after letting the client run briefly).</summary>
    public async Task<bool> IsQuietAsync(int milliseconds = 50)
    {
        await Task.Delay(milliseconds);
        return _toServer.Reader.Count == 0;
    }

    /// <summary>Waits until the client sent its close frame (or aborted).</summary>
    public async Task WaitClientClosedAsync()
    {
        using var cts = new CancellationTokenSource(FakeServer.Timeout);
        while (true)
        {
            Frame frame = await _toServer.Reader.ReadAsync(cts.Token);
            if (frame.Payload is null)
            {
                return;
            }
        }
    }

    // ---- conveniences for scripting a document server

    public async Task<Subscribe> ExpectSubscribeAsync(string docId) => await ExpectSubscribeAsync(docId, requestIdSink: null);

    public async Task<Subscribe> ExpectSubscribeAsync(string docId, List<ulong>? requestIdSink)
    {
        ClientMessage message = await ReceiveAsync(ClientMessage.BodyOneofCase.Subscribe);
        Assert.Equal(docId, message.Subscribe.DocId);
        requestIdSink?.Add(message.RequestId);
        LastRequestId = message.RequestId;
        return message.Subscribe;
    }

    public ulong LastRequestId { get; private set; }

    public void SendSnapshot(string docId, long version, string text) => Send(new ServerMessage
    {
        RequestId = LastRequestId,
        Snapshot = new Snapshot { DocId = docId, Version = version, Text = text, Type = TextType.TypeName },
    });

    /// <summary>A rich-text snapshot as P6 sends it: the document as one insert-only op in <c>content</c>, <c>text</c> empty.</summary>
    public void SendRichSnapshot(string docId, long version, RichDocument document, string type = RichTextType.TypeName) => Send(new ServerMessage
    {
        RequestId = LastRequestId,
        Snapshot = new Snapshot { DocId = docId, Version = version, Type = type, Content = ByteString.CopyFrom(RichOpCodec.Encode(document.ToOp())) },
    });

    public static SequencedOp RichSequencedOp(long version, RichOp op, string clientId = "other", ulong clientSeq = 1) =>
        new() { Version = version, ClientId = clientId, ClientSeq = clientSeq, Op = ByteString.CopyFrom(RichOpCodec.Encode(op)) };

    public static RichOp DecodeRich(Submit submit) => RichOpCodec.Decode(submit.Op.Span);

    public void SendSubscribed(string docId, long fromVersion, long currentVersion) => Send(new ServerMessage
    {
        RequestId = LastRequestId,
        Subscribed = new Subscribed { DocId = docId, FromVersion = fromVersion, CurrentVersion = currentVersion },
    });

    public void SendOps(string docId, params SequencedOp[] ops) => SendOps(docId, requestId: 0, ops);

    public void SendOps(string docId, ulong requestId, params SequencedOp[] ops)
    {
        var message = new Ops { DocId = docId };
        message.Ops_.AddRange(ops);
        Send(new ServerMessage { RequestId = requestId, Ops = message });
    }

    public void SendAck(string docId, ulong clientSeq, long version, bool duplicate = false) => Send(new ServerMessage
    {
        Ack = new Ack { DocId = docId, ClientSeq = clientSeq, Version = version, Duplicate = duplicate },
    });

    public void SendError(ErrorCode code, bool retryable, string docId = "", ulong clientSeq = 0, ulong requestId = 0) => Send(new ServerMessage
    {
        RequestId = requestId,
        Error = new Error { Code = code, Message = code.ToString(), Retryable = retryable, DocId = docId, ClientSeq = clientSeq },
    });

    public async Task<Submit> ExpectSubmitAsync(string docId)
    {
        ClientMessage message = await ReceiveAsync(ClientMessage.BodyOneofCase.Submit);
        Assert.Equal(docId, message.Submit.DocId);
        return message.Submit;
    }

    public static SequencedOp Op(long version, TextOp op, string clientId = "other", ulong clientSeq = 1)
    {
        var buffer = new ArrayBufferWriter<byte>();
        TextOpCodec.Encode(op, buffer);
        return new SequencedOp { Version = version, ClientId = clientId, ClientSeq = clientSeq, Op = ByteString.CopyFrom(buffer.WrittenSpan) };
    }

    public static TextOp Decode(Submit submit) => TextOpCodec.Decode(submit.Op.Span);

    internal readonly record struct Frame(byte[]? Payload, WebSocketCloseStatus? Close, string? Description, bool Fault);

    private sealed class ClientTransport(FakeConnection connection) : IClientTransport
    {
        private readonly CancellationTokenSource _aborted = new();
        private WebSocketCloseStatus? _closeStatus;
        private string? _closeDescription;
        private bool _closeSent;

        public WebSocketCloseStatus? CloseStatus => _closeStatus;

        public string? CloseStatusDescription => _closeDescription;

        public ValueTask SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
        {
            if (_aborted.IsCancellationRequested || _closeSent)
            {
                throw new WebSocketException(WebSocketError.InvalidState, "The connection is closed.");
            }

            connection._toServer.Writer.TryWrite(new Frame(message.ToArray(), null, null, false));
            return ValueTask.CompletedTask;
        }

        public async ValueTask<bool> ReceiveAsync(IBufferWriter<byte> destination, CancellationToken cancellationToken)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _aborted.Token);
            Frame frame;
            try
            {
                frame = await connection._toClient.Reader.ReadAsync(linked.Token);
            }
            catch (OperationCanceledException) when (_aborted.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "Aborted.");
            }

            if (frame.Fault)
            {
                throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "The connection broke.");
            }

            if (frame.Payload is null)
            {
                _closeStatus = frame.Close;
                _closeDescription = frame.Description;
                return false;
            }

            destination.Write(frame.Payload);
            return true;
        }

        public ValueTask CloseAsync(WebSocketCloseStatus status, string? description, CancellationToken cancellationToken)
        {
            if (!_closeSent)
            {
                _closeSent = true;
                connection.ClientCloseStatus = status;
                connection._toServer.Writer.TryWrite(new Frame(null, status, description, false));
                // The fake server answers every close at once, as a conforming server does.
                connection._toClient.Writer.TryWrite(new Frame(null, status, description, false));
            }

            return ValueTask.CompletedTask;
        }

        public void Abort()
        {
            if (!_aborted.IsCancellationRequested)
            {
                connection.Aborted = true;
                _aborted.Cancel();
                connection._toServer.Writer.TryWrite(new Frame(null, null, null, true));
            }
        }

        public ValueTask DisposeAsync()
        {
            Abort();
            return ValueTask.CompletedTask;
        }
    }
}
