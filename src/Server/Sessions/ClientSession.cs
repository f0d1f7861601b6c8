using System.Buffers;
using System.Diagnostics;
using Collab.Engine;
using Collab.Engine.Sequencing;
using Collab.Protocol;
using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Storage;
using Collab.Server.Transport;
using Google.Protobuf;

namespace Collab.Server.Sessions;

/// <summary>
/// The protocol state of one WebSocket connection: Hello first, then any number of document
/// subscriptions, submits and presence updates. Messages are handled one at a time in arrival order
/// (the transport reads the next one when the returned task completes), but a submit does not hold
/// up the connection while it commits: its ack comes from the document hub, in version order.
/// Bad input gets an error with a code; the connection is closed only where the stream cannot be trusted any more
/// (docs/PROTOCOL.md section 10: a text message 1003, an undecodable envelope 1007, no Hello or a wrong protocol
/// version 1002) or the abuse persists (1008).
/// Security: the session acts for a <see cref="SessionPrincipal"/> (replaced by Reauthenticate), checks
/// its document rights on every subscribe and submit, spends rate budgets per connection and per user,
/// and is closed with 4001 when its token expires, 4001/4003 when revoked, 4008 when it persists over a limit.
/// </summary>
internal sealed class ClientSession : IWebSocketSession, ISecuredSession
{
    /// <summary>Protocol errors tolerated on one connection before it is closed as abusive.</summary>
    private const int MaxProtocolErrors = 32;

    private readonly IWebSocketConnection _connection;
    private readonly SessionServices _services;
    private readonly object _gate = new();
    private readonly SecurityServices _security;
    private readonly UserEntry? _user;
    private volatile SessionPrincipal _principal;
    private string? _clientId;
    private int _protocolErrors;
    private volatile bool _closed;

    // The deadline of the subscribe in progress (messages are handled one at a time), cancelled by OnClosed; guarded by _gate.
    private CancellationTokenSource? _opening;

    // Mutable structs, changed in place (so not readonly). The subscriptions are guarded by _gate; the limiter's
    // message budgets belong to the message loop and its violation budget is guarded by _gate.
    private SubscriptionSet _subscriptions;
    private SessionLimiter _limiter;

    // Submits waiting for their outcome, and the read loop's wait for a free slot when at the limit (both guarded by
    // _inFlightGate: taken twice per submit, never contended for long).
    private readonly Lock _inFlightGate = new();
    private int _submitsInFlight;
    private TaskCompletionSource? _submitSlot;

    // Token expiry (guarded by _gate): the session is closed at _authDeadline unless a Reauthenticate moves it.
    private DateTimeOffset _authDeadline = DateTimeOffset.MaxValue;
    private bool _expiryWarned;
    private long _nextAuthCheck = long.MaxValue;

    public ClientSession(IWebSocketConnection connection, SessionServices services, SessionPrincipal principal)
    {
        _connection = connection;
        _services = services;
        _security = services.Security;
        _principal = principal;
        if (!principal.IsAnonymous)
        {
            SetAuthDeadline(principal);
            _user = _security.Sessions.Register(this);
        }

        _limiter = new SessionLimiter(_security.Rates, _security.Time.GetTimestamp());
    }

    public string ClientId => _clientId ?? throw new InvalidOperationException("No Hello yet.");

    /// <summary>The authenticated user (recorded as each op's author), or null on an anonymous server.</summary>
    public string? UserId => _principal.UserId;

    /// <inheritdoc />
    public SessionPrincipal Principal => _principal;

    public bool IsClosed => _closed;

    public long ConnectionId => _connection.Id;

    /// <inheritdoc />
    public long NextAuthCheckUtcTicks => Volatile.Read(ref _nextAuthCheck);

    // ------------------------------------------------------------------ transport seam

