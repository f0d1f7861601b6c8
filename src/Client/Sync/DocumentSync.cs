using System.Buffers;
using Collab.Client.Internal;
using Collab.Engine.Client;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Client.Sync;

/// <summary>
/// The client side of one open document, for any OT type: the replica (<see cref="OtClientState{TSnapshot, TOp}"/>), the
/// subscription's seven-phase state machine, snapshot recovery and presence (docs/PROTOCOL.md sections 5 to 8). The
/// public documents (<see cref="CollabDocument"/>, <see cref="CollabRichDocument"/>) are thin typed faces of it.
/// </summary>
/// <remarks>
/// Split by concern: this file holds the state, the local API and the connection hooks;
/// <c>DocumentSync.Messages.cs</c> the server messages and the subscription phases, <c>DocumentSync.InFlight.cs</c> the op in
/// flight and its global seq, <c>DocumentSync.Recovery.cs</c> the snapshot resync and probe, <c>DocumentSync.Presence.cs</c>
/// selections. Every member runs under <see cref="Gate"/>.
/// </remarks>
internal sealed partial class DocumentSync<TSnapshot, TOp> : IDocumentSync, IUndoTarget<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    private readonly CollabClient _client;
    private readonly DocumentKind<TSnapshot, TOp> _kind;
    private readonly object _owner;
    private readonly TaskCompletionSource _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ArrayBufferWriter<byte> _encodeBuffer = new(256);
    private readonly Dictionary<string, RemotePresence> _remotePresence = new(StringComparer.Ordinal);
    private IDocumentEvents<TSnapshot, TOp>? _events;
    private IDocumentObserver<TSnapshot, TOp>? _observer;
    private List<TaskCompletionSource>? _syncWaiters;
    private OtClientState<TSnapshot, TOp>? _state;

    // The server's document at _state.Version (local document minus pending ops): the base for snapshot rebases.
    private TSnapshot _serverDocument;

    private ServerLink? _session;
    private long _generation;
    private Phase _phase = Phase.Detached;
    private bool _closed;
    private ulong _subscribeRequestId;
    private ulong _fetchRequestId;
    private long _fetchFromVersion;
    private long _catchUpTarget;
    private int _retryAttempt;

    public DocumentSync(CollabClient client, string docId, DocumentKind<TSnapshot, TOp> kind, object owner)
    {
        _client = client;
        _kind = kind;
        _owner = owner;
        _serverDocument = kind.Type.Empty;
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

    public string DocId { get; }

    /// <summary>The lock every member takes; the undo manager takes it too, to undo atomically.</summary>
    public Lock Gate { get; } = new();

    public Task WhenOpened => _opened.Task;

    public DocumentKind<TSnapshot, TOp> Kind => _kind;

    public long Version
    {
        get
        {
            lock (Gate)
            {
                return _state?.Version ?? 0;
            }
        }
    }

    public TSnapshot Snapshot
    {
        get
        {
            lock (Gate)
            {
                return SnapshotLocked;
            }
        }
    }

    /// <summary>The local document; the caller holds <see cref="Gate"/>.</summary>
    public TSnapshot SnapshotLocked => _state is { } state ? state.Snapshot : _kind.Type.Empty;

    public bool HasPendingOps
    {
        get
        {
            lock (Gate)
            {
                return HasPendingLocked;
            }
        }
    }

    private bool HasPendingLocked => _state is { HasPending: true };

    /// <summary>Connects the public document's events (once, before the document is handed out).</summary>
    public void Attach(IDocumentEvents<TSnapshot, TOp> events) => _events = events;

    /// <summary>Sets the observer of every applied change (the undo manager); null removes it. Caller holds <see cref="Gate"/>.</summary>
    public void SetObserver(IDocumentObserver<TSnapshot, TOp>? observer)
    {
        if (observer is not null && _observer is not null && !ReferenceEquals(observer, _observer))
        {
            throw new InvalidOperationException("The document already has an undo manager.");
        }

        _observer = observer;
    }

    /// <summary>Applies a local edit and queues it for the server (docs on <see cref="CollabDocument.Submit"/>).</summary>
    public void Submit(TOp op, EditOrigin origin = EditOrigin.User)
    {
        lock (Gate)
        {
            SubmitLocked(op, origin);
        }
    }

    /// <summary><see cref="Submit"/> for a caller holding <see cref="Gate"/>.</summary>
    public void SubmitLocked(TOp op, EditOrigin origin)
    {
        ObjectDisposedException.ThrowIf(_closed, _owner);
        OtClientState<TSnapshot, TOp> state = _state ?? throw new InvalidOperationException("The document is not open.");
        TSnapshot before = state.Snapshot;
        _kind.Validate(op, before);
        if (_kind.IsNoop(op))
        {
            return;
        }

        if (_session?.Limits.MaxOpBytes is { } maxOpBytes && _kind.GetEncodedLength(op) > maxOpBytes)
        {
            throw new ArgumentException($"The op encodes to more than the server's limit of {maxOpBytes} bytes; split it.", nameof(op));
        }

        state.ApplyLocal(op);
        _observer?.OnLocalEdit(op, before, origin);
        MovePresences(op, remoteIsOwn: false, localIsOwn: true);
        AfterInflightMayHaveChanged();
    }

    public Task WhenSyncedAsync(CancellationToken cancellationToken)
    {
        lock (Gate)
        {
            if (_closed)
            {
                return Task.FromException(new ObjectDisposedException(_owner.GetType().Name));
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

    public ValueTask DisposeAsync()
    {
        lock (Gate)
        {
            if (_closed)
            {
                return ValueTask.CompletedTask;
            }

            _session?.TrySend(new ClientMessage { RequestId = _client.NextRequestId(), Unsubscribe = new Unsubscribe { DocId = DocId } });
            CloseLocked(new ObjectDisposedException(_owner.GetType().Name));
        }

        _client.RemoveDocument(this);
        return ValueTask.CompletedTask;
    }

    // ------------------------------------------------------------------ connection hooks (receive loop / run loop)

    public void OnSessionStarted(ServerLink session, long generation)
    {
        lock (Gate)
        {
            if (_closed || generation <= _generation)
            {
                return;
            }

            _session = session;
            _generation = generation;
            _maxPresenceBytes = session.Limits.MaxPresenceBytes;
            _retryAttempt = 0;
            _inflightSentOnSession = false;
            _state?.OnReconnect();
            // A server that did not resume our id cannot deduplicate under the old one: the replica keeps recognising its
            // own ops by the old id through the catch-up, then moves to the new id (CheckCatchUp).
            _resendAfterCatchUp = _state is not null && _state.ClientId != session.Welcome.ClientId;
            Subscribe();
        }
    }

    public void OnSessionEnded(ServerLink session)
    {
        lock (Gate)
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

    public void OnClientClosed()
    {
        lock (Gate)
        {
            CloseLocked(new CollabConnectionException("The client is closed."));
        }
    }

    // ------------------------------------------------------------------ helpers (all called under Gate)

    private bool IsCurrent(ServerLink session) => !_closed && _session == session;

    private ByteString Encode(TOp op)
    {
        _encodeBuffer.ResetWrittenCount();
        _kind.Encode(op, _encodeBuffer);
        return ByteString.CopyFrom(_encodeBuffer.WrittenSpan);
    }

    private void Post(Action<IDocumentEvents<TSnapshot, TOp>> raise)
    {
        if (_events is { } events)
        {
            _client.Events.Post(() => raise(events));
        }
    }

    private void ScheduleRetry(Action action)
    {
        if (_session is not { } session)
        {
            return;
        }

        TimeSpan delay = _client.Options.Reconnect.GetDelay(Math.Min(++_retryAttempt, 30));
        long generation = _generation;
        RetryAfterAsync(delay, session, generation, action).Forget(_client.Logger, "retry after a delay");
    }

    private async Task RetryAfterAsync(TimeSpan delay, ServerLink session, long generation, Action action)
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

        lock (Gate)
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
}
