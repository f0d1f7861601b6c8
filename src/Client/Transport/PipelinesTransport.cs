using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;
using Pipelines.Sockets.Unofficial;

namespace Collab.Client.Transport;

/// <summary>
/// The latency transport: a TCP socket as a duplex pipe (<see cref="SocketConnection"/> from Pipelines.Sockets.Unofficial)
/// with the SDK's own RFC 6455 client on top. Sends encode the frame header and the masked payload straight into the
/// pipe's pooled memory; receives parse frames from the pipe's buffer and copy payloads into the caller's buffer, so a
/// message costs no allocation either way. It speaks to the server directly: behind an HTTP proxy use
/// <see cref="WebSocketTransportFactory"/> (<see cref="TransportKind.Automatic"/> does when the system proxy applies).
/// </summary>
internal sealed class PipelinesTransportFactory : IClientTransportFactory
{
    public static PipelinesTransportFactory Instance { get; } = new();

    private readonly RemoteCertificateValidationCallback? _certificateValidation;
    private readonly bool _inlineScheduling;

    /// <param name="certificateValidation">Overrides the system's validation of the server certificate (tests, pinning).</param>
    /// <param name="inlineScheduling">
    /// Run the socket's completions and the pipes' continuations on the thread that completed them instead of queueing
    /// them to the thread pool (one hop fewer each way; measured in docs/PERFORMANCE.md).
    /// </param>
    internal PipelinesTransportFactory(RemoteCertificateValidationCallback? certificateValidation = null, bool inlineScheduling = true)
    {
        _certificateValidation = certificateValidation;
        _inlineScheduling = inlineScheduling;
    }

    public async ValueTask<IClientTransport> ConnectAsync(TransportConnectRequest request, CancellationToken cancellationToken)
    {
        var upgrade = new WebSocketUpgrade(request.Uri, request.AccessToken, request.TokenDelivery, request.SubProtocol);
        Uri uri = upgrade.Uri;
        // A dual-mode socket reaches IPv4 and IPv6 addresses alike; ConnectAsync(DnsEndPoint) tries each resolved address.
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Connection? connection = null;
        bool connected = false;
        try
        {
            try
            {
                await socket.ConnectAsync(new DnsEndPoint(uri.IdnHost, uri.Port), cancellationToken).ConfigureAwait(false);
                connection = uri.Scheme == "wss"
                    ? await Connection.OverTlsAsync(socket, uri.IdnHost, _certificateValidation, cancellationToken).ConfigureAwait(false)
                    : Connection.Plain(socket, _inlineScheduling);
                await UpgradeAsync(connection.Pipe, upgrade, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or IOException or System.Security.Authentication.AuthenticationException
                || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                // (An OperationCanceledException nobody asked for is Pipelines.Sockets.Unofficial's ConnectionAbortedException.)
                // The same exception type ClientWebSocket throws for a connection that cannot be made, so callers see one.
                throw new WebSocketException(WebSocketError.Faulted, $"Unable to connect to {uri.GetLeftPart(UriPartial.Path)}: {ex.Message}", ex);
            }

            var transport = new PipelinesTransport(connection, request.MaxReceiveMessageBytes);
            connected = true;
            return transport;
        }
        finally
        {
            if (!connected)
            {
                if (connection is not null)
                {
                    await connection.DisposeAsync().ConfigureAwait(false);
                }

                socket.Dispose();
            }
        }
    }

    private static async ValueTask UpgradeAsync(IDuplexPipe pipe, WebSocketUpgrade upgrade, CancellationToken cancellationToken)
    {
        await pipe.Output.WriteAsync(upgrade.BuildRequest(), cancellationToken).ConfigureAwait(false);
        while (true)
        {
            ReadResult result = await pipe.Input.ReadAsync(cancellationToken).ConfigureAwait(false);
            ReadOnlySequence<byte> buffer = result.Buffer;
            bool done;
            SequencePosition consumed;
            try
            {
                done = upgrade.TryReadResponse(buffer, out consumed);
            }
            catch
            {
                pipe.Input.AdvanceTo(buffer.Start);
                throw;
            }

            // Bytes after the header block are the server's first frames: they stay in the pipe for the transport.
            pipe.Input.AdvanceTo(consumed, done ? consumed : buffer.End);
            if (done)
            {
                return;
            }

            if (result.IsCompleted)
            {
                throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "The server closed the connection during the upgrade.");
            }
        }
    }