    public ValueTask OnMessageAsync(ReadOnlySequence<byte> payload, bool isText)
    {
        if (isText)
        {
            // Not this protocol at all (a JSON client, a misrouted browser socket): nothing it sends next can be read.
            CloseFor(CloseCode.UnsupportedData, "text messages are not part of the protocol; send binary protobuf");
            return ValueTask.CompletedTask;
        }

        // The hot message, a submit to a subscribed document, is read in place (SubmitView); everything else, and any
        // submit the view does not take, goes through the generated parser.
        Subscription? fastTarget = null;
        SubmitView fast = default;
        if (_clientId is not null && payload.IsSingleSegment && SubmitView.TryRead(payload.FirstSpan, out fast))
        {
            fastTarget = FindSubmitTarget(fast.DocId);
        }

        ClientMessage? message = null;
        if (fastTarget is null)
        {
            try
            {
                message = ClientMessage.Parser.ParseFrom(payload);
            }
            catch (InvalidProtocolBufferException ex)
            {
                // An envelope that does not decode says the client's encoder is broken: answer why, then close (1007).
                SendError(ErrorCode.BadMessage, "The message is not a valid ClientMessage: " + ex.Message, 0);
                CloseFor(CloseCode.InvalidPayload, "undecodable message");
                return ValueTask.CompletedTask;
            }
        }

        ClientMessage.BodyOneofCase kind = message?.BodyCase ?? ClientMessage.BodyOneofCase.Submit;
        ulong requestId = message?.RequestId ?? fast.RequestId;
        ReceivedCounter(kind).Inc();
        if (_clientId is null && kind != ClientMessage.BodyOneofCase.Hello)
        {
            SendError(ErrorCode.NotHello, "The first message on a connection must be Hello.", requestId);
            CloseFor(CloseCode.ProtocolError, "no Hello");
            return ValueTask.CompletedTask;
        }

        if (_limiter.TryMessage(_security.Rates, _security.Time) is { } refused)
        {
            OverLimit(refused, ErrorCode.RateLimited, $"More than {_security.Limits.MessagesPerSecond} messages per second; slow down and retry.", requestId);
            return ValueTask.CompletedTask;
        }

        try
        {
            if (message is null)
            {
                OnSubmit(fastTarget!.DocId, fastTarget, fast.ClientSeq, fast.BaseVersion, fast.Op, requestId);
                return WaitForSubmitSlot();
            }

            switch (kind)
            {
                case ClientMessage.BodyOneofCase.Hello:
                    return OnHelloAsync(message.Hello, requestId);
                case ClientMessage.BodyOneofCase.Subscribe:
                    return OnSubscribeAsync(message.Subscribe, requestId);
                case ClientMessage.BodyOneofCase.Unsubscribe:
                    return OnUnsubscribeAsync(message.Unsubscribe, requestId);
                case ClientMessage.BodyOneofCase.Submit:
                    OnSubmit(message.Submit.DocId, Find(message.Submit.DocId), message.Submit.ClientSeq, message.Submit.BaseVersion, message.Submit.Op.Span, requestId);
                    return WaitForSubmitSlot();
                case ClientMessage.BodyOneofCase.Presence:
                    return OnPresenceAsync(message.Presence, requestId);
                case ClientMessage.BodyOneofCase.Ping:
                    SendOwned(ServerFrames.Build(new ServerMessage { RequestId = requestId, Pong = new Pong { Nonce = message.Ping.Nonce } }));
                    return ValueTask.CompletedTask;
                case ClientMessage.BodyOneofCase.FetchOps:
                    return OnFetchOpsAsync(message.FetchOps, requestId);
                case ClientMessage.BodyOneofCase.Reauth:
                    return OnReauthenticateAsync(message.Reauth, requestId);
                default:
                    return ProtocolError(ErrorCode.UnknownMessage, "Unknown message kind (a newer protocol?); it was ignored.", requestId);
            }
        }
        catch (Exception ex)
        {
            _services.Log.MessageFailed(_connection.Id, ex);
            SendError(ErrorCode.Internal, "The server failed to handle the message.", requestId);
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>
    /// The subscription a submit read in place names, or null (not subscribed, or not a valid doc id: the parser's path
    /// answers those). Doc ids are ASCII (DocumentId.Rule), so the bytes convert to chars one to one.
    /// </summary>
    private Subscription? FindSubmitTarget(ReadOnlySpan<byte> docId)
    {
        if (docId.IsEmpty || docId.Length > DocumentId.MaxLength || !System.Text.Ascii.IsValid(docId))
        {
            return null;
        }

        Span<char> chars = stackalloc char[docId.Length];
        System.Text.Ascii.ToUtf16(docId, chars, out _);
        lock (_gate)
        {
            return _subscriptions.TryGetValue(chars, out Subscription? subscription) ? subscription : null;
        }
    }

    public void OnClosed(ConnectionEndReason reason)
    {
        List<Subscription> subscriptions;
        CancellationTokenSource? opening;
        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            subscriptions = new List<Subscription>(_subscriptions.Count);
            _subscriptions.CopyTo(subscriptions);
            _subscriptions.Clear();
            opening = _opening;
            _opening = null;
        }

        if (opening is not null)
        {
            try
            {
                // Callbacks on the thread pool, not on the connection's end path.
                opening.CancelAsync().Forget(_services.Log.Logger, "cancel document open on close");
            }
            catch (ObjectDisposedException)
            {
                // The subscribe ended meanwhile.
            }
        }

        if (_clientId is not null)
        {
            SessionMetrics.Sessions.Dec();
            _services.LiveClients.Release(_clientId, this);
        }

        // A read loop waiting for a submit slot must not outlive the connection (its submits may never complete here).
        WakeSubmitSlotWaiter(submitCompleted: false);

        if (_user is not null)
        {
            _security.Sessions.Unregister(this, _user);
        }

        foreach (Subscription sub in subscriptions)
        {
            DetachAndReleaseAsync(sub).Forget(_services.Log.Logger, "detach on close");
        }
    }

    /// <summary>Ends the subscribe's hold on <see cref="_opening"/> (disposed before its deadline source is).</summary>
    private readonly struct OpeningScope(ClientSession session) : IDisposable
    {
        public void Dispose()
        {
            lock (session._gate)
            {
                session._opening = null;
            }
        }
    }

    // ------------------------------------------------------------------ handlers

    private async ValueTask OnHelloAsync(Hello hello, ulong requestId)
    {
        if (_clientId is not null)
        {
            SendError(ErrorCode.BadMessage, "Hello was already received on this connection.", requestId);
            return;
        }

        if (hello.ProtocolVersion != (uint)ProtocolVersion.Current)
        {
            SendError(ErrorCode.ProtocolVersion, $"Protocol version {hello.ProtocolVersion} is not supported; this server speaks {(int)ProtocolVersion.Current}.", requestId);
            CloseFor(CloseCode.ProtocolError, "unsupported protocol version");
            return;
        }

        bool resumed = hello.ClientId.Length > 0;
        if (resumed && !ClientIdRule.IsValid(hello.ClientId))
        {
            SendError(ErrorCode.BadMessage, "client_id must be 1-64 characters of [A-Za-z0-9_-].", requestId);
            Abort("invalid client id");
            return;
        }

        ClientIdIssuer issuer = _services.ClientIds;
        if (!issuer.IsReady)
        {
            try
            {
                await issuer.EnsureReadyAsync(_connection.Closed).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_connection.Closed.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // The key lives in the op store; without it no id can be issued or recognised. The client retries.
                _services.Documents.Log.DocumentLoadFailed(ClientIdIssuer.SecretName, ex);
                SendError(ErrorCode.Unavailable, "The server cannot issue client ids right now (storage unreachable); reconnect later.", requestId);
                _connection.Close(CloseCode.TryAgainLater, "storage unavailable");
                return;
            }
        }

        SessionPrincipal principal = _principal;
        if (resumed && !issuer.IsIssued(hello.ClientId, principal.UserId))
        {
            // Not issued by this deployment to this user (made up, another user's, or from before ids were signed):
            // resuming it would let this client advance that id's dedupe state. A fresh id resumes nothing.
            SecurityMetrics.ClientIdRebound.Inc();
            resumed = false;
        }

        _clientId = resumed ? hello.ClientId : issuer.Issue(principal.UserId);
        SessionMetrics.Sessions.Inc();
        _services.Log.Hello(_connection.Id, _clientId, resumed);
        _services.LiveClients.Claim(_clientId, this, resumed);
        var welcome = new Welcome
        {
            ProtocolVersion = (uint)ProtocolVersion.Current,
            ServerId = _services.NodeId,
            ClientId = _clientId,
            Resumed = resumed,
        };
        _services.Limits.AnnounceIn(welcome);
        SendOwned(ServerFrames.Build(new ServerMessage { RequestId = requestId, Welcome = welcome }));

        if (!principal.IsAnonymous)
        {
            // A token that was already close to expiry at the handshake gets its warning right after Welcome.
            OnAuthDeadline(_security.Time.GetUtcNow());
        }
    }

    /// <summary>Another connection said Hello with this session's client id and took the session over (docs/PROTOCOL.md §10, 4009).</summary>
    internal void OnReplaced() => _connection.Close(CloseCode.SessionReplaced, "session replaced by a newer connection with this client id");

    private async ValueTask OnSubscribeAsync(Subscribe subscribe, ulong requestId)
    {
        string docId = subscribe.DocId;
        if (!DocumentId.IsValid(docId))
        {
            await ProtocolError(ErrorCode.InvalidDocId, "doc_id must be " + DocumentId.Rule + ".", requestId).ConfigureAwait(false);
            return;
        }

        if (subscribe.FromVersion < 0 && !subscribe.Snapshot)
        {
            await ProtocolError(ErrorCode.BadMessage, "from_version must not be negative.", requestId, docId).ConfigureAwait(false);
            return;
        }

        // P6: the type to create the document with ("" = text-unicode), and the type it must have if it exists ("" = any).
        DocumentKind? createAs = _services.Documents.Kinds.Find(subscribe.Type);
        if (createAs is null)
        {
            SendError(ErrorCode.BadMessage, $"Unknown document type '{subscribe.Type}'; this server hosts {DocumentTypes.TextUnicode} and {DocumentTypes.RichText}.", requestId, docId);
            return;
        }

        if (!_principal.Rights.CanRead(docId))
        {
            SecurityMetrics.Forbidden.WithLabels("subscribe").Inc();
            SendError(ErrorCode.Forbidden, $"No right to read document '{docId}'.", requestId, docId);
            return;
        }

        Subscription? previous;
        bool full;
        lock (_gate)
        {
            _subscriptions.TryGetValue(docId, out previous);
            full = previous is null && _subscriptions.Count >= _services.Options.MaxSubscriptionsPerConnection;
        }

        if (full)
        {
            OverLimit(LimitKind.Subscriptions, ErrorCode.TooManySubscriptions, $"A connection may subscribe to at most {_services.Options.MaxSubscriptionsPerConnection} documents.", requestId, docId);
            return;
        }

        if (previous is not null)
        {
            // Subscribing again resynchronises: the old stream ends before the new one starts.
            lock (_gate)
            {
                _subscriptions.Remove(docId, out _);
            }

            await DetachAndReleaseAsync(previous).ConfigureAwait(false);
        }

        // Bounded: with the store (or, in a cluster, the owner) unreachable the client gets a retryable answer, not silence.
        // Cancelled by OnClosed rather than linked to the connection's Closed token: a registration on that token leaves
        // its source, a registrations table and a node on the connection for the rest of its life (192 B per idle
        // connection, docs/PERFORMANCE.md "Idle memory per connection").
        using var deadline = new CancellationTokenSource(_services.Options.OpenTimeout);
        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            _opening = deadline;
        }

        using var opening = new OpeningScope(this);
        DocumentHub hub;
        try
        {
            hub = await _services.Documents.AcquireAsync(docId, deadline.Token, createAs).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_closed)
        {
            return;
        }
        catch (OperationCanceledException)
        {
            SessionMetrics.OpenTimeouts.Inc();
            SendError(ErrorCode.Unavailable, $"Document '{docId}' could not be opened within {_services.Options.OpenTimeout.TotalSeconds:0.#} s (storage unreachable?); retry.", requestId, docId);
            return;
        }
        catch (DocumentDeletedException)
        {
            SendError(ErrorCode.DocDeleted, $"Document '{docId}' was deleted.", requestId, docId);
            return;
        }
        catch (UnknownDocumentTypeException ex)
        {
            SendError(ErrorCode.TypeMismatch, ex.Message, requestId, docId);
            return;
        }
        catch (Exception ex)
        {
            _services.Documents.Log.DocumentLoadFailed(docId, ex);
            SendError(ErrorCode.Unavailable, $"Document '{docId}' could not be opened right now; retry.", requestId, docId);
            return;
        }

        if (subscribe.Type.Length > 0 && !ReferenceEquals(hub.Kind, createAs))
        {
            hub.ReleaseRef();
            SendError(ErrorCode.TypeMismatch, $"Document '{docId}' is a {hub.Kind.Name} document, not {subscribe.Type}.", requestId, docId);
            return;
        }

        var subscription = new Subscription(this, hub);
        bool attached;
        try
        {
            attached = await hub.SubscribeAsync(subscription, subscribe.Snapshot ? -1 : subscribe.FromVersion, subscribe.Snapshot, requestId, deadline.Token).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            attached = false;
            SendError(ErrorCode.Unavailable, $"Document '{docId}' was closing; subscribe again.", requestId, docId);
        }
        catch (OperationCanceledException) when (!_closed)
        {
            // A replica waiting for the version the client already saw elsewhere, past the bound (not attached yet).
            attached = false;
            SessionMetrics.OpenTimeouts.Inc();
            SendError(ErrorCode.Unavailable, $"Document '{docId}' could not catch up to version {subscribe.FromVersion} in time; retry.", requestId, docId);
        }
        catch (OperationCanceledException)
        {
            attached = false;
        }

        if (!attached)
        {
            hub.ReleaseRef();
            return;
        }

        bool closedMeanwhile;
        lock (_gate)
        {
            closedMeanwhile = _closed;
            if (!closedMeanwhile)
            {
                _subscriptions.Set(subscription);
            }
        }

        if (closedMeanwhile)
        {
            await DetachAndReleaseAsync(subscription).ConfigureAwait(false);
        }
    }

