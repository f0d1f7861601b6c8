using System.Buffers;
using Collab.Client.Internal;
using Collab.Engine;
using Collab.Engine.Text;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Client;

/// <summary>
/// One open text document: a local replica that accepts edits at once and converges with the server
/// and every other client (docs/PROTOCOL.md sections 5 to 8). Obtained from <see cref="CollabClient.OpenDocumentAsync"/>.
/// </summary>
/// <remarks>
/// <para>Local edits apply to <see cref="Text"/> immediately. At most one op is in flight; edits made meanwhile are
/// composed into one buffered op sent when the server acknowledges the in-flight one. Remote ops are transformed past
/// the pending local edits and raise <see cref="Changed"/>. Edits keep being accepted while disconnected and are sent
/// (the in-flight one resent with its original client seq, so the server never applies it twice) after the reconnect.</para>
/// <para>Thread-safety: all members may be called from any thread; each call sees and leaves a consistent state.
/// Positions and lengths count Unicode code points, not UTF-16 units.</para>
/// </remarks>
public sealed class CollabDocument : IAsyncDisposable
{
    private readonly CollabClient _client;
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ArrayBufferWriter<byte> _encodeBuffer = new(256);
    private readonly Dictionary<string, RemotePresence> _remotePresence = new(StringComparer.Ordinal);
    private List<TaskCompletionSource>? _syncWaiters;
    private TextClientState? _state;

    // The server's text at _state.Version (local text minus pending ops): the base for snapshot rebases.
    private Rope _serverText = Rope.Empty;

    private ClientSession? _session;
    private long _generation;
    private Phase _phase = Phase.Detached;
    private bool _closed;
    private ulong _subscribeRequestId;
    private ulong _fetchRequestId;
    private long _fetchFromVersion;
    private long _catchUpTarget;
    private int _retryAttempt;

    // The in-flight op's identity and last transmission. _inflightSentClientId is null while it was never sent.
    private ulong _inflightSeq;
    private string? _inflightSentClientId;
    private long _inflightSentGeneration = -1;
    private long _inflightSentBase;
    private ByteString _inflightSentBytes = ByteString.Empty;
    private bool _resendAfterCatchUp;

    // Snapshot recovery (docs/PROTOCOL.md section 7.3).
    private bool _needsSnapshot;
    private InflightFate _resyncFate;
    private Snapshot? _probeSnapshot;
    private List<SequencedOp>? _probeQueue;

    private LocalPresence? _localPresence;
    private bool _presenceDirty;

    internal CollabDocument(CollabClient client, string docId)
    {
        _client = client;
        DocId = docId;
    }

    private enum Phase
    {
        /// <summary>No connection.</summary>
        Detached,

        /// <summary>First subscribe sent, waiting for the snapshot.</summary>
        Opening,

        /// <summary>Resuming subscribe sent, waiting for Subscribed.</summary>
        Resuming,

        /// <summary>Subscribed: ops flow, submits are sent.</summary>
        Live,

        /// <summary>FetchOps sent after VERSION_TOO_OLD, waiting for its Ops.</summary>
        Fetching,

        /// <summary>Snapshot subscribe sent to recover, waiting for the snapshot.</summary>
        Resyncing,

        /// <summary>Snapshot received; the unknown in-flight op was resent to learn whether the snapshot holds it.</summary>
        Probing,
    }

    /// <summary>Whether the server's text holds the in-flight op, for a snapshot rebase.</summary>
    private enum InflightFate
    {
        Unknown,
        Included,
        NotIncluded,
        Rejected,
    }

    /// <summary>A remote op was applied or the document was resynced. Not raised for local edits.</summary>
    public event EventHandler<DocumentChangedEventArgs>? Changed;

    /// <summary>Another client's selection changed, appeared or went away.</summary>
    public event EventHandler<PresenceChangedEventArgs>? PresenceChanged;

    /// <summary>
    /// The server reported an error for this document. For a rejected submit (non-retryable) the op has been
    /// dropped and the document resyncs from a snapshot; retryable errors are retried automatically.
    /// </summary>
    public event EventHandler<CollabErrorEventArgs>? Error;

