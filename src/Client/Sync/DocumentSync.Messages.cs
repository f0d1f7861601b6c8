using Collab.Client.Internal;
using Collab.Engine;
using Collab.Engine.Client;
using Collab.Protocol.V1;

namespace Collab.Client.Sync;

/// <summary>Server messages and the subscription's phases: subscribe, resume, fetch, live ops, acks, errors.</summary>
internal sealed partial class DocumentSync<TSnapshot, TOp>
{
    public void OnSnapshot(ServerLink session, ulong requestId, Snapshot snapshot)
    {
        lock (Gate)
        {
            if (!IsCurrent(session) || requestId != _subscribeRequestId)
            {
                return;
            }

            if (snapshot.Type.Length > 0 && snapshot.Type != _kind.TypeName)
            {
                RefuseType(snapshot.Type);
                return;
            }

            TSnapshot document;
            try
            {
                document = _kind.ReadSnapshot(snapshot);
            }
            catch (OtException ex)
            {
                // A snapshot this client cannot read: nothing can be synced.
                FailOpen(new CollabConnectionException($"The snapshot of document '{DocId}' does not decode: {ex.Message}", ex));
                return;
            }

            if (_phase == Phase.Opening)
            {
                _state = NewState(session.Welcome.ClientId, document, snapshot.Version);
                _serverDocument = document;
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
                _probeSnapshot = (document, snapshot.Version);
                _probeQueue = [];
                SendProbe();
                return;
            }

            CompleteResync(document, snapshot.Version, fate == InflightFate.Unknown ? InflightFate.NotIncluded : fate);
        }
    }

    public void OnSubscribed(ServerLink session, ulong requestId, Subscribed subscribed)
    {
        lock (Gate)
        {
            if (!IsCurrent(session) || requestId != _subscribeRequestId || _phase != Phase.Resuming)
            {
                return;
            }

            if (subscribed.Type.Length > 0 && subscribed.Type != _kind.TypeName)
            {
                RefuseType(subscribed.Type);
                return;
            }

            _phase = Phase.Live;
            _retryAttempt = 0;
            _catchUpTarget = subscribed.CurrentVersion;
            AfterResubscribed();
            CheckCatchUp();
        }
    }

    public void OnOps(ServerLink session, ulong requestId, Ops ops)
    {
        lock (Gate)
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

    public void OnAck(ServerLink session, Ack ack)
    {
        lock (Gate)
        {
            if (!IsCurrent(session) || _state is not { } state || !state.HasInflight || ack.ClientSeq != (ulong)_inflightSeq)
            {
                // Not the in-flight op: the duplicate Ack of a resend whose op was already recognised in the ops.
                return;
            }

            if (_phase == Phase.Probing)
            {
                ResolveProbe(included: true, upToDate: ack.Duplicate && ack.Version <= _probeSnapshot!.Value.Version);
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

    public void OnError(ServerLink session, ulong requestId, Error error, CollabErrorEventArgs args)
    {
        Post(events => events.RaiseError(args));
        lock (Gate)
        {
            if (!IsCurrent(session))
            {
                return;
            }

            if (_phase == Phase.Probing && error.ClientSeq != 0 && error.ClientSeq == (ulong)_inflightSeq)
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

            if (error.ClientSeq != 0 && error.ClientSeq == (ulong)_inflightSeq && _state is { HasInflight: true } && _phase == Phase.Live)
            {
                OnSubmitError(error);
                return;
            }

            if (error.Code is ErrorCode.Forbidden or ErrorCode.DocDeleted && requestId == 0 && error.ClientSeq == 0)
            {
                // Unsolicited: the server ended the subscription (a re-authentication took away the right to read this
                // document, or it was deleted). Resubscribing would only be refused again.
                CloseLocked(ErrorCodes.ToException(error, DocId));
                _client.RemoveDocument(this);
                return;
            }

            if (error.Code == ErrorCode.NotSubscribed && _phase == Phase.Live)
            {
                Subscribe();
            }
        }
    }

    /// <summary>Subscribes on the current session in the way the replica's state calls for.</summary>
    private void Subscribe()
    {
        if (_session is not { } session)
        {
            return;
        }

        var subscribe = new Subscribe { DocId = DocId, Type = _kind.TypeName };
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

    /// <summary>The document has a type this document object does not implement: it can never be followed.</summary>
    private void RefuseType(string actualType)
    {
        var exception = new CollabTypeMismatchException(DocId, _kind.TypeName, actualType, null);
        if (_phase == Phase.Opening)
        {
            FailOpen(exception);
            return;
        }

        CloseLocked(exception);
        _client.RemoveDocument(this);
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
                FailOpen(ErrorCodes.ToException(error, DocId, _kind.TypeName));
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
                CloseLocked(ErrorCodes.ToException(error, DocId, _kind.TypeName));
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
        OtClientState<TSnapshot, TOp> state = _state!;
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

            if (state.HasInflight && _inflightSentClientId is not null && op.ClientId == _inflightSentClientId && op.ClientSeq == (ulong)_inflightSeq)
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

            TOp remote;
            TOp applied;
            try
            {
                remote = _kind.Decode(op.Op.Span);
                _kind.Validate(remote, _serverDocument);
                state.OnRemoteOp(op.Version, remote, op.ClientId, (long)op.ClientSeq, out applied!);
            }
            catch (OtException ex)
            {
                // Undecodable or does not fit: the replica cannot follow the stream any more.
                BeginResync(InflightFate.Unknown, $"op {op.Version} cannot be applied: {ex.Message}");
                return false;
            }

            _serverDocument = _kind.Apply(_serverDocument, remote);
            _observer?.OnRemoteChange(applied);
            MovePresences(applied, remoteIsOwn: false, localIsOwn: false, author: op.ClientId);
            TSnapshot snapshot = state.Snapshot;
            long version = op.Version;
            string clientId = op.ClientId;
            string? author = op.Author.Length == 0 ? null : op.Author;
            Post(events => events.RaiseChanged(applied, version, snapshot, clientId, author, isResync: false));
        }

        return true;
    }
}