    private async ValueTask OnUnsubscribeAsync(Unsubscribe unsubscribe, ulong requestId)
    {
        Subscription? subscription;
        lock (_gate)
        {
            _subscriptions.Remove(unsubscribe.DocId, out subscription);
        }

        if (subscription is not null)
        {
            await DetachAndReleaseAsync(subscription).ConfigureAwait(false);
        }

        SendOwned(ServerFrames.Unsubscribed(unsubscribe.DocId, requestId));
    }

    private void OnSubmit(string docId, Subscription? subscription, ulong rawClientSeq, long baseVersion, ReadOnlySpan<byte> op, ulong requestId)
    {
        long started = Stopwatch.GetTimestamp(); // received: the start of its stages (Hosting.LatencyMetrics)
        SessionMetrics.OpsSubmitted.Inc();
        long clientSeq = rawClientSeq > long.MaxValue ? 0 : (long)rawClientSeq;
        if (subscription is null)
        {
            SendError(ErrorCode.NotSubscribed, $"Subscribe to document '{docId}' before submitting to it.", requestId, docId, clientSeq);
            return;
        }

        if (clientSeq <= 0 || baseVersion < 0)
        {
            ProtocolError(ErrorCode.BadMessage, "client_seq must be positive and base_version not negative.", requestId, docId, clientSeq).Forget(_services.Log.Logger, "protocol error reply");
            return;
        }

        if (!_principal.Rights.CanWrite(docId))
        {
            SecurityMetrics.Forbidden.WithLabels("submit").Inc();
            SendError(ErrorCode.Forbidden, $"No right to write document '{docId}'; the op was not applied.", requestId, docId, clientSeq);
            return;
        }

        if (_limiter.TryOp(_security.Rates, _user, _security.Time) is { } refused)
        {
            double rate = refused == LimitKind.OpsUser ? _security.Limits.UserOpsPerSecond : _security.Limits.OpsPerSecond;
            OverLimit(refused, ErrorCode.RateLimited, $"More than {rate} ops per second{(refused == LimitKind.OpsUser ? " for this user" : string.Empty)}; resend after a backoff.", requestId, docId, clientSeq);
            return;
        }

        if (op.Length > _services.Options.MaxOpBytes)
        {
            OverLimit(LimitKind.OpSize, ErrorCode.OpTooLarge, $"The op is {op.Length} bytes; the limit is {_services.Options.MaxOpBytes}.", requestId, docId, clientSeq);
            return;
        }

        PendingSubmit pending;
        try
        {
            // The hub decodes and checks the op with the document's type (OtException: nothing was submitted), then calls
            // OnSubmitAccepted before it submits.
            pending = subscription.Hub.SubmitEncoded(subscription, clientSeq, baseVersion, op, started);
        }
        catch (OtException ex)
        {
            SendError(ErrorCodes.FromOt(ex.Code), ex.Message, requestId, docId, clientSeq);
            return;
        }
        catch
        {
            WakeSubmitSlotWaiter(submitCompleted: true); // no outcome will come for it
            throw;
        }

        if (pending.IsCompleted)
        {
            FinishSubmit(pending, subscription, clientSeq, requestId, started);
        }
        else
        {
            SubmitContinuation.Rent().Await(this, pending, subscription, clientSeq, requestId, started);
        }
    }

