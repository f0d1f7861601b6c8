using System.Buffers;
using Collab.Client.Internal;
using Collab.Engine;
using Collab.Engine.Client;
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
    private OtClientState<Rope, TextOp>? _state;

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

    // The in-flight op's identity and last transmission. _inflightSeq is this client's global seq (OtClientState counts
    // per document; the wire seq must never repeat for the client id). _inflightSentClientId is null while it was never sent.
    private ulong _inflightSeq;
    private long _inflightStateSeq;
    private string? _inflightSentClientId;
    private bool _inflightSentOnSession;
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
    /// One of this client's ops is durable on the server: raised once per op, with the version it got.
    /// (An ack lost in a disconnect is recovered on resume, so every acknowledged op is reported exactly once.)
    /// </summary>
    public event EventHandler<OpAcknowledgedEventArgs>? Acknowledged;

    /// <summary>
    /// The server reported an error for this document. For a rejected submit (non-retryable) the op has been
    /// dropped and the document resyncs from a snapshot; <c>ALREADY_COMMITTED</c> is not a rejection (the op is in the
    /// server's document; the document resyncs keeping it). Retryable errors (the op's outcome may be unknown, as after
    /// <c>UNAVAILABLE</c>) are retried automatically with the same client seq, which the server deduplicates.
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
            OtClientState<Rope, TextOp> state = _state ?? throw new InvalidOperationException("The document is not open.");
            TextType.Validate(op, state.Snapshot.Length);
            if (op.IsNoop)
            {
                return;
            }

            if (_session?.Welcome.MaxOpBytes is > 0 and var maxOpBytes && TextOpCodec.GetEncodedLength(op) > maxOpBytes)
            {
                throw new ArgumentException($"The op encodes to more than the server's limit of {maxOpBytes} bytes; split it.", nameof(op));
            }

            state.ApplyLocal(op);
            MovePresences(op, remoteIsOwn: false, localIsOwn: true);
            AfterInflightMayHaveChanged();
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
            _inflightSentOnSession = false;
            _state?.OnReconnect();
            // A server that did not resume our id cannot deduplicate under the old one: the replica keeps recognising its
            // own ops by the old id through the catch-up, then moves to the new id (CheckCatchUp).
            _resendAfterCatchUp = _state is not null && _state.ClientId != session.Welcome.ClientId;
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
                _state = NewState(session.Welcome.ClientId, text, snapshot.Version);
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
            if (fate == InflightFate.Unknown && state.HasInflight && _inflightSentClientId == _session!.Welcome.ClientId)
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
            if (!IsCurrent(session) || _state is not { } state || !state.HasInflight || ack.ClientSeq != _inflightSeq)
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

            // Positions refer to the server text at presence.Version; move them through later server ops and our pending edits.
            int length = state.Snapshot.Length;
            int anchor = (int)Math.Clamp(presence.Selection.Anchor, 0, int.MaxValue);
            int head = (int)Math.Clamp(presence.Selection.Head, 0, int.MaxValue);
            if (state.TryTransformRemoteCursor(presence.Version, anchor, presence.ClientId, out int localAnchor)
                && state.TryTransformRemoteCursor(presence.Version, head, presence.ClientId, out int localHead))
            {
                anchor = localAnchor;
                head = localHead;
            }

            anchor = Math.Min(anchor, length);
            head = Math.Min(head, length);

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
                    // ALREADY_COMMITTED: committed long before (the log was pruned past it), so the snapshot holds it.
                    ResolveProbe(included: error.Code == ErrorCode.AlreadyCommitted, upToDate: true);
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

            if (error.ClientSeq != 0 && error.ClientSeq == _inflightSeq && _state is { HasInflight: true } && _phase == Phase.Live)
            {
                OnSubmitError(error);
                return;
            }

            if (error.Code == ErrorCode.Forbidden && requestId == 0 && error.ClientSeq == 0)
            {
                // Unsolicited: the server ended the subscription because a re-authentication took away the
                // right to read this document. Resubscribing would only be refused again.
                CloseLocked(new CollabServerException(error.Code, error.Message, error.Retryable, DocId));
                _client.RemoveDocument(this);
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
                _inflightSentOnSession = false;
                _state!.OnReconnect();
                TrySendInFlight();
            });
            return;
        }

        // The server checks deduplication before the base version, so these mean the op was not sequenced.
        if (error.Code is ErrorCode.VersionTooOld or ErrorCode.VersionFromFuture)
        {
            BeginResync(InflightFate.NotIncluded, $"submit refused with {error.Code}");
        }
        else if (error.Code == ErrorCode.AlreadyCommitted)
        {
            // Not a rejection: the op is in the server's document at a version the log no longer names (§7.3, "f is in T").
            BeginResync(InflightFate.Included, $"submit {error.ClientSeq} was committed earlier (ALREADY_COMMITTED)");
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
        OtClientState<Rope, TextOp> state = _state!;
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

            if (state.HasInflight && _inflightSentClientId is not null && op.ClientId == _inflightSentClientId && op.ClientSeq == _inflightSeq)
            {
                // Our own op, sequenced before the connection dropped: this is its Ack.
                Acknowledge(op.Version);
                continue;
            }

            if (op.ClientId == state.ClientId)
            {
                // Our id on an op that is not ours in flight: the id is shared with another replica; ours cannot be trusted.
                BeginResync(InflightFate.Unknown, $"op {op.Version} carries this client's id but is not its op in flight");
                return false;
            }

            TextOp remote;
            TextOp applied;
            try
            {
                remote = TextOpCodec.Decode(op.Op.Span);
                TextType.Validate(remote, _serverText.Length);
                state.OnRemoteOp(op.Version, remote, op.ClientId, (long)op.ClientSeq, out applied);
            }
            catch (OtException ex)
            {
                // Undecodable or does not fit: the replica cannot follow the stream any more.
                BeginResync(InflightFate.Unknown, $"op {op.Version} cannot be applied: {ex.Message}");
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
        var acknowledged = new OpAcknowledgedEventArgs(_inflightSentClientId ?? _client.ClientId, _inflightSeq, version);
        _client.Events.Post(() => Acknowledged?.Invoke(this, acknowledged));
        OtClientState<Rope, TextOp> state = _state!;
        _serverText = TextType.Apply(_serverText, PeekInFlight());
        _retryAttempt = 0;
        state.OnAck(version);
        AfterInflightMayHaveChanged();
        AfterPendingChanged();
    }

    /// <summary>Gives a new in-flight op (a local edit, or the buffer promoted by an ack) its global seq and sends it.</summary>
    private void AfterInflightMayHaveChanged()
    {
        OtClientState<Rope, TextOp> state = _state!;
        if (!state.HasInflight || state.InflightSeq == _inflightStateSeq)
        {
            return;
        }

        _inflightStateSeq = state.InflightSeq;
        _inflightSeq = _client.NextClientSeq();
        _inflightSentClientId = null;
        _inflightSentOnSession = false;
        TrySendInFlight();
    }

    /// <summary>Sends the in-flight op unless it already went out on this connection or the subscription is not live.</summary>
    private void TrySendInFlight()
    {
        if (_phase != Phase.Live || _session is not { } session || _resendAfterCatchUp
            || _state is not { } state || !state.TryTakeOutgoing(out OutgoingOp<TextOp> outgoing))
        {
            return;
        }

        ByteString bytes = Encode(outgoing.Op);
        var submit = new Submit { DocId = DocId, ClientSeq = _inflightSeq, BaseVersion = outgoing.BaseVersion, Op = bytes };
        if (session.TrySend(new ClientMessage { Submit = submit }))
        {
            _inflightSentClientId = session.Welcome.ClientId;
            _inflightSentOnSession = true;
            _inflightSentBase = outgoing.BaseVersion;
            _inflightSentBytes = bytes;
        }
    }

    /// <summary>
    /// The in-flight op as it stands (transformed past every server op since it was made). OtClientState hands it out only
    /// through TryTakeOutgoing, which marks it sent; re-arm it when it has not gone out on this connection yet.
    /// </summary>
    private TextOp PeekInFlight()
    {
        OtClientState<Rope, TextOp> state = _state!;
        state.OnReconnect();
        state.TryTakeOutgoing(out OutgoingOp<TextOp> outgoing);
        if (!_inflightSentOnSession)
        {
            state.OnReconnect();
        }

        return outgoing.Op;
    }

    private OtClientState<Rope, TextOp> NewState(string clientId, Rope text, long version)
    {
        _inflightStateSeq = 0;
        return new OtClientState<Rope, TextOp>(TextType.Instance, clientId, text, version);
    }

    /// <summary>
    /// Replaces the replica's state by one under <paramref name="clientId"/> at (<paramref name="text"/>, <paramref name="version"/>)
    /// with <paramref name="pending"/> re-applied as a local edit (it becomes the in-flight op, with a new seq).
    /// </summary>
    private void RebuildState(string clientId, Rope text, long version, TextOp pending)
    {
        OtClientState<Rope, TextOp> state = NewState(clientId, text, version);
        _state = state;
        _serverText = text;
        _inflightSentClientId = null;
        _inflightSentOnSession = false;
        if (!pending.IsNoop)
        {
            state.ApplyLocal(pending);
        }

        AfterInflightMayHaveChanged();
    }

    /// <summary>All pending local edits as one op on top of the server text (in flight composed with the buffer).</summary>
    private TextOp PendingAsOneOp()
    {
        OtClientState<Rope, TextOp> state = _state!;
        if (!state.HasInflight)
        {
            return TextOp.Empty;
        }

        TextOp inflight = PeekInFlight();
        return state.HasBuffer ? TextType.Compose(inflight, BufferOp(inflight)) : inflight;
    }

    /// <summary>
    /// The buffered edits, as the change from (server text + in-flight op) to the local text. OtClientState does not hand
    /// the buffer out; the diff has the same effect, which is all a rebase needs.
    /// </summary>
    private TextOp BufferOp(TextOp inflight) => TextDiff.Between(TextType.Apply(_serverText, inflight).ToString(), _state!.Snapshot.ToString());

    /// <summary>After catch-up under a new client id: the old op is not in the history, so move the pending edits to the new id.</summary>
    private void CheckCatchUp()
    {
        if (!_resendAfterCatchUp || _phase != Phase.Live || _session is not { } session || _state!.Version < _catchUpTarget)
        {
            return;
        }

        _resendAfterCatchUp = false;
        RebuildState(session.Welcome.ClientId, _serverText, _state.Version, PendingAsOneOp());
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
        OtClientState<Rope, TextOp> state = _state!;
        Rope before = state.Snapshot;
        Rope basis = _serverText;
        TextOp pending = TextOp.Empty;
        if (state.HasInflight)
        {
            TextOp inflight = PeekInFlight();
            TextOp buffer = state.HasBuffer ? BufferOp(inflight) : TextOp.Empty;
            switch (fate)
            {
                case InflightFate.NotIncluded:
                    // Never sequenced: everything pending is still to be applied.
                    pending = buffer.IsNoop ? inflight : TextType.Compose(inflight, buffer);
                    break;
                case InflightFate.Rejected:
                    // Dropped for good: take it out of the buffer's context exactly (its inverse), keep the buffer.
                    pending = buffer.IsNoop ? TextOp.Empty : TextType.Transform(buffer, TextType.Invert(inflight, _serverText), TransformSide.Left);
                    break;
                default:
                    // Already in the snapshot: only the buffered edits are new.
                    basis = TextType.Apply(basis, inflight);
                    pending = buffer;
                    break;
            }
        }

        string target = snapshot.Text;
        TextOp rebased = pending.IsNoop
            ? TextOp.Empty
            : TextType.Transform(pending, TextDiff.Between(basis.ToString(), target), TransformSide.Left);

        _needsSnapshot = false;
        _resyncFate = InflightFate.Unknown;
        _resendAfterCatchUp = false;
        _phase = Phase.Live;
        _retryAttempt = 0;
        RebuildState(_session!.Welcome.ClientId, Rope.FromString(target), snapshot.Version, rebased);

        Rope after = _state!.Snapshot;
        TextOp change = TextDiff.Between(before.ToString(), after.ToString());
        MovePresences(change, remoteIsOwn: false, localIsOwn: false);
        var args = new DocumentChangedEventArgs(change, snapshot.Version, after, clientId: null, author: null, isResync: true);
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