    /// <summary>The socket and the pipe over it, plain or through TLS.</summary>
    internal sealed class Connection : IAsyncDisposable
    {
        // Receives land in segments of this size; sends of larger messages span several.
        private const int SegmentBytes = 16 * 1024;

        private readonly Socket? _socket;
        private readonly SocketConnection? _socketConnection;
        private readonly SslStream? _tls;

        private Connection(Socket? socket, IDuplexPipe pipe, SocketConnection? socketConnection, SslStream? tls)
        {
            _socket = socket;
            Pipe = pipe;
            _socketConnection = socketConnection;
            _tls = tls;
        }

        public IDuplexPipe Pipe { get; }

        /// <summary>A connection over in-memory pipes, for the allocation tests of the framing.</summary>
        internal static Connection OverPipe(IDuplexPipe pipe) => new(null, pipe, null, null);

        public static Connection Plain(Socket socket, bool inlineScheduling)
        {
            PipeScheduler scheduler = inlineScheduling ? PipeScheduler.Inline : PipeScheduler.ThreadPool;
            var options = new PipeOptions(
                pool: MemoryPool<byte>.Shared,
                readerScheduler: scheduler,
                writerScheduler: scheduler,
                minimumSegmentSize: SegmentBytes,
                useSynchronizationContext: false);
            SocketConnectionOptions socketOptions = inlineScheduling ? SocketConnectionOptions.InlineReads | SocketConnectionOptions.InlineWrites : SocketConnectionOptions.None;
            var connection = SocketConnection.Create(socket, options, socketOptions, name: "collab-client");
            return new Connection(socket, connection, connection, null);
        }

        public static async ValueTask<Connection> OverTlsAsync(Socket socket, string host, RemoteCertificateValidationCallback? validation, CancellationToken cancellationToken)
        {
            // TLS is a Stream (SslStream), so it goes over the socket's own NetworkStream and the pipe goes over the
            // decrypted stream: the pipe sits where the framing needs it. Putting SslStream over SocketConnection's pipe
            // instead would need a Stream adapter around that pipe, copying every byte through a second pipe and
            // paying a second thread-pool hop per read for no gain. PipeReader/PipeWriter.Create read and write the
            // stream on the caller's own await, so the TLS path adds no copy loop of its own.
            var tls = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
            try
            {
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                {
                    TargetHost = host,
                    RemoteCertificateValidationCallback = validation,
                    // Only HTTP/1.1 can be upgraded to a WebSocket (RFC 8441 over HTTP/2 is another handshake).
                    ApplicationProtocols = [SslApplicationProtocol.Http11],
                }, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await tls.DisposeAsync().ConfigureAwait(false);
                throw;
            }

            var reader = PipeReader.Create(tls, new StreamPipeReaderOptions(bufferSize: SegmentBytes, minimumReadSize: 1024, leaveOpen: true));
            var writer = PipeWriter.Create(tls, new StreamPipeWriterOptions(minimumBufferSize: SegmentBytes, leaveOpen: true));
            return new Connection(socket, new DuplexPipe(reader, writer), null, tls);
        }

        /// <summary>Breaks the connection at once: pending reads and flushes fail. Safe from any thread, more than once.</summary>
        public void Abort()
        {
            if (_socketConnection is not null)
            {
                _socketConnection.Dispose();
            }
            else
            {
                // Closing the socket under SslStream fails its pending operations; SslStream itself is disposed in DisposeAsync,
                // after they ended, as it may not be disposed concurrently with them.
                _socket?.Dispose();
            }
        }

        public async ValueTask DisposeAsync()
        {
            Abort();
            await Pipe.Input.CompleteAsync().ConfigureAwait(false);
            await Pipe.Output.CompleteAsync().ConfigureAwait(false);
            if (_tls is not null)
            {
                await _tls.DisposeAsync().ConfigureAwait(false);
            }
        }

        private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
        {
            public PipeReader Input { get; } = input;

            public PipeWriter Output { get; } = output;
        }
    }
}