    /// <summary>The document id.</summary>
    public string DocId { get; }

    /// <summary>The last server version this replica has applied (pending local edits are not counted).</summary>
    public long Version
    {
        get
        {
            lock (_lock)
            {
                return _state?.Version ?? 0;
            }
        }
    }

    /// <summary>The local text, including pending local edits. O(length): prefer <see cref="Snapshot"/> for large documents.</summary>
    public string Text => Snapshot.ToString();

    /// <summary>The local text as an immutable rope (cheap to read and keep).</summary>
    public Rope Snapshot
    {
        get
        {
            lock (_lock)
            {
                return _state?.Snapshot ?? Rope.Empty;
            }
        }
    }

    /// <summary>Local edits exist that the server has not acknowledged.</summary>
    public bool HasPendingOps
    {
        get
        {
            lock (_lock)
            {
                return HasPendingLocked;
            }
        }
    }

    internal Task WhenOpened => _opened.Task;

    private bool HasPendingLocked => _state is { HasPending: true };

    /// <summary>Inserts <paramref name="text"/> at code point <paramref name="position"/>.</summary>
    /// <exception cref="OtException">The position is beyond the end of the text, or the text is not valid Unicode.</exception>
    public void Insert(int position, string text) => Submit(TextOp.Insert(position, text));

    /// <summary>Deletes <paramref name="length"/> code points at <paramref name="position"/>.</summary>
    /// <exception cref="OtException">The range reaches beyond the end of the text.</exception>
    public void Delete(int position, int length) => Submit(TextOp.Delete(position, length));

    /// <summary>Applies a local edit made against the current <see cref="Text"/> and queues it for the server.</summary>
    /// <exception cref="OtException">The op does not fit the current text.</exception>
    /// <exception cref="ArgumentException">The op's encoding exceeds the server's <c>max_op_bytes</c>.</exception>
    /// <exception cref="ObjectDisposedException">The document (or its client) is closed.</exception>
    public void Submit(TextOp op)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            TextClientState state = _state ?? throw new InvalidOperationException("The document is not open.");
            TextType.Validate(op, state.Snapshot.Length);
            if (op.IsNoop)
            {
                return;
            }

            if (_session?.Welcome.MaxOpBytes is > 0 and var maxOpBytes && TextOpCodec.GetEncodedLength(op) > maxOpBytes)
            {
                throw new ArgumentException($"The op encodes to more than the server's limit of {maxOpBytes} bytes; split it.", nameof(op));
            }