    /// <summary>The user id ops of this session are attributed to.</summary>
    internal string? Author => _principal.UserId;

    /// <summary>The hub decoded a submit of this session and is about to sequence or forward it.</summary>
    internal void OnSubmitAccepted(Subscription subscription, long clientSeq)
    {
        subscription.NoteSubmit(clientSeq);
        lock (_inFlightGate)
        {
            _submitsInFlight++;
        }
    }

    /// <summary>Takes a submit's outcome (known by now) and answers it; a submit that failed asks the client to resend.</summary>
    private void FinishSubmit(in PendingSubmit pending, Subscription subscription, long clientSeq, ulong requestId, long started)
    {
        SubmitOutcome result;
        try
        {
            result = pending.GetResult();
        }
        catch (Exception ex)
        {
            WakeSubmitSlotWaiter(submitCompleted: true);
            _services.Log.MessageFailed(_connection.Id, ex);
            SendError(ErrorCode.Unavailable, "The op could not be sequenced; resend it.", requestId, subscription.DocId, clientSeq);
            return;
        }

        OnSubmitted(subscription, clientSeq, requestId, result, started);
    }

    /// <summary>
    /// The wait for one submit's outcome, pooled: an async method here cost a state machine box, and the conversion of the
    /// sequencer's result another, per op (~350 B and a task continuation; docs/PERFORMANCE.md, "Submit path
    /// allocations"). The continuation delegate is made once per pooled object.
    /// </summary>
    private sealed class SubmitContinuation
    {
        private static readonly ObjectPool<SubmitContinuation> s_pool = new(256);

