using System.Buffers;
using System.Collections.Concurrent;
using System.Net.WebSockets;
using Collab.Client.Internal;
using Collab.Client.Sync;
using Collab.Client.Transport;
using Collab.Protocol.V1;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Collab.Client;

/// <summary>
/// A connection to a Collab server that survives network failures: it reconnects with backoff,
/// resumes its client id, re-subscribes every open <see cref="CollabDocument"/> from the last version
/// it saw and resends unacknowledged edits (docs/PROTOCOL.md).
/// </summary>
/// <remarks>
/// <para>Thread-safety: every public member may be called from any thread. Events (of the client and of
/// its documents) are raised one at a time, in the order the changes happened, on one dispatcher task
/// that is neither the caller's thread nor the receive loop; handlers may call any API, including
/// <see cref="DisposeAsync"/>. A slow handler delays later events, never the connection.</para>
/// <para><see cref="ConnectAsync"/> returns after the first <see cref="Connected"/> event was raised (to no handler, as
/// none can be attached yet): handlers attached then see every later event, in order.</para>
/// </remarks>
public sealed class CollabClient : IAsyncDisposable
{
    // A receive buffer that grew past this (a big snapshot) is dropped after use rather than kept per connection.
    private const int RetainedReceiveBufferBytes = 1024 * 1024;
    private static readonly TimeSpan CloseHandshakeTimeout = TimeSpan.FromSeconds(2);

    private readonly Uri _seedUri;
    private readonly CollabClientOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, IDocumentSync> _documents = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _disposeCts = new();
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _firstConnectedRaised = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ServerLink? _session;
    private long _sessionGeneration;
    private string? _clientId;
    private long _lastClientSeq;
    private long _lastRequestId;
    private CollabConnectionState _state = CollabConnectionState.Connecting;
    private Task _runLoop = Task.CompletedTask;
    private int _disposed;

    private CollabClient(Uri serverUri, CollabClientOptions options)
    {
        _seedUri = serverUri;
        _options = options;
        _logger = options.Logger;
        _clientId = string.IsNullOrEmpty(options.ClientId) ? null : options.ClientId;
        _lastClientSeq = options.LastClientSeq;
        Events = new EventDispatcher(_logger);
    }

    /// <summary>Raised after every successful connection (Welcome received), before documents resume.</summary>
    public event EventHandler<ConnectedEventArgs>? Connected;

    /// <summary>Raised when a connection ends; <see cref="DisconnectedEventArgs.WillReconnect"/> tells whether the client carries on.</summary>
    public event EventHandler<DisconnectedEventArgs>? Disconnected;

    /// <summary>Raised before each reconnect attempt, with the backoff delay about to be waited.</summary>
    public event EventHandler<ReconnectingEventArgs>? Reconnecting;

    /// <summary>Raised for every Error message from the server (document errors are also raised on the document).</summary>
    public event EventHandler<CollabErrorEventArgs>? Error;

    /// <summary>
    /// The client id: issued by the server on the first connection, or the resumed <see cref="CollabClientOptions.ClientId"/>
    /// (when the server recognises it as one it issued to this user; otherwise it issues a fresh one). Empty while
    /// reconnecting after a 4009 (session replaced), until the server issues the next one.
    /// </summary>
    public string ClientId => Volatile.Read(ref _clientId) ?? string.Empty;

    /// <summary>The last client seq used. Persist it with <see cref="ClientId"/> to resume in another process (<see cref="CollabClientOptions.LastClientSeq"/>).</summary>
    public long LastClientSeq => Interlocked.Read(ref _lastClientSeq);

    /// <summary>The connection state.</summary>
    public CollabConnectionState State
    {
        get
        {
            lock (_gate)
            {
                return _state;
            }
        }
    }

    /// <summary>The id of the server node of the current connection, or <see langword="null"/> while disconnected.</summary>
    public string? ServerId => CurrentSession?.Welcome.ServerId;

