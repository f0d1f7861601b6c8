using Collab.Engine.Client;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Client.Sync;

/// <summary>The op in flight: its global client seq, its sends and resends, its acknowledgement, and moving it to a new client id.</summary>
internal sealed partial class DocumentSync<TSnapshot, TOp>
{
    // The in-flight op's identity and last transmission. _inflightSeq is this client's global seq (OtClientState counts
    // per document; the wire seq must never repeat for the client id). _inflightSentClientId is null while it was never sent.
    private long _inflightSeq;
    private long _inflightStateSeq;
    private string? _inflightSentClientId;
    private bool _inflightSentOnSession;
    private long _inflightSentBase;
    private ByteString _inflightSentBytes = ByteString.Empty;
    private bool _resendAfterCatchUp;

    private void Acknowledge(long version)
    {
        var acknowledged = new OpAcknowledgedEventArgs(_inflightSentClientId ?? _client.ClientId, _inflightSeq, version);
        Post(events => events.RaiseAcknowledged(acknowledged));
        OtClientState<TSnapshot, TOp> state = _state!;
        _serverDocument = _kind.Apply(_serverDocument, PeekInFlight());
        _retryAttempt = 0;
        state.OnAck(version);
        AfterInflightMayHaveChanged();
        AfterPendingChanged();
    }

    /// <summary>Gives a new in-flight op (a local edit, or the buffer promoted by an ack) its global seq and sends it.</summary>
    private void AfterInflightMayHaveChanged()
    {
        OtClientState<TSnapshot, TOp> state = _state!;
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
            || _state is not { } state || !state.TryTakeOutgoing(out OutgoingOp<TOp> outgoing))
        {
            return;
        }

        ByteString bytes = Encode(outgoing.Op);
        var submit = new Submit { DocId = DocId, ClientSeq = (ulong)_inflightSeq, BaseVersion = outgoing.BaseVersion, Op = bytes };
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
    private TOp PeekInFlight()
    {
        OtClientState<TSnapshot, TOp> state = _state!;
        state.OnReconnect();
        state.TryTakeOutgoing(out OutgoingOp<TOp> outgoing);
        if (!_inflightSentOnSession)
        {
            state.OnReconnect();
        }

        return outgoing.Op;
    }

    private OtClientState<TSnapshot, TOp> NewState(string clientId, TSnapshot document, long version)
    {
        _inflightStateSeq = 0;
        return new OtClientState<TSnapshot, TOp>(_kind.Type, clientId, document, version);
    }

    /// <summary>
    /// Replaces the replica's state by one under <paramref name="clientId"/> at (<paramref name="document"/>, <paramref name="version"/>)
    /// with <paramref name="pending"/> re-applied as a local edit (it becomes the in-flight op, with a new seq).
    /// </summary>
    private void RebuildState(string clientId, TSnapshot document, long version, TOp pending)
    {
        OtClientState<TSnapshot, TOp> state = NewState(clientId, document, version);
        _state = state;
        _serverDocument = document;
        _inflightSentClientId = null;
        _inflightSentOnSession = false;
        if (!_kind.IsNoop(pending))
        {
            state.ApplyLocal(pending);
        }

        AfterInflightMayHaveChanged();
    }

    /// <summary>All pending local edits as one op on top of the server document (in flight composed with the buffer).</summary>
    private TOp PendingAsOneOp()
    {
        OtClientState<TSnapshot, TOp> state = _state!;
        if (!state.HasInflight)
        {
            return _kind.EmptyOp;
        }

        TOp inflight = PeekInFlight();
        return state.HasBuffer ? _kind.Compose(inflight, BufferOp(inflight)) : inflight;
    }

    /// <summary>
    /// The buffered edits, as the change from (server document + in-flight op) to the local document. OtClientState does
    /// not hand the buffer out; the diff has the same effect, which is all a rebase needs.
    /// </summary>
    private TOp BufferOp(TOp inflight) => _kind.Diff(_kind.Apply(_serverDocument, inflight), _state!.Snapshot);

    /// <summary>After catch-up under a new client id: the old op is not in the history, so move the pending edits to the new id.</summary>
    private void CheckCatchUp()
    {
        if (!_resendAfterCatchUp || _phase != Phase.Live || _session is not { } session || _state!.Version < _catchUpTarget)
        {
            return;
        }

        _resendAfterCatchUp = false;
        RebuildState(session.Welcome.ClientId, _serverDocument, _state.Version, PendingAsOneOp());
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
}