        private readonly Action _onCompleted;
        private ClientSession? _session;
        private PendingSubmit _pending;
        private Subscription? _subscription;
        private long _clientSeq;
        private ulong _requestId;
        private long _started;

        private SubmitContinuation() => _onCompleted = OnCompleted;

        public static SubmitContinuation Rent() => s_pool.TryRent() ?? new SubmitContinuation();

        public void Await(ClientSession session, PendingSubmit pending, Subscription subscription, long clientSeq, ulong requestId, long started)
        {
            _session = session;
            _pending = pending;
            _subscription = subscription;
            _clientSeq = clientSeq;
            _requestId = requestId;
            _started = started;
            pending.OnCompleted(_onCompleted);
        }

        private void OnCompleted()
        {
            ClientSession session = _session!;
            PendingSubmit pending = _pending;
            Subscription subscription = _subscription!;
            long clientSeq = _clientSeq;
            ulong requestId = _requestId;
            long started = _started;
            _session = null;
            _pending = default;
            _subscription = null;
            s_pool.Return(this);
            try
            {
                session.FinishSubmit(pending, subscription, clientSeq, requestId, started);
            }
            catch (Exception ex)
            {
                // Nothing above the continuation would see it (it may run on a document's worker).
                session._services.Log.MessageFailed(session._connection.Id, ex);
            }
        }
    }

    /// <summary>
    /// What the read loop waits on after a submit: nothing below <see cref="DocumentOptions.MaxSubmitsInFlightPerConnection"/>,
    /// otherwise until one of the connection's submits has its outcome. Not reading is the backpressure: the client's
    /// further frames stay in TCP buffers instead of becoming server memory and sequencer work.
    /// </summary>
    private ValueTask WaitForSubmitSlot()
    {
        lock (_inFlightGate)
        {
            if (_submitsInFlight < _services.Options.MaxSubmitsInFlightPerConnection || _closed)
            {
                return ValueTask.CompletedTask;
            }

            SessionMetrics.SubmitSlotWaits.Inc();
            _submitSlot = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return new ValueTask(_submitSlot.Task);
        }
    }

    /// <summary>
    /// Resumes a read loop waiting for a submit slot: when one of the connection's submits has its outcome
    /// (<paramref name="submitCompleted"/>, which also frees its slot), or when the connection closed.
    /// </summary>
    private void WakeSubmitSlotWaiter(bool submitCompleted)
    {
        TaskCompletionSource? waiting;
        lock (_inFlightGate)
        {
            if (submitCompleted)
            {
                _submitsInFlight--;
            }

            waiting = _submitSlot;
            _submitSlot = null;
        }

        waiting?.TrySetResult();
    }

    private void OnSubmitted(Subscription subscription, long clientSeq, ulong requestId, SubmitOutcome result, long started)
    {
        WakeSubmitSlotWaiter(submitCompleted: true);
        switch (result.Status)
        {
            case SubmitStatus.Acked:
                // The hub already queued the ack, in version order, when the op committed.
                SessionMetrics.SubmitToAckSeconds.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
                break;
            case SubmitStatus.Duplicate:
                SessionMetrics.DuplicateAcks.Inc();
                subscription.Hub.SendDuplicateAckAsync(subscription, clientSeq, result.Version, requestId).Forget(_services.Log.Logger, "duplicate ack");
                break;
            case SubmitStatus.DocTooLarge:
                OverLimit(LimitKind.DocSize, ErrorCode.DocTooLarge, result.Message ?? $"The document would exceed {_services.Options.MaxDocumentLength} code points.", requestId, subscription.DocId, clientSeq);
                break;
            default:
                SendError(ErrorCodes.FromSubmit(result.Status), result.Message ?? result.Status.ToString(), requestId, subscription.DocId, clientSeq);
                break;
        }
    }

    private async ValueTask OnPresenceAsync(PresenceUpdate update, ulong requestId)
    {
        Subscription? subscription = Find(update.DocId);
        if (subscription is null)
        {
            SendError(ErrorCode.NotSubscribed, $"Subscribe to document '{update.DocId}' before sending presence for it.", requestId, update.DocId);
            return;
        }

        if (update.UserData.Length > _services.Limits.MaxPresenceBytes)
        {
            SendError(ErrorCode.BadMessage, $"Presence user_data is limited to {_services.Limits.MaxPresenceBytes} bytes (Welcome.max_presence_bytes).", requestId, update.DocId);
            return;
        }

        if (_limiter.TryPresence(_security.Rates, _user, _security.Time, out bool firstInStreak) is { } refused)
        {
            // Dropped: presence is ephemeral and the next update supersedes this one. One error per streak
            // tells the client why; an error per dropped update would only double the flood. Not a violation:
            // a chatty but honest editor (a selection per keystroke) must not be disconnected for it; a real
            // flood runs into the message rate, whose refusals do count.
            SecurityMetrics.Rejected(refused);
            if (firstInStreak)
            {
                SendError(ErrorCode.RateLimited, "Presence updates are sent faster than allowed; some are dropped.", requestId, update.DocId);
            }

            return;
        }

        try
        {
            await subscription.Hub.UpdatePresenceAsync(subscription, update.BaseVersion, update.Selection, update.UserData).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // The document closed under the update; presence is ephemeral and the client resubscribes.
        }
    }