    internal EventDispatcher Events { get; }

    internal ILogger Logger => _logger;

    internal CollabClientOptions Options => _options;

    internal ServerLink? CurrentSession
    {
        get
        {
            lock (_gate)
            {
                return _session;
            }
        }
    }

    /// <summary>
    /// Connects, says Hello and waits for Welcome (following Redirects). Fails with
    /// <see cref="CollabConnectionException"/> or <see cref="CollabServerException"/> when this first attempt fails:
    /// the reconnect policy applies only once a connection has been established.
    /// </summary>
    /// <param name="serverUri">The WebSocket endpoint, e.g. <c>wss://collab.example.com/ws</c>.</param>
    /// <param name="options">Client settings.</param>
    /// <param name="cancellationToken">Cancels the attempt.</param>
    public static async Task<CollabClient> ConnectAsync(Uri serverUri, CollabClientOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(serverUri);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();

        var client = new CollabClient(serverUri, options);
        try
        {
            ServerLink session = await client.EstablishFollowingRedirectsAsync(serverUri, cancellationToken).ConfigureAwait(false);
            client._runLoop = Task.Run(() => client.RunAsync(session), CancellationToken.None);
            // Handlers attached once this returns see events after the first Connected, never that one late.
            await client._firstConnectedRaised.Task.ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Opens a text document (<c>text-unicode</c>; created empty with that type if it does not exist yet) and returns
    /// once its snapshot arrived. While disconnected, the subscription is made when the connection is back. Fails with
    /// <see cref="CollabServerException"/> when the server refuses (forbidden, invalid id, too many subscriptions),
    /// <see cref="CollabTypeMismatchException"/> when the document exists with another type, and
    /// <see cref="InvalidOperationException"/> when the document is already open on this client.
    /// </summary>
    /// <param name="docId">The document id.</param>
    /// <param name="cancellationToken">Cancels waiting (the document is then closed).</param>
    public async Task<CollabDocument> OpenDocumentAsync(string docId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(docId);
        var document = new CollabDocument(this, docId);
        await OpenAsync(document.Sync, cancellationToken).ConfigureAwait(false);
        return document;
    }

    /// <summary>
    /// Opens a rich-text document (<c>rich-text</c>, Quill Delta; created empty with that type if it does not exist
    /// yet) and returns once its snapshot arrived. Fails as <see cref="OpenDocumentAsync"/> does; a document that
    /// exists as plain text fails with <see cref="CollabTypeMismatchException"/>.
    /// </summary>
    /// <param name="docId">The document id.</param>
    /// <param name="cancellationToken">Cancels waiting (the document is then closed).</param>
    public async Task<CollabRichDocument> OpenRichDocumentAsync(string docId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(docId);
        var document = new CollabRichDocument(this, docId);
        await OpenAsync(document.Sync, cancellationToken).ConfigureAwait(false);
        return document;
    }

    private async Task OpenAsync(IDocumentSync document, CancellationToken cancellationToken)
    {
        string docId = document.DocId;
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ServerLink? session;
        long generation;
        lock (_gate)
        {
            if (_state == CollabConnectionState.Closed)
            {
                ThrowHelper.ThrowConnection("The client is closed.");
            }

            if (!_documents.TryAdd(docId, document))
            {
                throw new InvalidOperationException($"Document '{docId}' is already open on this client.");
            }

            session = _session;
            generation = _sessionGeneration;
        }

        if (session is not null)
        {
            document.OnSessionStarted(session, generation);
        }

        try
        {
            await document.WhenOpened.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await document.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Closes the connection (close code 1000) and every open document. Pending local edits that were not acknowledged are lost.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        ServerLink? session;
        lock (_gate)
        {
            session = _session;
            _state = CollabConnectionState.Closed;
        }

        if (session is not null)
        {
            session.ClosedByClient = true;
            await session.CloseAsync(WebSocketCloseStatus.NormalClosure, "client closing").ConfigureAwait(false);
            try
            {
                // Let the server answer the close so it sees a clean shutdown, but never hang on it.
                await _runLoop.WaitAsync(CloseHandshakeTimeout).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                session.Transport.Abort();
            }
        }

        await _disposeCts.CancelAsync().ConfigureAwait(false);
        await _runLoop.ConfigureAwait(false);

        foreach (IDocumentSync document in _documents.Values)
        {
            document.OnClientClosed();
        }

        _documents.Clear();
        await Events.CompleteAsync().ConfigureAwait(false);
        _disposeCts.Dispose();
    }

    internal long NextClientSeq() => Interlocked.Increment(ref _lastClientSeq);

    internal ulong NextRequestId() => (ulong)Interlocked.Increment(ref _lastRequestId);

    internal void RemoveDocument(IDocumentSync document) => _documents.TryRemove(new KeyValuePair<string, IDocumentSync>(document.DocId, document));

    internal void RaiseError(CollabErrorEventArgs args) => Events.Post(() => Error?.Invoke(this, args));

    // ------------------------------------------------------------------ connection life cycle

    private async Task RunAsync(ServerLink first)
    {
        ServerLink? session = first;
        while (session is not null)
        {
            DisconnectInfo info = await RunSessionAsync(session).ConfigureAwait(false);
            bool disposed = Volatile.Read(ref _disposed) != 0;
            bool willReconnect = !disposed && info.Reason is not (DisconnectReason.ClientClosed or DisconnectReason.Rejected) && _options.Reconnect.AllowsAttempt(1);
            if (disposed && info.Reason != DisconnectReason.ClientClosed)
            {
                info = info with { Reason = DisconnectReason.ClientClosed };
            }

            lock (_gate)
            {
                _state = willReconnect ? CollabConnectionState.Reconnecting : CollabConnectionState.Closed;
                if (info.Reason == DisconnectReason.SessionReplaced)
                {
                    // Another connection owns the id now: resuming it would only take it back (and be closed again).
                    // The next Hello asks for a fresh id; the documents move their pending edits to it.
                    Volatile.Write(ref _clientId, null);
                }
            }

            Log.Disconnected(_logger, info.Reason, info.CloseStatus, info.Description, info.Exception);
            var disconnected = new DisconnectedEventArgs(info.Reason, info.Description, (int?)info.CloseStatus, info.Exception, willReconnect);
            Events.Post(() => Disconnected?.Invoke(this, disconnected));
            if (!willReconnect)
            {
                break;
            }

            session = await ReconnectAsync(info).ConfigureAwait(false);
        }

        if (Volatile.Read(ref _disposed) == 0)
        {
            // Given up (rejected or out of attempts): documents can never sync again.
            foreach (IDocumentSync document in _documents.Values)
            {
                document.OnClientClosed();
            }
        }
    }

    private async Task<ServerLink?> ReconnectAsync(DisconnectInfo lost)
    {
        RedirectTarget? redirect = lost.Redirect;
        int redirectsInARow = 0;
        for (int attempt = 1; ; attempt++)
        {
            if (!_options.Reconnect.AllowsAttempt(attempt))
            {
                GiveUp(DisconnectReason.RetriesExhausted, $"No connection after {attempt - 1} attempts.", null);
                return null;
            }

            Uri uri;
            TimeSpan delay;
            if (redirect is not null)
            {
                // A draining server redirects all its clients at once: spread them over one MinDelay.
                uri = redirect.Uri;
                delay = redirect.RetryAfter + (_options.Reconnect.MinDelay * Random.Shared.NextDouble());
            }
            else
            {
                // After a redirect target failed, the configured address is the safe way back in.
                uri = _seedUri;
                delay = attempt == 1 && lost.Reason == DisconnectReason.AuthExpired ? TimeSpan.Zero : _options.Reconnect.GetDelay(attempt);
            }

            Log.Reconnecting(_logger, attempt, uri, delay);
            var reconnecting = new ReconnectingEventArgs(attempt, delay, uri);
            Events.Post(() => Reconnecting?.Invoke(this, reconnecting));
            try
            {
                await Task.Delay(delay, _disposeCts.Token).ConfigureAwait(false);
                return await EstablishAsync(uri, _disposeCts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_disposeCts.IsCancellationRequested)
            {
                return null;
            }
            catch (HandshakeRedirectException ex)
            {
                redirect = ++redirectsInARow <= _options.MaxRedirects ? ex.Target : null;
            }
            catch (Exception ex) when (IsFatal(ex))
            {
                Log.ConnectFailed(_logger, uri, ex);
                GiveUp(DisconnectReason.Rejected, ex.Message, ex);
                return null;
            }
            catch (Exception ex)
            {
                Log.ConnectFailed(_logger, uri, ex);
                redirect = null;
                redirectsInARow = 0;
            }
        }
    }

    private void GiveUp(DisconnectReason reason, string description, Exception? exception)
    {
        lock (_gate)
        {
            _state = CollabConnectionState.Closed;
        }

        var args = new DisconnectedEventArgs(reason, description, (int?)(exception as CollabConnectionException)?.CloseStatus, exception, willReconnect: false);
        Events.Post(() => Disconnected?.Invoke(this, args));
    }

    /// <summary>Failures that another attempt cannot fix: bad credentials, no rights, an incompatible server.</summary>
    private static bool IsFatal(Exception exception) => exception switch
    {
        CollabServerException server => server.Code is CollabErrorCode.Unauthorized or CollabErrorCode.Forbidden or CollabErrorCode.ProtocolVersion
            or CollabErrorCode.BadMessage or CollabErrorCode.NotHello or CollabErrorCode.UnknownMessage,
        CollabConnectionException { HttpStatusCode: { } status } => status is >= 400 and < 500 and not 408 and not 429,
        CollabConnectionException { CloseStatus: { } close } => IsFatalClose(close),
        _ => false,
    };

    private static bool IsFatalClose(WebSocketCloseStatus status) => status == WebSocketCloseStatus.PolicyViolation || (int)status == CloseCodes.Forbidden;

    private async Task<ServerLink> EstablishFollowingRedirectsAsync(Uri uri, CancellationToken cancellationToken)
    {
        for (int redirects = 0; ; redirects++)
        {
            try
            {
                return await EstablishAsync(uri, cancellationToken).ConfigureAwait(false);
            }
            catch (HandshakeRedirectException ex) when (redirects < _options.MaxRedirects)
            {
                await Task.Delay(ex.Target.RetryAfter, cancellationToken).ConfigureAwait(false);
                uri = ex.Target.Uri;
            }
            catch (HandshakeRedirectException ex)
            {
                ThrowHelper.ThrowConnection($"More than {_options.MaxRedirects} redirects in a row.", ex);
            }
        }
    }

    /// <summary>One attempt: token, transport, Hello, Welcome.</summary>
    private async Task<ServerLink> EstablishAsync(Uri uri, CancellationToken cancellationToken)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposeCts.Token);
        attempt.CancelAfter(_options.ConnectTimeout);
        IClientTransport? transport = null;
        try
        {
            string? token = _options.AccessTokenProvider is { } provider ? await provider(attempt.Token).ConfigureAwait(false) : null;
            try
            {
                transport = await _options.TransportFactory.ConnectAsync(
                    new TransportConnectRequest(uri, token, _options.TokenDelivery, _options.SubProtocol, _options.MaxReceiveMessageBytes),
                    attempt.Token).ConfigureAwait(false);
            }
            catch (TransportConnectException ex)
            {
                ThrowHelper.ThrowConnection(ex.Message, ex, httpStatusCode: ex.HttpStatusCode);
            }

            var hello = new ClientMessage
            {
                Hello = new Hello
                {
                    ProtocolVersion = (uint)ProtocolVersion.Current,
                    ClientId = Volatile.Read(ref _clientId) ?? string.Empty,
                    ClientName = _options.ClientName,
                },
            };
            await ServerLink.SendAsync(transport, hello, attempt.Token).ConfigureAwait(false);

            var buffer = new ArrayBufferWriter<byte>(4096);
            if (!await transport.ReceiveAsync(buffer, attempt.Token).ConfigureAwait(false))
            {
                ThrowHelper.ThrowConnection(
                    $"The server closed the connection during the handshake: {transport.CloseStatusDescription}",
                    closeStatus: transport.CloseStatus);
            }

            ServerMessage reply = ServerMessage.Parser.ParseFrom(buffer.WrittenSpan);
            switch (reply.BodyCase)
            {
                case ServerMessage.BodyOneofCase.Welcome:
                    if (reply.Welcome.ProtocolVersion != (uint)ProtocolVersion.Current)
                    {
                        ThrowHelper.ThrowConnection($"The server speaks protocol version {reply.Welcome.ProtocolVersion}, this client {(uint)ProtocolVersion.Current}.");
                    }

                    var session = new ServerLink(transport, uri, reply.Welcome, _options);
                    transport = null;
                    return session;
                case ServerMessage.BodyOneofCase.Redirect:
                    RedirectTarget target = ResolveRedirect(uri, reply.Redirect);
                    Log.Redirected(_logger, target.Uri, reply.Redirect.RetryAfterMs, target.Reason);
                    throw new HandshakeRedirectException(target);
                case ServerMessage.BodyOneofCase.Error:
                    Log.ServerError(_logger, reply.Error.Code, reply.Error.Retryable, reply.Error.DocId, reply.Error.ClientSeq, reply.Error.Message);
                    ThrowHelper.ThrowServer(reply.Error);
                    break;
                default:
                    ThrowHelper.ThrowConnection($"Expected Welcome, got {reply.BodyCase}.");
                    break;
            }

            throw new InvalidOperationException("Unreachable.");
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested && !_disposeCts.IsCancellationRequested)
        {
            throw new CollabConnectionException($"No Welcome from {uri} within {_options.ConnectTimeout}.", ex);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new CollabConnectionException("The server's handshake reply does not decode.", ex);
        }
        catch (WebSocketException ex)
        {
            throw new CollabConnectionException($"Could not connect to {uri}: {ex.Message}", ex);
        }
        finally
        {
            if (transport is not null)
            {
                transport.Abort();
                await transport.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    internal static RedirectTarget ResolveRedirect(Uri current, Redirect redirect)
    {
        Uri target = current;
        if (redirect.Url.Length > 0 && Uri.TryCreate(current, redirect.Url, out Uri? resolved) && resolved.Scheme is "ws" or "wss")
        {
            target = resolved;
        }

        return new RedirectTarget(target, TimeSpan.FromMilliseconds(redirect.RetryAfterMs), redirect.Reason);
    }

    /// <summary>Runs one established connection until it ends and says why it ended.</summary>
    private async Task<DisconnectInfo> RunSessionAsync(ServerLink session)
    {
        List<IDocumentSync> documents;
        long generation;
        bool disposed;
        lock (_gate)
        {
            disposed = _state == CollabConnectionState.Closed;
            if (!disposed)
            {
                _session = session;
                _sessionGeneration++;
                _state = CollabConnectionState.Connected;
                Volatile.Write(ref _clientId, session.Welcome.ClientId);
            }

            generation = _sessionGeneration;
            documents = [.. _documents.Values];
        }

        if (disposed)
        {
            // Disposed while this connection was being made: close it without ever using it.
            session.ClosedByClient = true;
            await session.CloseAsync(WebSocketCloseStatus.NormalClosure, "client closing").ConfigureAwait(false);
            await session.EndAsync().ConfigureAwait(false);
            return new DisconnectInfo(DisconnectReason.ClientClosed, "Closed by the application.", null, null, null);
        }

        Log.Connected(_logger, session.Uri, session.Welcome.ClientId, session.Welcome.ServerId, session.Welcome.Resumed);
        var connected = new ConnectedEventArgs(session.Welcome.ClientId, session.Welcome.ServerId, session.Welcome.Resumed, session.Uri);
        Events.Post(() =>
        {
            try
            {
                Connected?.Invoke(this, connected);
            }
            finally
            {
                _firstConnectedRaised.TrySetResult();
            }
        });
        session.Start();
        foreach (IDocumentSync document in documents)
        {
            document.OnSessionStarted(session, generation);
        }

        bool closedByServer = false;
        Exception? failure = null;
        var buffer = new ArrayBufferWriter<byte>(16 * 1024);
        try
        {
            while (true)
            {
                if (!await session.Transport.ReceiveAsync(buffer, session.EndedToken).ConfigureAwait(false))
                {
                    closedByServer = true;
                    break;
                }

                session.MarkReceived();
                ServerMessage message;
                try
                {
                    message = ServerMessage.Parser.ParseFrom(buffer.WrittenSpan);
                }
                catch (InvalidProtocolBufferException ex)
                {
                    Log.BadServerMessage(_logger, ex);
                    failure = ex;
                    break;
                }
                finally
                {
                    if (buffer.Capacity > RetainedReceiveBufferBytes)
                    {
                        buffer = new ArrayBufferWriter<byte>(16 * 1024);
                    }
                    else
                    {
                        buffer.ResetWrittenCount();
                    }
                }

                Dispatch(session, message);
            }
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        lock (_gate)
        {
            _session = null;
        }

        foreach (IDocumentSync document in _documents.Values)
        {
            document.OnSessionEnded(session);
        }

        if (failure is InvalidProtocolBufferException)
        {
            await session.CloseAsync(WebSocketCloseStatus.InvalidPayloadData, "undecodable message").ConfigureAwait(false);
        }

        WebSocketCloseStatus? closeStatus = session.Transport.CloseStatus;
        string? closeDescription = session.Transport.CloseStatusDescription;
        await session.EndAsync().ConfigureAwait(false);

        if (session.ClosedByClient)
        {
            return new DisconnectInfo(DisconnectReason.ClientClosed, "Closed by the application.", closeStatus, null, null);
        }

        if (session.Redirect is { } redirect)
        {
            return new DisconnectInfo(DisconnectReason.Redirected, redirect.Reason, closeStatus, null, redirect);
        }

        if (session.KeepAliveExpired)
        {
            return new DisconnectInfo(DisconnectReason.KeepAliveTimeout, "No message from the server within the keep-alive window.", null, null, null);
        }

        if (closedByServer)
        {
            DisconnectReason reason = closeStatus switch
            {
                { } s when (int)s == CloseCodes.AuthExpired => DisconnectReason.AuthExpired,
                { } s when (int)s == CloseCodes.SessionReplaced => DisconnectReason.SessionReplaced,
                { } s when IsFatalClose(s) => DisconnectReason.Rejected,
                _ => DisconnectReason.ServerClosed,
            };
            return new DisconnectInfo(reason, closeDescription, closeStatus, null, null);
        }

        return new DisconnectInfo(DisconnectReason.TransportError, failure?.Message, closeStatus, failure, null);
    }

    private void Dispatch(ServerLink session, ServerMessage message)
    {
        switch (message.BodyCase)
        {
            case ServerMessage.BodyOneofCase.Ops:
                FindDocument(message.Ops.DocId)?.OnOps(session, message.RequestId, message.Ops);
                break;
            case ServerMessage.BodyOneofCase.Ack:
                FindDocument(message.Ack.DocId)?.OnAck(session, message.Ack);
                break;
            case ServerMessage.BodyOneofCase.Snapshot:
                FindDocument(message.Snapshot.DocId)?.OnSnapshot(session, message.RequestId, message.Snapshot);
                break;
            case ServerMessage.BodyOneofCase.Subscribed:
                FindDocument(message.Subscribed.DocId)?.OnSubscribed(session, message.RequestId, message.Subscribed);
                break;
            case ServerMessage.BodyOneofCase.Presence:
                FindDocument(message.Presence.DocId)?.OnPresence(session, message.Presence);
                break;
            case ServerMessage.BodyOneofCase.Error:
                OnError(session, message.RequestId, message.Error);
                break;
            case ServerMessage.BodyOneofCase.Redirect:
                session.Redirect = ResolveRedirect(session.Uri, message.Redirect);
                Log.Redirected(_logger, session.Redirect.Uri, message.Redirect.RetryAfterMs, session.Redirect.Reason);
                session.CloseAsync(WebSocketCloseStatus.NormalClosure, "redirected").Forget(_logger, "close on redirect");
                break;
            case ServerMessage.BodyOneofCase.AuthExpiring:
                ReauthenticateAsync(session).Forget(_logger, "reauthenticate");
                break;
            case ServerMessage.BodyOneofCase.Pong:
            case ServerMessage.BodyOneofCase.Unsubscribed:
                // Pong only proves liveness (MarkReceived); Unsubscribed needs no action: the document is already gone.
                break;
            default:
                Log.Unexpected(_logger, message.BodyCase.ToString(), string.Empty);
                break;
        }
    }

    private IDocumentSync? FindDocument(string docId) => _documents.TryGetValue(docId, out IDocumentSync? document) ? document : null;

    private void OnError(ServerLink session, ulong requestId, Error error)
    {
        Log.ServerError(_logger, error.Code, error.Retryable, error.DocId, error.ClientSeq, error.Message);
        var args = new CollabErrorEventArgs(ErrorCodes.ToPublic(error.Code), error.Message, error.Retryable, error.DocId.Length == 0 ? null : error.DocId, (long)error.ClientSeq);
        RaiseError(args);
        if (error.DocId.Length > 0)
        {
            FindDocument(error.DocId)?.OnError(session, requestId, error, args);
        }
    }

    private async Task ReauthenticateAsync(ServerLink session)
    {
        if (_options.AccessTokenProvider is not { } provider)
        {
            return;
        }

        try
        {
            string? token = await provider(session.EndedToken).ConfigureAwait(false);
            if (!string.IsNullOrEmpty(token))
            {
                session.TrySend(new ClientMessage { Reauth = new Reauthenticate { Token = token } });
            }
        }
        catch (OperationCanceledException) when (session.EndedToken.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            Log.TokenProviderFailed(_logger, ex);
        }
    }

    private readonly record struct DisconnectInfo(
        DisconnectReason Reason,
        string? Description,
        WebSocketCloseStatus? CloseStatus,
        Exception? Exception,
        RedirectTarget? Redirect);

    private sealed class HandshakeRedirectException(RedirectTarget target) : Exception("Redirected during the handshake.")
    {
        public RedirectTarget Target { get; } = target;
    }
}

/// <summary>
/// WebSocket close codes of the Collab protocol beyond RFC 6455's (docs/PROTOCOL.md section 10), as
/// <see cref="DisconnectedEventArgs.CloseStatus"/> reports them. The values come from the protocol's one definition
/// (<c>enum CloseCode</c> in collab.proto).
/// </summary>
public static class CloseCodes
{
    /// <summary>The access token expired; reconnect with a fresh one.</summary>
    public const int AuthExpired = (int)CloseCode.AuthExpired;

    /// <summary>The token is valid but grants no access; do not reconnect.</summary>
    public const int Forbidden = (int)CloseCode.Forbidden;

    /// <summary>The client sent too much; reconnect after a backoff.</summary>
    public const int RateLimited = (int)CloseCode.RateLimited;

    /// <summary>Another connection took this client id's session over; reconnect with a fresh client id.</summary>
    public const int SessionReplaced = (int)CloseCode.SessionReplaced;
}
