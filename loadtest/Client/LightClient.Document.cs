using System.Text;
using Collab.LoadTest.Metrics;

namespace Collab.LoadTest.Client;

/// <summary>
/// What the client knows of its document, whatever the protocol: sequenced ops (version, gap and op-hash checks,
/// broadcast latency, the replica), the client id, the snapshot, refused submits and going live. The protocol files
/// (<c>LightClient.Collab.cs</c>, <c>LightClient.ShareDb.cs</c>) decode messages into these calls.
/// </summary>
internal sealed partial class LightClient
{
    private void HandleMessage(ReadOnlySpan<byte> message, int generation, long now)
    {
        Interlocked.Increment(ref _ctx.Counters.MessagesReceived);
        if (_shareDb)
        {
            HandleShareDbMessage(message, generation, now);
        }
        else
        {
            HandleCollabMessage(message, generation, now);
        }
    }

    private void SendHelloLocked()
    {
        if (_shareDb)
        {
            SendShareDbHandshakeLocked();
        }
        else
        {
            SendCollabHelloLocked();
        }
    }

    private void OnSequencedOpLocked(long version, ReadOnlySpan<byte> clientId, ulong clientSeq, WireOp op, long now)
    {
        if (version <= _version)
        {
            if (_shareDb)
            {
                // ShareDB sends ops a client may already have (a subscription's stream replays what its snapshot
                // holds; a submit's reply repeats ops the broadcast brought): its client ignores them (doc.js, _handleOp).
                Interlocked.Increment(ref _ctx.Counters.DuplicateDeliveries);
                return;
            }

            _ctx.Errors.Add("duplicate-delivery", $"version {version} arrived again (client at {_version})");
            return;
        }

        if (version != _version + 1)
        {
            if (_shareDb)
            {
                // ShareDB's client drops an op from the future and fetches the ops it missed (doc.js, _handleOp).
                RequestMissingOpsLocked();
                return;
            }

            _ctx.Errors.Add("gap", $"client at version {_version} received version {version}");
            Fault ??= $"gap before version {version}";
        }

        if (clientId.SequenceEqual(ClientIdUtf8))
        {
            // Our own op from an earlier connection, sequenced after it dropped: it is the ack (PROTOCOL.md 7, step 3).
            if (_pending.TryPeek(out PendingOp front) && front.Seq == clientSeq)
            {
                CompleteFrontLocked(version, now, op);
            }
            else
            {
                _ctx.Errors.Add("unexpected-own-op", $"own seq {clientSeq} at version {version} matches no pending op");
                _version = version;
                _length += op.LengthDelta();
            }

            return;
        }

        _version = version;
        _length += op.LengthDelta();
        foreach (PendingOp pending in _pending)
        {
            // Sequenced after every pending op's base: the server will transform them against it (rich-text; text
            // inserts need no tracking, their length is their token's).
            pending.Own?.TransformAgainst(op);
        }

        if (Replica is not null)
        {
            try
            {
                Replica.ApplySequenced(version, op, _pending.TryPeek(out PendingOp oldest) ? oldest.BaseVersion : -1);
            }
            catch (Collab.Engine.OtException ex)
            {
                ReplicaFailed(ex);
            }
        }

        ulong hash = ClientDirectory.Hash(op.Bytes) ^ (clientSeq * 0x9E3779B97F4A7C15UL) ^ ClientDirectory.Hash(clientId);
        if (!Doc.VerifyOp(version, hash))
        {
            _ctx.Errors.Add("op-mismatch", $"version {version} differs between clients of {Doc.Id}");
            Fault ??= $"op mismatch at version {version}";
        }

        if (Role == ClientRole.Checker)
        {
            return; // Not one of the receivers an op was registered for (it joins after the run).
        }

        if (!_ctx.Directory.TryFind(clientId, out LightClient sender) || sender.Track is null)
        {
            return; // An op from outside this run (another tool, or the run's setup): nothing to measure.
        }

        long scheduled = sender.Track.Deliver(clientSeq, out bool extra);
        if (extra)
        {
            _ctx.Errors.Add("extra-delivery", $"op {clientSeq} of a client reached more receivers than subscribed");
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

    /// <summary>The server answered Hello (ShareDB: the handshake) with <paramref name="clientId"/>; subscribe next.</summary>
    private void OnClientIdLocked(string clientId)
    {
        if (_state != ClientState.AwaitingWelcome)
        {
            _ctx.Errors.Add("unexpected-welcome");
            return;
        }

        if (ClientId is not null && !string.Equals(ClientId, clientId, StringComparison.Ordinal))
        {
            // The server did not resume our id: unacknowledged ops can no longer be deduplicated. The generator never
            // asks for this; it would be a server bug.
            _ctx.Errors.Add("resume-refused", $"resumed as '{clientId}' instead of '{ClientId}'");
        }

        ClientId = clientId;
        ClientIdUtf8 = Encoding.UTF8.GetBytes(clientId);
        _state = ClientState.AwaitingSubscription;
        if (_shareDb)
        {
            _clientIdJson = ShareDbWire.Escape(clientId);
            SendShareDbSubscribeLocked();
        }
        else
        {
            SendCollabSubscribeLocked();
        }
    }

    /// <summary>The document as the server has it at <paramref name="version"/>: the first subscription's answer.</summary>
    private void OnSnapshotLocked(long version, string text, ReadOnlySpan<byte> content, long now)
    {
        if (_state != ClientState.AwaitingSubscription || _hasDocument)
        {
            _ctx.Errors.Add("unexpected-snapshot");
            return;
        }

        _hasDocument = true;
        _version = version;
        _length = _model.SnapshotLength(text, content);
        Replica?.Reset(text, content);
        if (Role == ClientRole.Checker)
        {
            SnapshotText = text;
            SnapshotContent = content.ToArray();
        }

        GoLiveLocked(now);
    }

    /// <summary>
    /// The server refused op <paramref name="clientSeq"/>: it was not sequenced (OVERLOADED, UNAVAILABLE, a ShareDB
    /// rejection, ...). A load generator does not retry it (that would change the offered load): it is dropped,
    /// counted under its error code by the caller, and never acknowledged.
    /// </summary>
    private void OnSubmitRejectedLocked(ulong clientSeq)
    {
        int count = _pending.Count;
        for (int i = 0; i < count; i++)
        {
            PendingOp op = _pending.Dequeue();
            if (op.Seq == clientSeq)
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

    private void ReplicaFailed(Exception ex)
    {
        _ctx.Errors.Add("replica", ex.Message);
        Fault ??= "replica failed: " + ex.Message;
        Replica = null;
    }
}