    private async ValueTask OnFetchOpsAsync(FetchOps fetch, ulong requestId)
    {
        Subscription? subscription = Find(fetch.DocId);
        if (subscription is null)
        {
            SendError(ErrorCode.NotSubscribed, $"Subscribe to document '{fetch.DocId}' before reading its history.", requestId, fetch.DocId);
            return;
        }

        long committed = subscription.Hub.CommittedVersion;
        long to = fetch.ToVersion <= 0 ? committed : Math.Min(fetch.ToVersion, committed);
        if (fetch.FromVersion < 0 || fetch.FromVersion > to)
        {
            SendError(fetch.FromVersion > committed ? ErrorCode.VersionFromFuture : ErrorCode.BadMessage,
                $"Asked for ops after {fetch.FromVersion} up to {to} of a document at version {committed}.", requestId, fetch.DocId);
            return;
        }

        to = Math.Min(to, fetch.FromVersion + _services.Options.MaxFetchOps);
        IReadOnlyList<OpRecord> ops;
        try
        {
            ops = await _services.Documents.History.ReadOpsAsync(fetch.DocId, fetch.FromVersion, to, _connection.Closed).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_connection.Closed.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex)
        {
            _services.Documents.Log.HistoryReadFailed(fetch.DocId, fetch.FromVersion, ex);
            SendError(ErrorCode.Unavailable, "The history could not be read right now; retry.", requestId, fetch.DocId);
            return;
        }

        if (ops.Count != to - fetch.FromVersion)
        {
            SendError(ErrorCode.VersionTooOld, $"Ops after version {fetch.FromVersion} are no longer retained.", requestId, fetch.DocId);
            return;
        }

        var array = new OpRecord[ops.Count];
        for (int i = 0; i < array.Length; i++)
        {
            array[i] = ops[i];
        }

        SendOwned(ServerFrames.Ops(fetch.DocId, array, requestId));
    }

    private async ValueTask OnReauthenticateAsync(Reauthenticate reauth, ulong requestId)
    {
        SessionPrincipal current = _principal;
        if (current.IsAnonymous || _security.Validator is null)
        {
            // Anonymous server: a session carries no token, so there is nothing to refresh or re-check.
            return;
        }

        AuthResult result;
        try
        {
            result = await _security.Validator.ValidateAsync(reauth.Token, _connection.Closed).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_connection.Closed.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex)
        {
            _services.Log.MessageFailed(_connection.Id, ex);
            SendError(ErrorCode.Internal, "The token could not be checked; the current one stays in force.", requestId);
            return;
        }

        if (!result.Succeeded)
        {
            // The session keeps its current token until that expires (then 4001); a revoked user ends now.
            SecurityMetrics.AuthFailed(AuthStage.Reauth, result.Failure);
            _security.Log.TokenRefused(AuthStage.Reauth, _connection.RemoteEndPoint?.ToString() ?? "?", result.Failure, result.Description);
            SendError(ErrorCode.Unauthorized, "Reauthenticate refused: " + result.Description + ".", requestId);
            if (result.Failure == AuthFailure.UserRevoked)
            {
                OnRevoked(RevocationKind.User);
            }

            return;
        }

        SessionPrincipal next = result.Principal!;
        if (!string.Equals(next.UserId, current.UserId, StringComparison.Ordinal))
        {
            SecurityMetrics.AuthFailed(AuthStage.Reauth, AuthFailure.WrongUser);
            SendError(ErrorCode.Forbidden, "Reauthenticate carried another user's token; a connection cannot change its user.", requestId);
            CloseForSecurity(CloseCode.Forbidden, "token of another user");
            return;
        }

        SecurityMetrics.AuthSucceeded(AuthStage.Reauth);
        _principal = next;
        List<Subscription>? lost = null;
        lock (_gate)
        {
            SetAuthDeadline(next);

            // Rights may have shrunk: every subscription must still be readable.
            var subscribed = new List<Subscription>(_subscriptions.Count);
            _subscriptions.CopyTo(subscribed);
            foreach (Subscription sub in subscribed)
            {
                if (!next.Rights.CanRead(sub.DocId))
                {
                    (lost ??= []).Add(sub);
                    _subscriptions.Remove(sub.DocId, out _);
                }
            }
        }

        if (lost is null)
        {
            return;
        }

        foreach (Subscription sub in lost)
        {
            SecurityMetrics.Forbidden.WithLabels("revoked_on_reauth").Inc();
            await DetachAndReleaseAsync(sub).ConfigureAwait(false);
            SendError(ErrorCode.Forbidden, $"The new token does not allow reading document '{sub.DocId}'; the subscription ended.", 0, sub.DocId);
        }
    }

    // ------------------------------------------------------------------ security callbacks

    /// <inheritdoc />
    public void OnAuthDeadline(DateTimeOffset now)
    {
        bool expire = false;
        bool warn = false;
        DateTimeOffset deadline;
        lock (_gate)
        {
            deadline = _authDeadline;
            if (_closed)
            {
                return;
            }

            if (now >= deadline)
            {
                expire = true;
                Volatile.Write(ref _nextAuthCheck, long.MaxValue);
            }
            else if (!_expiryWarned && now >= deadline - _security.Auth.ExpiryWarning)
            {
                // Before Hello the client would not understand the message: Hello sends it instead.
                if (_clientId is not null)
                {
                    _expiryWarned = true;
                    warn = true;
                    Volatile.Write(ref _nextAuthCheck, deadline.UtcTicks);
                }
            }
        }

        if (expire)
        {
            SecurityMetrics.ExpiredCloses.Inc();
            CloseForSecurity(CloseCode.AuthExpired, "access token expired");
        }
        else if (warn)
        {
            SecurityMetrics.ExpiryWarnings.Inc();
            SendOwned(ServerFrames.Build(new ServerMessage { AuthExpiring = new AuthExpiring { ExpiresAtMs = deadline.ToUnixTimeMilliseconds() } }));
        }
    }