/// <summary>
/// One WebSocket over a <see cref="PipelinesTransportFactory.Connection"/>. Sends (messages from the SDK's send loop,
/// pongs and the close answer from the receive loop, a close from anywhere) take one lock, as a pipe has a single writer;
/// only the receive loop reads.
/// </summary>
internal sealed class PipelinesTransport : IClientTransport
{
    // A frame is written into one span up to this size; a larger message is masked into the pipe chunk by chunk.
    private const int MaxContiguousFrameBytes = 16 * 1024;

    private readonly PipelinesTransportFactory.Connection _connection;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly int _maxMessageBytes;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly byte[] _pingPayload = new byte[ClientFraming.MaxControlPayload];

    // Receive state; touched by the receive loop only.
    private bool _inFrame;
    private bool _frameFin;
    private long _frameRemaining;
    private bool _messageOpen;
    private long _messageBytes;
    private int _pingLength;
    private string _violation = string.Empty;
    private WebSocketCloseStatus _closeFailure;

    private volatile bool _closeSent;
    private volatile bool _closeReceived;
    private volatile bool _aborted;
    private WebSocketCloseStatus? _closeStatus;
    private string? _closeDescription;

    public PipelinesTransport(PipelinesTransportFactory.Connection connection, int maxMessageBytes)
    {
        _connection = connection;
        _input = connection.Pipe.Input;
        _output = connection.Pipe.Output;
        _maxMessageBytes = maxMessageBytes;
    }

    public WebSocketCloseStatus? CloseStatus => _closeStatus;

    public string? CloseStatusDescription => _closeDescription;

    private enum Step
    {
        NeedMore,
        Message,
        Ping,
        Close,
        Text,
        TooLarge,
        ProtocolError,
        BadClosePayload,
    }

    // ------------------------------------------------------------------ send

    public ValueTask SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
        => SendFrameAsync(FrameOpcode.Binary, message, cancellationToken);

