using System.Text;
using Collab.LoadTest.Metrics;
using Collab.Protocol.V1;

namespace Collab.LoadTest.Client;

/// <summary>Incoming protocol messages: sequenced ops (version, gap and op-hash checks, broadcast latency), Welcome, Snapshot, Subscribed, errors, going live.</summary>
internal sealed partial class LightClient
{
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
}