    /// <inheritdoc />
    public void OnRevoked(RevocationKind kind)
    {
        SecurityMetrics.RevokedCloses.WithLabels(kind == RevocationKind.User ? "user" : "token").Inc();
        if (kind == RevocationKind.User)
        {
            CloseForSecurity(CloseCode.Forbidden, "access revoked");
        }
        else
        {
            CloseForSecurity(CloseCode.AuthExpired, "access token revoked");
        }
    }

    /// <summary>
    /// The deadline of a principal's token: its exp plus the clock skew the handshake tolerated (guarded by _gate).
    /// A token that does not move the deadline later (a client re-sending a cached token) earns no new warning:
    /// the client was told once, and the close at the deadline follows.
    /// </summary>
    private void SetAuthDeadline(SessionPrincipal principal)
    {
        DateTimeOffset deadline = principal.ExpiresAt is { } exp ? exp + _security.Auth.ClockSkew : DateTimeOffset.MaxValue;
        _expiryWarned = _expiryWarned && deadline <= _authDeadline;
        _authDeadline = deadline;
        DateTimeOffset next = deadline == DateTimeOffset.MaxValue ? DateTimeOffset.MaxValue
            : _expiryWarned ? deadline
            : deadline - _security.Auth.ExpiryWarning;
        Volatile.Write(ref _nextAuthCheck, next.UtcTicks);
    }

    private void CloseForSecurity(CloseCode code, string reason)
    {
        _security.Log.SessionClosed(_connection.Id, _principal.UserId, reason);
        _connection.Close(code, reason);
    }

    /// <summary>Answers a request refused by a limit, and closes the connection (4008) once refusals persist.</summary>
    private void OverLimit(LimitKind limit, ErrorCode code, string message, ulong requestId, string? docId = null, long clientSeq = 0)
    {
        SecurityMetrics.Rejected(limit);
        SendError(code, message, requestId, docId, clientSeq);
        CountViolation(limit);
    }

    private void CountViolation(LimitKind limit)
    {
        bool close;
        lock (_gate)
        {
            close = _limiter.RecordViolation(_security.Rates, _security.Time);
        }

        if (close)
        {
            SecurityMetrics.ClosedOver(limit);
            _security.Log.LimitClose(_connection.Id, limit);
            _connection.Close(CloseCode.RateLimited, "over the " + SecurityMetrics.Snake(limit.ToString()) + " limit");
        }
    }

    // ------------------------------------------------------------------ hub callbacks

