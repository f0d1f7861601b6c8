using System.Text;

namespace Collab.LoadTest.Client;

/// <summary>
/// ShareDB's wire protocol (<see cref="ShareDbWire"/>), spoken the way its client does (sharedb/lib/client):
/// handshake <c>hs</c> (the id of an earlier connection resumes it as <c>src</c>), subscribe <c>s</c> (a snapshot the
/// first time, the ops since the last known version afterwards), one op <c>op</c> in flight with <c>src</c>,
/// <c>seq</c> and the version <c>v</c> it was made against, acknowledged by an <c>op</c> without a body; ops already
/// held are ignored and a gap is fetched (<c>f</c>), as its client does. ShareDB numbers an op by the version it
/// applies to; this client counts versions as Collab does (an op's version is the document's version after it), so
/// an op with <c>v</c> = k is version k + 1 here and the rest of the client is shared.
/// </summary>
internal sealed partial class LightClient
{
    private void HandleShareDbMessage(ReadOnlySpan<byte> json, int generation, long now)
    {
        ShareDbMessage message = ShareDbWire.Parse(json);
        switch (message.Action)
        {
            case ShareDbAction.Op:
                lock (_gate)
                {
                    if (generation == _generation)
                    {
                        OnShareDbOpLocked(message, now);
                    }
                }

                break;
            case ShareDbAction.PingPong when _ctx.Settings.SubmitMode == SubmitMode.Ping:
                long scheduled;
                lock (_gate)
                {
                    if (generation != _generation || !_pingSchedule!.TryDequeue(out scheduled))
                    {
                        return;
                    }
                }

                OnPong(scheduled, now);
                break;
            case ShareDbAction.Init:
                // The legacy greeting; this client sent its handshake on connect, as ShareDB's does.
                if (message.Protocol != ShareDbWire.ProtocolMajor)
                {
                    throw new WireFormatException($"ShareDB protocol {message.Protocol}, this client speaks {ShareDbWire.ProtocolMajor}");
                }

                break;
            case ShareDbAction.Handshake or ShareDbAction.Subscribe or ShareDbAction.Fetch:
                lock (_gate)
                {
                    if (generation == _generation)
                    {
                        OnShareDbReplyLocked(message, now);
                    }
                }

                break;
            default:
                break;
        }
    }

    private void OnShareDbReplyLocked(in ShareDbMessage message, long now)
    {
        if (message.ErrorCode is { } code)
        {
            _ctx.Errors.Add("sharedb:" + code, message.ErrorMessage);
            if (_state is ClientState.AwaitingWelcome or ClientState.AwaitingSubscription)
            {
                _ready?.TrySetException(new ServerRefusedException($"{code}: {message.ErrorMessage}"));
            }

            _fetching &= message.Action != ShareDbAction.Fetch;
            return;
        }

        switch (message.Action)
        {
            case ShareDbAction.Handshake:
                if (message.Id is null)
                {
                    throw new WireFormatException("a ShareDB handshake reply without a client id");
                }

                OnClientIdLocked(message.Id);
                break;
            case ShareDbAction.Subscribe when message.HasSnapshot:
                if (message.SnapshotType is not null && message.SnapshotType != ShareDbWire.TextUnicodeUri)
                {
                    throw new WireFormatException($"document {Doc.Id} has type '{message.SnapshotType}', not text-unicode");
                }

                // A document nobody created yet has version 0 and no type (ShareDB creates it with the first op).
                OnSnapshotLocked(message.SnapshotVersion, message.SnapshotText ?? string.Empty, default, now);
                break;
            case ShareDbAction.Subscribe:
                // Subscribed from a known version: the ops since it came first (agent.js, _subscribe), so caught up.
                if (_state == ClientState.AwaitingSubscription)
                {
                    GoLiveLocked(now);
                }

                break;
            default:
                _fetching = false; // the fetched ops came before this reply
                break;
        }
    }