    /// <summary>
    /// Sends one frame. Synchronous when it can be (the lock is free and the flush completes at once, the usual case
    /// with inline scheduling), so a send runs no async state machine at all; asynchronous only under contention or
    /// backpressure.
    /// </summary>
    private ValueTask SendFrameAsync(FrameOpcode opcode, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        if (!_sendLock.Wait(0, CancellationToken.None))
        {
            return SendFrameSlowAsync(opcode, payload, cancellationToken);
        }

        ValueTask<FlushResult> flush;
        try
        {
            flush = WriteAndFlush(opcode, payload.Span, cancellationToken);
        }
        catch (Exception ex)
        {
            _sendLock.Release();
            return ValueTask.FromException(Translate(ex, "sending", cancellationToken));
        }

        if (!flush.IsCompleted)
        {
            return AwaitFlushAsync(flush, cancellationToken); // releases the lock once the flush completes
        }

        _sendLock.Release();
        try
        {
            CheckFlushed(flush.GetAwaiter().GetResult());
            return default;
        }
        catch (Exception ex)
        {
            return ValueTask.FromException(Translate(ex, "sending", cancellationToken));
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendFrameSlowAsync(FrameOpcode opcode, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            CheckFlushed(await WriteAndFlush(opcode, payload.Span, cancellationToken).ConfigureAwait(false));
        }
        catch (Exception ex)
        {
            throw Translate(ex, "sending", cancellationToken);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask AwaitFlushAsync(ValueTask<FlushResult> flush, CancellationToken cancellationToken)
    {
        try
        {
            CheckFlushed(await flush.ConfigureAwait(false));
        }
        catch (Exception ex)
        {
            throw Translate(ex, "sending", cancellationToken);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Writes the frame into the pipe and starts the flush; the caller holds the send lock.</summary>
    private ValueTask<FlushResult> WriteAndFlush(FrameOpcode opcode, ReadOnlySpan<byte> payload, CancellationToken cancellationToken)
    {
        if (_aborted || _closeSent)
        {
            throw new WebSocketException(WebSocketError.InvalidState, _aborted ? "The connection was aborted." : "The close handshake has started; no more messages can be sent.");
        }

        if (opcode == FrameOpcode.Close)
        {
            _closeSent = true;
        }

        WriteFrame(_output, opcode, payload);
        return _output.FlushAsync(cancellationToken);
    }

    private static void CheckFlushed(FlushResult flushed)
    {
        if (flushed.IsCompleted || flushed.IsCanceled)
        {
            throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "The connection closed while sending.");
        }
    }

    /// <summary>
    /// The exception a caller sees: the caller's own cancellation as it is, a <see cref="WebSocketException"/> as it is,
    /// anything else from the socket or pipe as a <see cref="WebSocketException"/> (as ClientWebSocket reports it).
    /// Pipelines.Sockets.Unofficial reports an aborted socket as <see cref="ConnectionAbortedException"/>, an
    /// <see cref="OperationCanceledException"/> nobody asked for: that one is a broken connection too.
    /// </summary>
    private static Exception Translate(Exception exception, string doing, CancellationToken cancellationToken) =>
        exception is WebSocketException || (exception is OperationCanceledException && cancellationToken.IsCancellationRequested)
            ? exception
            : new WebSocketException(WebSocketError.ConnectionClosedPrematurely, $"The connection broke while {doing}: {exception.Message}", exception);

    /// <summary>Encodes one final frame into the pipe: the header in place, then the payload masked chunk by chunk.</summary>
    private static void WriteFrame(PipeWriter output, FrameOpcode opcode, ReadOnlySpan<byte> payload)
    {
        // Ask for the whole frame up to a segment: a small message lands in one span, a large one is not made contiguous.
        Span<byte> span = output.GetSpan(Math.Min(ClientFraming.MaxClientHeaderLength + payload.Length, MaxContiguousFrameBytes));
        int headerLength = ClientFraming.WriteClientHeader(span, opcode, payload.Length, out uint maskKey);
        if (span.Length - headerLength >= payload.Length)
        {
            // One span holds the frame (every message up to a segment): mask straight behind the header.
            ClientFraming.Mask(payload, span[headerLength..], maskKey, 0);
            output.Advance(headerLength + payload.Length);
            return;
        }

        output.Advance(headerLength);
        for (int offset = 0; offset < payload.Length;)
        {
            Span<byte> chunk = output.GetSpan(1);
            int length = Math.Min(chunk.Length, payload.Length - offset);
            ClientFraming.Mask(payload.Slice(offset, length), chunk, maskKey, offset);
            output.Advance(length);
            offset += length;
        }
    }

    // ------------------------------------------------------------------ receive

    /// <summary>
    /// Receives one message. Synchronous when the pipe already holds it (a message that arrived while the SDK dispatched
    /// the previous one), so no async state machine runs; otherwise waits in <see cref="ReceiveSlowAsync"/>.
    /// </summary>
    public ValueTask<bool> ReceiveAsync(IBufferWriter<byte> destination, CancellationToken cancellationToken)
    {
        if (_closeReceived)
        {
            return new ValueTask<bool>(false);
        }

        Step step;
        try
        {
            step = _input.TryRead(out ReadResult result) ? Consume(result, destination) : Step.NeedMore;
            while (step == Step.Ping)
            {
                ValueTask pong = AnswerPingAsync(cancellationToken);
                if (!pong.IsCompletedSuccessfully)
                {
                    return ReceiveAfterPongAsync(pong, destination, cancellationToken);
                }

                step = _input.TryRead(out result) ? Consume(result, destination) : Step.NeedMore;
            }
        }
        catch (Exception ex)
        {
            return ValueTask.FromException<bool>(Translate(ex, "receiving", cancellationToken));
        }

        return step == Step.Message ? new ValueTask<bool>(true) : ReceiveSlowAsync(destination, step, cancellationToken);
    }

    /// <summary>5.5.2: a ping is answered with a pong carrying its payload, unless our close already went out.</summary>
    private ValueTask AnswerPingAsync(CancellationToken cancellationToken)
        => _closeSent ? default : SendFrameAsync(FrameOpcode.Pong, _pingPayload.AsMemory(0, _pingLength), cancellationToken);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> ReceiveAfterPongAsync(ValueTask pong, IBufferWriter<byte> destination, CancellationToken cancellationToken)
    {
        try
        {
            await pong.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            throw Translate(ex, "receiving", cancellationToken);
        }

        return await ReceiveSlowAsync(destination, Step.NeedMore, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads until a message, acting on control frames and failing the connection on violations.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> ReceiveSlowAsync(IBufferWriter<byte> destination, Step step, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                switch (step)
                {
                    case Step.NeedMore:
                        step = Consume(await _input.ReadAsync(cancellationToken).ConfigureAwait(false), destination);
                        continue;
                    case Step.Message:
                        return true;
                    case Step.Ping:
                        await AnswerPingAsync(cancellationToken).ConfigureAwait(false);
                        step = Step.NeedMore;
                        continue;
                    case Step.Close:
                        _closeReceived = true;
                        // 5.5.1: a close not yet answered is answered with the same code; the server then closes the TCP connection.
                        await TrySendCloseAsync(_closeStatus ?? WebSocketCloseStatus.Empty, null, cancellationToken).ConfigureAwait(false);
                        return false;
                    case Step.Text:
                        await FailAsync(WebSocketCloseStatus.InvalidMessageType, "binary messages only").ConfigureAwait(false);
                        ThrowHelper.ThrowProtocolViolation("The server sent a text message; the protocol uses binary messages only.");
                        break;
                    case Step.TooLarge:
                        await FailAsync(WebSocketCloseStatus.MessageTooBig, "message too big").ConfigureAwait(false);
                        ThrowHelper.ThrowMessageTooLarge(_maxMessageBytes);
                        break;
                    case Step.BadClosePayload:
                        await FailAsync(_closeFailure, "invalid close frame").ConfigureAwait(false);
                        throw new WebSocketException(WebSocketError.HeaderError, "The server sent a close frame with an invalid code or reason.");
                    default:
                        await FailAsync(WebSocketCloseStatus.ProtocolError, "protocol error").ConfigureAwait(false);
                        throw new WebSocketException(WebSocketError.HeaderError, $"The server violated RFC 6455: {_violation}.");
                }
            }
        }
        catch (Exception ex)
        {
            throw Translate(ex, "receiving", cancellationToken);
        }
    }

    /// <summary>Parses what one read returned and tells the pipe how much was consumed (all of it, unless a frame is cut).</summary>
    private Step Consume(in ReadResult result, IBufferWriter<byte> destination)
    {
        if (result.IsCanceled || _aborted)
        {
            throw new WebSocketException(WebSocketError.InvalidState, "The connection was aborted.");
        }

        ReadOnlySequence<byte> buffer = result.Buffer;
        Step step = Parse(ref buffer, destination);
        if (step != Step.NeedMore)
        {
            _input.AdvanceTo(buffer.Start);
            return step;
        }

        _input.AdvanceTo(buffer.Start, buffer.End);
        if (result.IsCompleted)
        {
            throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "The server closed the connection without completing the close handshake.");
        }

        return Step.NeedMore;
    }

    /// <summary>
    /// Consumes frames from <paramref name="buffer"/> until a message, a control frame to act on, or a violation;
    /// payload bytes go to <paramref name="destination"/> as they arrive, so a large message is never held twice.
    /// </summary>
    private Step Parse(ref ReadOnlySequence<byte> buffer, IBufferWriter<byte> destination)
    {
        while (true)
        {
            if (_inFrame)
            {
                long available = Math.Min(_frameRemaining, buffer.Length);
                if (available > 0)
                {
                    ReadOnlySequence<byte> chunk = buffer.Slice(0, available);
                    if (chunk.IsSingleSegment)
                    {
                        destination.Write(chunk.FirstSpan);
                    }
                    else
                    {
                        foreach (ReadOnlyMemory<byte> segment in chunk)
                        {
                            destination.Write(segment.Span);
                        }
                    }

                    buffer = buffer.Slice(available);
                    _frameRemaining -= available;
                }

                if (_frameRemaining > 0)
                {
                    return Step.NeedMore;
                }

                _inFrame = false;
                if (_frameFin)
                {
                    _messageOpen = false;
                    _messageBytes = 0;
                    return Step.Message;
                }
            }

            HeaderParse parse = ClientFraming.TryParseHeader(buffer, out ServerFrameHeader header);
            if (parse == HeaderParse.Incomplete)
            {
                return Step.NeedMore;
            }

            if (parse != HeaderParse.Valid)
            {
                _violation = Describe(parse);
                return Step.ProtocolError;
            }

            if (header.IsControl)
            {
                long frameLength = header.HeaderLength + header.PayloadLength;
                if (buffer.Length < frameLength)
                {
                    return Step.NeedMore;
                }

                ReadOnlySequence<byte> payload = buffer.Slice(header.HeaderLength, header.PayloadLength);
                buffer = buffer.Slice(frameLength);
                switch (header.Opcode)
                {
                    case FrameOpcode.Ping:
                        _pingLength = (int)payload.Length;
                        payload.CopyTo(_pingPayload);
                        return Step.Ping;
                    case FrameOpcode.Close:
                        if (ClientFraming.ReadClosePayload(payload, out WebSocketCloseStatus status, out string reason) is { } failWith)
                        {
                            _closeFailure = failWith;
                            return Step.BadClosePayload;
                        }

                        _closeStatus = status;
                        _closeDescription = reason;
                        return Step.Close;
                    default:
                        continue; // an unsolicited pong is allowed (5.5.3) and needs nothing
                }
            }

            if (header.Opcode == FrameOpcode.Continuation ? !_messageOpen : _messageOpen)
            {
                _violation = _messageOpen ? "a new message inside a fragmented one (5.4)" : "a continuation frame outside a fragmented message (5.4)";
                return Step.ProtocolError;
            }

            if (header.Opcode == FrameOpcode.Text)
            {
                return Step.Text;
            }

            _messageBytes += header.PayloadLength;
            if (_messageBytes > _maxMessageBytes)
            {
                return Step.TooLarge;
            }

            buffer = buffer.Slice(header.HeaderLength);
            _messageOpen = true;
            _inFrame = true;
            _frameFin = header.Fin;
            _frameRemaining = header.PayloadLength;
        }
    }

    private static string Describe(HeaderParse violation) => violation switch
    {
        HeaderParse.ReservedBits => "a frame with RSV bits set, no extension was negotiated",
        HeaderParse.Masked => "a masked frame (servers must not mask)",
        HeaderParse.ReservedOpcode => "a frame with a reserved opcode",
        HeaderParse.BadControlFrame => "a fragmented or oversized control frame",
        _ => "a frame length with its most significant bit set",
    };

    // ------------------------------------------------------------------ close

    public ValueTask CloseAsync(WebSocketCloseStatus status, string? description, CancellationToken cancellationToken)
    {
        if (status != WebSocketCloseStatus.Empty && !ClientFraming.IsValidCloseCode((int)status))
        {
            throw new ArgumentOutOfRangeException(nameof(status), status, "Not a close code that may be sent.");
        }

        if (status == WebSocketCloseStatus.Empty && !string.IsNullOrEmpty(description))
        {
            throw new ArgumentException("A close without a code carries no description.", nameof(description));
        }

        if (description is not null && System.Text.Encoding.UTF8.GetByteCount(description) > ClientFraming.MaxCloseReasonBytes)
        {
            throw new ArgumentException($"The close description is longer than {ClientFraming.MaxCloseReasonBytes} UTF-8 bytes.", nameof(description));
        }

        return TrySendCloseAsync(status, description, cancellationToken);
    }

    /// <summary>Sends a close frame unless one went out already or the connection is gone.</summary>
    private async ValueTask TrySendCloseAsync(WebSocketCloseStatus status, string? description, CancellationToken cancellationToken)
    {
        if (_closeSent || _aborted)
        {
            return;
        }

        byte[] payload = new byte[ClientFraming.MaxControlPayload];
        int length = ClientFraming.WriteClosePayload(payload, status, description);
        try
        {
            await SendFrameAsync(FrameOpcode.Close, payload.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
        }
        catch (WebSocketException) when (_closeSent || _aborted)
        {
            // Another close won the race, or the connection went away: there is nothing left to close.
        }
    }

    /// <summary>Fails the connection (7.1.7): a best-effort close frame with the reason, then the socket goes.</summary>
    private async ValueTask FailAsync(WebSocketCloseStatus status, string description)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await TrySendCloseAsync(status, description, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
            // The connection is failing anyway.
        }

        Abort();
    }

    public void Abort()
    {
        _aborted = true;
        _connection.Abort();
        try
        {
            // Wakes a receive waiting on the pipe even before the socket's own failure reaches it.
            _input.CancelPendingRead();
        }
        catch (Exception ex) when (ex is ObjectDisposedException or InvalidOperationException)
        {
            // Already disposed: nothing is waiting.
        }
    }

    public async ValueTask DisposeAsync()
    {
        _aborted = true;
        // The send lock is not disposed: it holds no wait handle, and a late release must not throw.
        await _connection.DisposeAsync().ConfigureAwait(false);
    }
}