            bool nowInFlight = state.ApplyLocal(op);
            MovePresences(op, remoteIsOwn: false, localIsOwn: true);
            if (nowInFlight)
            {
                _inflightSeq = _client.NextClientSeq();
                _inflightSentClientId = null;
                _inflightSentGeneration = -1;
                TrySendInFlight();
            }
        }
    }

    /// <summary>
    /// Completes when every local edit made so far has been acknowledged (or, for a rejected edit, dropped and the
    /// document resynced). Faults with <see cref="ObjectDisposedException"/> or <see cref="CollabConnectionException"/>
    /// when the document or client closes first.
    /// </summary>
    public Task WhenSynced(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (_closed)
            {
                return Task.FromException(new ObjectDisposedException(nameof(CollabDocument)));
            }

            if (!HasPendingLocked)
            {
                return Task.CompletedTask;
            }

            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            (_syncWaiters ??= []).Add(waiter);
            return waiter.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Publishes this client's selection (code points in the current <see cref="Text"/>). Sent when no local edit is
    /// pending (so the server can place it), coalesced with later calls, and re-sent after a reconnect.
    /// </summary>
    /// <param name="anchor">Where the selection starts.</param>
    /// <param name="head">Where the caret is; equal to <paramref name="anchor"/> for a caret.</param>
    /// <param name="userData">Opaque data shown to others (name, colour); at most 1 KiB.</param>
    public void SetPresence(int anchor, int head, ReadOnlyMemory<byte> userData = default)
    {
        if (userData.Length > 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(userData), "Presence user data is limited to 1 KiB.");
        }

        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            int length = _state?.Snapshot.Length ?? 0;
            ArgumentOutOfRangeException.ThrowIfNegative(anchor);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(anchor, length);
            ArgumentOutOfRangeException.ThrowIfNegative(head);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(head, length);
            _localPresence = new LocalPresence(anchor, head, ByteString.CopyFrom(userData.Span));
            _presenceDirty = true;
            TrySendPresence();
        }
    }

    /// <summary>Withdraws this client's selection.</summary>
    public void ClearPresence()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            _localPresence = null;
            _presenceDirty = true;
            TrySendPresence();
        }
    }

    /// <summary>The other clients' current selections, in local positions.</summary>
    public IReadOnlyList<RemotePresence> GetPresences()
    {
        lock (_lock)
        {
            return [.. _remotePresence.Values];
        }
    }

    /// <summary>Unsubscribes and closes the document. Unacknowledged local edits are abandoned.</summary>
    public ValueTask DisposeAsync()
    {
        lock (_lock)
        {
            if (_closed)
            {
                return ValueTask.CompletedTask;
            }

            _session?.TrySend(new ClientMessage { RequestId = _client.NextRequestId(), Unsubscribe = new Unsubscribe { DocId = DocId } });
            CloseLocked(new ObjectDisposedException(nameof(CollabDocument)));
        }

        _client.RemoveDocument(this);
        return ValueTask.CompletedTask;
    }

    // ------------------------------------------------------------------ connection hooks (receive loop / run loop)

    internal void OnSessionStarted(ClientSession session, long generation)
    {
        lock (_lock)
        {
            if (_closed || generation <= _generation)
            {
                return;
            }

            _session = session;
            _generation = generation;
            _retryAttempt = 0;
            // A server that did not resume our id cannot deduplicate the in-flight op: look for it in the catch-up first.
            _resendAfterCatchUp = _inflightSentClientId is not null && _inflightSentClientId != session.Welcome.ClientId;
            Subscribe();
        }
    }

    internal void OnSessionEnded(ClientSession session)
    {
        lock (_lock)
        {
            if (_session != session)
            {
                return;
            }

            _session = null;
            if (_phase == Phase.Probing)
            {
                // The probe's answer is lost with the connection; the next session starts the recovery over.
                _probeSnapshot = null;
                _probeQueue = null;
            }

            _phase = Phase.Detached;
        }
    }

    internal void OnClientClosed()
    {
        lock (_lock)
        {
            CloseLocked(new CollabConnectionException("The client is closed."));
        }
    }

    internal void OnSnapshot(ClientSession session, ulong requestId, Snapshot snapshot)
    {
        lock (_lock)
        {
            if (!IsCurrent(session) || requestId != _subscribeRequestId)
            {
                return;
            }

            if (snapshot.Type.Length > 0 && snapshot.Type != TextType.TypeName)
            {
                FailOpen(new CollabConnectionException($"Document '{DocId}' has type '{snapshot.Type}'; this client implements '{TextType.TypeName}' only."));
                return;
            }

            if (_phase == Phase.Opening)
            {
                Rope text = Rope.FromString(snapshot.Text);
                _state = new TextClientState(text, snapshot.Version);
                _serverText = text;
                _phase = Phase.Live;
                _retryAttempt = 0;
                _opened.TrySetResult();
                AfterResubscribed();
                return;
            }

            if (_phase != Phase.Resyncing || _state is not { } state)
            {
                Log.Unexpected(_client.Logger, nameof(Snapshot), DocId);
                return;
            }

            InflightFate fate = _resyncFate;
            if (fate == InflightFate.Unknown && state.InFlight is not null && _inflightSentClientId == _session!.Welcome.ClientId)
            {
                // Ask the server: the resend is deduplicated if the op is in, and refused as too old if not.
                _phase = Phase.Probing;
                _probeSnapshot = snapshot;
                _probeQueue = [];
                SendProbe();
                return;
            }

            CompleteResync(snapshot, fate == InflightFate.Unknown ? InflightFate.NotIncluded : fate);
        }
    }

    internal void OnSubscribed(ClientSession session, ulong requestId, Subscribed subscribed)
    {
        lock (_lock)
        {
            if (!IsCurrent(session) || requestId != _subscribeRequestId || _phase != Phase.Resuming)
            {
                return;
            }

            _phase = Phase.Live;
            _retryAttempt = 0;
            _catchUpTarget = subscribed.CurrentVersion;
            AfterResubscribed();
            CheckCatchUp();
        }
    }

    internal void OnOps(ClientSession session, ulong requestId, Ops ops)
    {
        lock (_lock)
        {
            if (!IsCurrent(session) || _state is null)
            {
                return;
            }

            switch (_phase)
            {
                case Phase.Probing:
                    _probeQueue!.AddRange(ops.Ops_);
                    return;
                case Phase.Fetching when requestId != 0 && requestId == _fetchRequestId:
                    long before = _state.Version;
                    if (ApplyOps(ops.Ops_) && _phase == Phase.Fetching)
                    {
                        if (_state.Version == before)
                        {
                            BeginResync(InflightFate.Unknown, "FetchOps returned nothing after VERSION_TOO_OLD");
                        }
                        else
                        {
                            Subscribe();
                        }
                    }

                    return;
                case Phase.Live:
                    ApplyOps(ops.Ops_);
                    CheckCatchUp();
                    return;
                default:
                    // Before Subscribed, or while a snapshot is coming: that snapshot or catch-up covers these ops.
                    return;
            }
        }
    }

    internal void OnAck(ClientSession session, Ack ack)
    {
        lock (_lock)
        {
            if (!IsCurrent(session) || _state is not { } state || state.InFlight is null || ack.ClientSeq != _inflightSeq)
            {
                // Not the in-flight op: the duplicate Ack of a resend whose op was already recognised in the ops.
                return;
            }

            if (_phase == Phase.Probing)
            {
                ResolveProbe(included: true, upToDate: ack.Duplicate && ack.Version <= _probeSnapshot!.Version);
                return;
            }

            if (_phase != Phase.Live || _inflightSentClientId is null)
            {
                return;
            }

            if (ack.Version == state.Version + 1)
            {
                Acknowledge(ack.Version);
            }
            else if (ack.Version > state.Version + 1)
            {
                // Ops before our own are missing (ordering guarantee broken): catch up; our op is recognised there.
                Log.Unexpected(_client.Logger, "Ack ahead of ops", DocId);
                Subscribe();
            }
            else
            {
                // Our op sits at a version we already passed without recognising it: our replica cannot be trusted.
                BeginResync(InflightFate.Included, $"Ack for version {ack.Version} behind the replica's version {state.Version}");
            }
        }
    }

    internal void OnPresence(ClientSession session, Presence presence)
    {
        lock (_lock)
        {
            if (!IsCurrent(session) || _state is not { } state || presence.ClientId == session.Welcome.ClientId)
            {
                return;
            }

            if (presence.Selection is null)
            {
                if (_remotePresence.Remove(presence.ClientId))
                {
                    RaisePresence(presence.ClientId, null);
                }

                return;
            }

            int length = state.Snapshot.Length;
            int anchor = (int)Math.Clamp(presence.Selection.Anchor, 0, length);
            int head = (int)Math.Clamp(presence.Selection.Head, 0, length);
            if (presence.Version == state.Version)
            {
                // Positions refer to the server text; our pending edits sit on top of it locally.
                foreach (TextOp pending in PendingOps(state))
                {
                    anchor = TextType.TransformCursor(anchor, pending, isOwnOp: false);
                    head = TextType.TransformCursor(head, pending, isOwnOp: false);
                }

                anchor = Math.Min(anchor, length);
                head = Math.Min(head, length);
            }

            var remote = new RemotePresence(presence.ClientId, anchor, head, presence.UserData.Memory);
            _remotePresence[presence.ClientId] = remote;
            RaisePresence(presence.ClientId, remote);
        }
    }

    internal void OnError(ClientSession session, ulong requestId, Error error, CollabErrorEventArgs args)
    {
        _client.Events.Post(() => Error?.Invoke(this, args));
        lock (_lock)
        {
            if (!IsCurrent(session))
            {
                return;
            }

            if (_phase == Phase.Probing && error.ClientSeq != 0 && error.ClientSeq == _inflightSeq)
            {
                if (error.Retryable)
                {
                    ScheduleRetry(SendProbe);
                }
                else
                {
                    ResolveProbe(included: false, upToDate: true);
                }

                return;
            }

            if (requestId != 0 && requestId == _subscribeRequestId)
            {
                OnSubscribeError(error);
                return;
            }

            if (requestId != 0 && requestId == _fetchRequestId && _phase == Phase.Fetching)
            {
                if (error.Retryable)
                {
                    ScheduleRetry(SendFetch);
                }
                else
                {
                    BeginResync(InflightFate.Unknown, $"FetchOps failed with {error.Code}");
                }

                return;
            }

            if (error.ClientSeq != 0 && error.ClientSeq == _inflightSeq && _state?.InFlight is not null && _phase == Phase.Live)
            {
                OnSubmitError(error);
                return;
            }

            if (error.Code == ErrorCode.NotSubscribed && _phase == Phase.Live)
            {
                Subscribe();
            }
        }
    }

    // ------------------------------------------------------------------ internals (all called under _lock)

    private bool IsCurrent(ClientSession session) => !_closed && _session == session;

    /// <summary>Subscribes on the current session in the way the replica's state calls for.</summary>
    private void Subscribe()
    {
        if (_session is not { } session)
        {
            return;
        }

        var subscribe = new Subscribe { DocId = DocId };
        if (_state is null)
        {
            _phase = Phase.Opening;
            subscribe.Snapshot = true;
        }
        else if (_needsSnapshot)
        {
            _phase = Phase.Resyncing;
            subscribe.Snapshot = true;
        }
        else
        {
            _phase = Phase.Resuming;
            subscribe.FromVersion = _state.Version;
        }

        _subscribeRequestId = _client.NextRequestId();
        session.TrySend(new ClientMessage { RequestId = _subscribeRequestId, Subscribe = subscribe });
    }

    private void OnSubscribeError(Error error)
    {
        if (error.Retryable)
        {
            ScheduleRetry(Subscribe);
            return;
        }

        switch (_phase)
        {
            case Phase.Opening:
                FailOpen(new CollabServerException(error.Code, error.Message, error.Retryable, DocId));
                return;
            case Phase.Resuming when error.Code == ErrorCode.VersionTooOld:
                _phase = Phase.Fetching;
                _fetchFromVersion = _state!.Version;
                SendFetch();
                return;
            case Phase.Resuming when error.Code == ErrorCode.VersionFromFuture:
                BeginResync(InflightFate.Unknown, "the server is behind the replica (VERSION_FROM_FUTURE)");
                return;
            default:
                // FORBIDDEN, INVALID_DOC_ID, TOO_MANY_SUBSCRIPTIONS... on a resubscribe: the document cannot be followed any more.
                CloseLocked(new CollabServerException(error.Code, error.Message, error.Retryable, DocId));
                _client.RemoveDocument(this);
                return;
        }
    }

    private void OnSubmitError(Error error)
    {
        if (error.Retryable)
        {
            ScheduleRetry(() =>
            {
                _inflightSentGeneration = -1;
                TrySendInFlight();
            });
            return;
        }

        // The server checks deduplication before the base version, so these mean the op was not sequenced.
        if (error.Code is ErrorCode.VersionTooOld or ErrorCode.VersionFromFuture)
        {
            BeginResync(InflightFate.NotIncluded, $"submit refused with {error.Code}");
        }
        else if (error.Code == ErrorCode.NotSubscribed)
        {
            Subscribe();
        }
        else
        {
            BeginResync(InflightFate.Rejected, $"submit {error.ClientSeq} rejected with {error.Code}; the op is dropped");
        }
    }

    private void SendFetch()
    {
        if (_session is not { } session || _phase != Phase.Fetching)
        {
            return;
        }

        _fetchRequestId = _client.NextRequestId();
        session.TrySend(new ClientMessage
        {
            RequestId = _fetchRequestId,
            FetchOps = new FetchOps { DocId = DocId, FromVersion = _fetchFromVersion, ToVersion = 0 },
        });
    }

    /// <summary>Applies a batch of sequenced ops in version order; returns <see langword="false"/> when it stopped to recover.</summary>
    private bool ApplyOps(IList<SequencedOp> ops)
    {
        TextClientState state = _state!;
        foreach (SequencedOp op in ops)
        {
            if (op.Version <= state.Version)
            {
                continue;
            }

            if (op.Version != state.Version + 1)
            {
                Log.Unexpected(_client.Logger, $"gap: op {op.Version} after {state.Version}", DocId);
                Subscribe();
                return false;
            }

            if (state.InFlight is not null && _inflightSentClientId is not null && op.ClientId == _inflightSentClientId && op.ClientSeq == _inflightSeq)
            {
                // Our own op, sequenced before the connection dropped: this is its Ack.
                Acknowledge(op.Version);
                continue;
            }

            TextOp applied;
            TextOp remote;
            try
            {
                remote = TextOpCodec.Decode(op.Op.Span);
                TextType.Validate(remote, _serverText.Length);
                applied = state.ApplyRemote(remote, op.Version);
            }
            catch (OtException ex)
            {
                BeginResync(InflightFate.Unknown, $"op {op.Version} does not apply: {ex.Message}");
                return false;
            }

            _serverText = TextType.Apply(_serverText, remote);
            MovePresences(applied, remoteIsOwn: false, localIsOwn: false, author: op.ClientId);
            var args = new DocumentChangedEventArgs(applied, op.Version, state.Snapshot, op.ClientId, op.Author.Length == 0 ? null : op.Author, isResync: false);
            _client.Events.Post(() => Changed?.Invoke(this, args));
        }

        return true;
    }

    private void Acknowledge(long version)
    {
        TextClientState state = _state!;
        _serverText = TextType.Apply(_serverText, state.InFlight!.Value);
        _retryAttempt = 0;
        _inflightSentClientId = null;
        _inflightSentGeneration = -1;
        if (state.Acknowledge(version))
        {
            _inflightSeq = _client.NextClientSeq();
            TrySendInFlight();
        }

        AfterPendingChanged();
    }

    /// <summary>Sends the in-flight op unless it already went out on this connection or the subscription is not live.</summary>
    private void TrySendInFlight()
    {
        if (_phase != Phase.Live || _session is not { } session || _resendAfterCatchUp
            || _state is not { InFlight: { } op } state || _inflightSentGeneration == _generation)
        {
            return;
        }

        ByteString bytes = Encode(op);
        var submit = new Submit { DocId = DocId, ClientSeq = _inflightSeq, BaseVersion = state.Version, Op = bytes };
        if (session.TrySend(new ClientMessage { Submit = submit }))
        {
            _inflightSentClientId = session.Welcome.ClientId;
            _inflightSentGeneration = _generation;
            _inflightSentBase = state.Version;
            _inflightSentBytes = bytes;
        }
    }

    /// <summary>After catch-up under a new client id: the old op is not in the history, so send it under a new seq.</summary>
    private void CheckCatchUp()
    {
        if (!_resendAfterCatchUp || _phase != Phase.Live || _state!.Version < _catchUpTarget)
        {
            return;
        }

        _resendAfterCatchUp = false;
        if (_state.InFlight is not null)
        {
            _inflightSeq = _client.NextClientSeq();
            _inflightSentClientId = null;
            _inflightSentGeneration = -1;
            TrySendInFlight();
        }
    }

    private void AfterResubscribed()
    {
        // The server forgot presence with the old connection: start from its fresh broadcasts.
        foreach (string clientId in _remotePresence.Keys)
        {
            RaisePresence(clientId, null);
        }

        _remotePresence.Clear();
        _presenceDirty |= _localPresence is not null;
        TrySendInFlight();
        TrySendPresence();
    }

    private void AfterPendingChanged()
    {
        if (HasPendingLocked)
        {
            return;
        }

        if (_syncWaiters is { } waiters)
        {
            _syncWaiters = null;
            foreach (TaskCompletionSource waiter in waiters)
            {
                waiter.TrySetResult();
            }
        }

        TrySendPresence();
    }

    // ---- snapshot recovery

    private void BeginResync(InflightFate fate, string why)
    {
        Log.Resync(_client.Logger, DocId, why);
        _needsSnapshot = true;
        // A rejected op stays rejected even if a later step of the same recovery knows less.
        _resyncFate = _resyncFate == InflightFate.Rejected && fate == InflightFate.Unknown ? InflightFate.Rejected : fate;
        _probeSnapshot = null;
        _probeQueue = null;
        Subscribe();
    }

    private void SendProbe()
    {
        if (_phase != Phase.Probing || _session is not { } session)
        {
            return;
        }

        session.TrySend(new ClientMessage
        {
            Submit = new Submit { DocId = DocId, ClientSeq = _inflightSeq, BaseVersion = _inflightSentBase, Op = _inflightSentBytes },
        });
    }

    private void ResolveProbe(bool included, bool upToDate)
    {
        Snapshot snapshot = _probeSnapshot!;
        List<SequencedOp> queued = _probeQueue!;
        _probeSnapshot = null;
        _probeQueue = null;
        if (!upToDate)
        {
            // The probe was sequenced just now, after the snapshot: a fresh snapshot holds it.
            BeginResync(InflightFate.Included, "the probed op was sequenced after the snapshot");
            return;
        }

        CompleteResync(snapshot, included ? InflightFate.Included : InflightFate.NotIncluded);
        if (_phase == Phase.Live && queued.Count > 0)
        {
            ApplyOps(queued);
        }
    }

    /// <summary>Rebases the surviving local edits onto <paramref name="snapshot"/> (docs/PROTOCOL.md section 7.3).</summary>
    private void CompleteResync(Snapshot snapshot, InflightFate fate)
    {
        TextClientState state = _state!;
        TextOp? inflight = state.InFlight;
        TextOp? buffer = state.Buffer;
        Rope basis = _serverText;
        TextOp? pending;
        if (fate == InflightFate.NotIncluded)
        {
            pending = inflight is { } f ? (buffer is { } b ? TextType.Compose(f, b) : f) : null;
        }
        else
        {
            basis = inflight is { } f ? TextType.Apply(basis, f) : basis;
            pending = buffer;
        }

        string target = snapshot.Text;
        TextOp rebased = TextOp.Empty;
        if (pending is { } p)
        {
            TextOp serverChanges = TextDiff.Between(basis.ToString(), target);
            rebased = TextType.Transform(p, serverChanges, TransformSide.Left);
        }

        Rope before = state.Snapshot;
        Rope text = Rope.FromString(target);
        state.Reset(text, snapshot.Version);
        _serverText = text;
        _needsSnapshot = false;
        _resyncFate = InflightFate.Unknown;
        _inflightSentClientId = null;
        _inflightSentGeneration = -1;
        _resendAfterCatchUp = false;
        _phase = Phase.Live;
        _retryAttempt = 0;
        if (!rebased.IsNoop)
        {
            state.ApplyLocal(rebased);
            _inflightSeq = _client.NextClientSeq();
        }

        TextOp change = TextDiff.Between(before.ToString(), state.Snapshot.ToString());
        MovePresences(change, remoteIsOwn: false, localIsOwn: false);
        var args = new DocumentChangedEventArgs(change, snapshot.Version, state.Snapshot, clientId: null, author: null, isResync: true);
        _client.Events.Post(() => Changed?.Invoke(this, args));
        AfterResubscribed();
        AfterPendingChanged();
    }

    // ---- presence

    private void TrySendPresence()
    {
        if (!_presenceDirty || _phase != Phase.Live || _session is not { } session || _state is not { HasPending: false } state)
        {
            return;
        }

        var update = new PresenceUpdate { DocId = DocId, BaseVersion = state.Version };
        if (_localPresence is { } local)
        {
            update.Selection = new Selection { Anchor = local.Anchor, Head = local.Head };
            update.UserData = local.UserData;
        }

        if (session.TrySend(new ClientMessage { Presence = update }))
        {
            _presenceDirty = false;
        }
    }

    /// <summary>Moves every known selection through an op just applied to the local text.</summary>
    private void MovePresences(TextOp op, bool remoteIsOwn, bool localIsOwn, string? author = null)
    {
        if (op.IsNoop)
        {
            return;
        }

        if (_localPresence is { } local)
        {
            _localPresence = local with
            {
                Anchor = TextType.TransformCursor(local.Anchor, op, localIsOwn),
                Head = TextType.TransformCursor(local.Head, op, localIsOwn),
            };
        }

        if (_remotePresence.Count == 0)
        {
            return;
        }

        foreach (RemotePresence presence in _remotePresence.Values.ToArray())
        {
            bool own = remoteIsOwn || presence.ClientId == author;
            RemotePresence moved = presence with
            {
                Anchor = TextType.TransformCursor(presence.Anchor, op, own),
                Head = TextType.TransformCursor(presence.Head, op, own),
            };
            if (moved != presence)
            {
                _remotePresence[presence.ClientId] = moved;
                RaisePresence(presence.ClientId, moved);
            }
        }
    }

    private void RaisePresence(string clientId, RemotePresence? presence)
    {
        var args = new PresenceChangedEventArgs(clientId, presence);
        _client.Events.Post(() => PresenceChanged?.Invoke(this, args));
    }

    // ---- helpers

    private static IEnumerable<TextOp> PendingOps(TextClientState state)
    {
        if (state.InFlight is { } inflight)
        {
            yield return inflight;
        }

        if (state.Buffer is { } buffer)
        {
            yield return buffer;
        }
    }

    private ByteString Encode(TextOp op)
    {
        _encodeBuffer.ResetWrittenCount();
        TextOpCodec.Encode(op, _encodeBuffer);
        return ByteString.CopyFrom(_encodeBuffer.WrittenSpan);
    }

    private void ScheduleRetry(Action action)
    {
        if (_session is not { } session)
        {
            return;
        }

        TimeSpan delay = _client.Options.Reconnect.GetDelay(Math.Min(++_retryAttempt, 30));
        long generation = _generation;
        _ = RetryAfterAsync(delay, session, generation, action);
    }

    private async Task RetryAfterAsync(TimeSpan delay, ClientSession session, long generation, Action action)
    {
        try
        {
            await Task.Delay(delay, session.EndedToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The connection ended: the next session replays everything that matters.
            return;
        }

        lock (_lock)
        {
            if (IsCurrent(session) && _generation == generation)
            {
                action();
            }
        }
    }

    private void FailOpen(Exception exception)
    {
        if (_opened.TrySetException(exception))
        {
            CloseLocked(exception);
            _client.RemoveDocument(this);
        }
    }

    private void CloseLocked(Exception reason)
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        _phase = Phase.Detached;
        _session = null;
        if (_opened.TrySetException(reason))
        {
            // Nobody awaits an open that was cancelled; observe the exception so it is not reported as unobserved.
            _ = _opened.Task.Exception;
        }

        if (_syncWaiters is { } waiters)
        {
            _syncWaiters = null;
            foreach (TaskCompletionSource waiter in waiters)
            {
                waiter.TrySetException(reason);
            }
        }
    }

    private sealed record LocalPresence(int Anchor, int Head, ByteString UserData);
}