    private void OnShareDbOpLocked(in ShareDbMessage message, long now)
    {
        if (message.ErrorCode is { } code)
        {
            // The submit was refused (the server echoes the request with the error): not sequenced, never acknowledged.
            _ctx.Errors.Add("sharedb:" + code, message.ErrorMessage);
            if (message.Seq != 0 && (message.Src.IsEmpty || message.Src.SequenceEqual(ClientIdUtf8)))
            {
                OnSubmitRejectedLocked(message.Seq);
            }

            return;
        }

        if (!message.DocId.SequenceEqual(Doc.IdUtf8) || !message.Collection.SequenceEqual(ShareDbWire.Collection))
        {
            _ctx.Errors.Add("wrong-document", "an op for a document this connection did not subscribe");
            return;
        }

        if (message.Version < 0)
        {
            throw new WireFormatException("a ShareDB op without a version");
        }

        long version = message.Version + 1;
        switch (message.Body)
        {
            case ShareDbOpBody.None:
                if (!message.Src.SequenceEqual(ClientIdUtf8))
                {
                    _ctx.Errors.Add("unexpected-ack", "an op without a body from another client");
                    return;
                }

                OnAckLocked(message.Seq, version, now);
                break;
            case ShareDbOpBody.Edit:
                OnSequencedOpLocked(version, message.Src, message.Seq, new WireOp(message.OpJson, WireOpFormat.TextUnicodeJson), now);
                break;
            case ShareDbOpBody.Create:
                OnSequencedOpLocked(version, message.Src, message.Seq, new WireOp(message.OpJson, WireOpFormat.ShareDbCreate), now);
                break;
            default:
                _ctx.Errors.Add("unexpected-delete", $"document {Doc.Id} was deleted at version {version}");
                Fault ??= $"deleted at version {version}";
                break;
        }
    }

    /// <summary>An op from beyond the next version arrived: fetch the ops since the client's version (once at a time).</summary>
    private void RequestMissingOpsLocked()
    {
        if (_fetching)
        {
            return;
        }

        _fetching = true;
        Interlocked.Increment(ref _ctx.Counters.CatchUpFetches);
        SendShareDbDocRequestLocked(ShareDbAction.Fetch, _version);
    }

    private void SendShareDbHandshakeLocked()
    {
        EnsureScratch(64 + (2 * _clientIdJson.Length));
        int length = ShareDbWire.WriteHandshake(_scratch.AsSpan(HeaderGap), _clientIdJson);
        SendPreparedLocked(WsOpcode.Text, length);
    }

    private void SendShareDbSubscribeLocked() => SendShareDbDocRequestLocked(ShareDbAction.Subscribe, _hasDocument ? _version : -1);

    private void SendShareDbDocRequestLocked(ShareDbAction action, long version)
    {
        EnsureScratch(64 + Doc.IdJson.Length);
        int length = ShareDbWire.WriteDocRequest(_scratch.AsSpan(HeaderGap), action, ShareDbWire.Collection, Doc.IdJson, version);
        SendPreparedLocked(WsOpcode.Text, length);
    }

    /// <summary>An op is sent with the version it was made against; ShareDB transforms it from there, as Collab does with base_version.</summary>
    private void SendShareDbSubmitLocked(PendingOp op, ReadOnlySpan<byte> token)
    {
        EnsureScratch(ShareDbWire.InsertOpOverhead + Doc.IdJson.Length + _clientIdJson.Length + (6 * token.Length));
        Span<byte> destination = _scratch.AsSpan(HeaderGap);
        int length = op.Create
            ? ShareDbWire.WriteCreate(destination, ShareDbWire.Collection, Doc.IdJson, _clientIdJson, op.Seq, ShareDbWire.Escape(Encoding.ASCII.GetString(token)))
            : ShareDbWire.WriteInsertOp(destination, ShareDbWire.Collection, Doc.IdJson, op.BaseVersion, _clientIdJson, op.Seq, op.Position, token);
        SendPreparedLocked(WsOpcode.Text, length);
    }

    /// <summary>Ping mode: ShareDB's pong carries nothing, so the slots wait in order for theirs.</summary>
    private void SendShareDbPingLocked(long scheduled)
    {
        _pingSchedule!.Enqueue(scheduled);
        EnsureScratch(ShareDbWire.Ping.Length);
        ShareDbWire.Ping.CopyTo(_scratch.AsSpan(HeaderGap));
        SendPreparedLocked(WsOpcode.Text, ShareDbWire.Ping.Length);
    }
}