    /// <summary>
    /// The document of <paramref name="failed"/> stopped on this node (a fault, fenced, or a replica that could not follow)
    /// and its old hub has settled: attach a replacement subscription to the reloaded document from the version the client
    /// was sent everything up to, silently, so the client sees one continuous stream (its submits that the failure caught
    /// were answered UNAVAILABLE and come again; ops acknowledged before it arrive in the catch-up, as acks since they were
    /// submitted on this connection). Whatever prevents that makes the client reconnect and resubscribe instead.
    /// </summary>
    internal async Task ResumeAfterFailureAsync(FailedSubscriber failed)
    {
        Subscription old = failed.Subscription;
        DocumentHub? hub = null;
        Subscription? replacement = null;
        Exception? error = null;
        try
        {
            if (!IsCurrent(old))
            {
                return; // unsubscribed or resubscribed meanwhile: nothing to resume
            }

            if (failed.Version >= 0)
            {
                hub = await _services.Documents.AcquireAsync(old.DocId, _connection.Closed, old.Hub.Kind).ConfigureAwait(false);
                replacement = new Subscription(this, hub);
                replacement.InheritSubmits(old);
                if (!await hub.SubscribeAsync(replacement, failed.Version, snapshot: false, requestId: 0, _connection.Closed, resume: true).ConfigureAwait(false))
                {
                    replacement = null;
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !_connection.Closed.IsCancellationRequested)
        {
            error = ex;
            replacement = null;
        }
        catch (OperationCanceledException)
        {
            replacement = null;
        }

        if (hub is not null && replacement is null)
        {
            hub.ReleaseRef();
        }

        if (replacement is not null)
        {
            bool swapped;
            lock (_gate)
            {
                swapped = !_closed && _subscriptions.TryGetValue(old.DocId, out Subscription? current) && ReferenceEquals(current, old);
                if (swapped)
                {
                    _subscriptions.Set(replacement);
                }
            }

            if (!swapped)
            {
                // The client unsubscribed, resubscribed or left while the document reloaded (whoever removed the old
                // subscription released its reference).
                await DetachAndReleaseAsync(replacement).ConfigureAwait(false);
                return;
            }

            old.Hub.ReleaseRef();

            SessionMetrics.SubscriptionsResumed.WithLabels("resumed").Inc();
            _services.Log.SubscriptionResumed(_connection.Id, old.DocId, failed.Version);
            if (failed.Selection is { } selection)
            {
                try
                {
                    await replacement.Hub.UpdatePresenceAsync(replacement, failed.PresenceVersion, selection, failed.UserData).ConfigureAwait(false);
                }
                catch (ObjectDisposedException)
                {
                    // Closed again already; presence is ephemeral.
                }
            }

            return;
        }

        if (_closed || !IsCurrent(old))
        {
            return;
        }

        SessionMetrics.SubscriptionsResumed.WithLabels("reconnected").Inc();
        _services.Log.SubscriptionNotResumed(_connection.Id, old.DocId, error);
        ReconnectForDocument(old);
    }

    private bool IsCurrent(Subscription subscription)
    {
        lock (_gate)
        {
            return !_closed && _subscriptions.TryGetValue(subscription.DocId, out Subscription? current) && ReferenceEquals(current, subscription);
        }
    }

    /// <summary>The fallback when a failed document's subscription cannot be resumed in place: the client reconnects and resubscribes.</summary>
    private void ReconnectForDocument(Subscription subscription)
    {
        lock (_gate)
        {
            if (_subscriptions.TryGetValue(subscription.DocId, out Subscription? current) && ReferenceEquals(current, subscription))
            {
                _subscriptions.Remove(subscription.DocId, out _);
                subscription.Hub.ReleaseRef();
            }
        }

        // Reconnecting resubscribes every document from the client's last version and resends its
        // in-flight ops, which the new sequencer deduplicates: the one path already proven for restarts.
        SendOwned(ServerFrames.Build(new ServerMessage
        {
            Redirect = new Redirect { Url = string.Empty, RetryAfterMs = (uint)Random.Shared.Next(50, 500), Reason = $"document '{subscription.DocId}' moved" },
        }));
        _connection.Close(CloseCode.ServiceRestart, "document moved; reconnect");
    }

    /// <summary>The document was deleted (HTTP API): the subscription ends with DOC_DELETED; the connection stays open.</summary>
    internal void OnDocumentDeleted(DocumentHub hub)
    {
        lock (_gate)
        {
            if (_subscriptions.TryGetValue(hub.DocId, out Subscription? sub) && ReferenceEquals(sub.Hub, hub))
            {
                _subscriptions.Remove(hub.DocId, out _);
                hub.ReleaseRef();
            }
        }

        SendError(ErrorCode.DocDeleted, $"Document '{hub.DocId}' was deleted.", 0, hub.DocId);
    }

    /// <summary>A subscription ended on the hub's side (history gone); forget it here.</summary>
    internal void OnSubscriptionLost(Subscription subscription)
    {
        bool removed;
        lock (_gate)
        {
            removed = _subscriptions.TryGetValue(subscription.DocId, out Subscription? current)
                && ReferenceEquals(current, subscription)
                && _subscriptions.Remove(subscription.DocId, out _);
        }

        if (removed)
        {
            subscription.Hub.ReleaseRef();
        }
    }

    // ------------------------------------------------------------------ sending

    /// <summary>Queues a shared frame (the caller keeps its reference).</summary>
    internal void Send(OutboundMessage frame) => _connection.TrySend(frame);

    private void SendOwned(OutboundMessage frame)
    {
        _connection.TrySend(frame);
        frame.Dispose();
    }

    internal void SendError(ErrorCode code, string message, ulong requestId, string? docId = null, long clientSeq = 0)
    {
        SessionMetrics.Errors.WithLabels(code.ToString()).Inc();
        SendOwned(ServerFrames.Error(code, message, requestId, docId, clientSeq));
    }

    /// <summary>Answers a malformed request; a connection that keeps sending them is closed (1008).</summary>
    private ValueTask ProtocolError(ErrorCode code, string message, ulong requestId, string? docId = null, long clientSeq = 0)
    {
        SendError(code, message, requestId, docId, clientSeq);
        if (Interlocked.Increment(ref _protocolErrors) > MaxProtocolErrors)
        {
            Abort($"more than {MaxProtocolErrors} malformed messages");
        }

        return ValueTask.CompletedTask;
    }

    internal void Abort(string reason) => CloseFor(CloseCode.PolicyViolation, reason);

    /// <summary>Closes the connection for something the client sent (logged: it is a client bug or abuse).</summary>
    private void CloseFor(CloseCode code, string reason)
    {
        _services.Log.ProtocolAbuse(_connection.Id, (int)code, reason);
        _connection.Close(code, reason);
    }

    private Subscription? Find(string docId)
    {
        lock (_gate)
        {
            return _subscriptions.TryGetValue(docId, out Subscription? subscription) ? subscription : null;
        }
    }

    private static async Task DetachAndReleaseAsync(Subscription subscription)
    {
        try
        {
            await subscription.Hub.DetachAsync(subscription).ConfigureAwait(false);
        }
        finally
        {
            subscription.Hub.ReleaseRef();
        }
    }

    /// <summary>The received-messages counter of a message kind, looked up once: WithLabels per message cost a label array and a lookup.</summary>
    private static Prometheus.Counter.Child ReceivedCounter(ClientMessage.BodyOneofCase kind) =>
        ((uint)kind < (uint)s_receivedByKind.Length ? s_receivedByKind[(int)kind] : null) ?? SessionMetrics.MessagesReceived.WithLabels(KindLabel(kind));

    private static readonly Prometheus.Counter.Child?[] s_receivedByKind = ReceivedCounters();

    private static Prometheus.Counter.Child?[] ReceivedCounters()
    {
        var children = new Prometheus.Counter.Child?[32];
        foreach (ClientMessage.BodyOneofCase kind in Enum.GetValues<ClientMessage.BodyOneofCase>())
        {
            if ((int)kind < children.Length)
            {
                children[(int)kind] = SessionMetrics.MessagesReceived.WithLabels(KindLabel(kind));
            }
        }

        return children;
    }

    private static string KindLabel(ClientMessage.BodyOneofCase kind) => kind switch
    {
        ClientMessage.BodyOneofCase.Hello => "hello",
        ClientMessage.BodyOneofCase.Subscribe => "subscribe",
        ClientMessage.BodyOneofCase.Unsubscribe => "unsubscribe",
        ClientMessage.BodyOneofCase.Submit => "submit",
        ClientMessage.BodyOneofCase.Presence => "presence",
        ClientMessage.BodyOneofCase.Reauth => "reauth",
        ClientMessage.BodyOneofCase.Ping => "ping",
        ClientMessage.BodyOneofCase.FetchOps => "fetch_ops",
        _ => "unknown",
    };
}
