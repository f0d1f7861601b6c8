using Collab.Protocol.V1;

namespace Collab.LoadTest.Client;

/// <summary>
/// Collab's wire protocol (docs/PROTOCOL.md): binary protobuf messages. Hot messages (Ops, Ack) are decoded in place
/// without allocating (<see cref="CollabWire"/>), everything else through the generated classes; Submit is written
/// by hand into the scratch buffer.
/// </summary>
internal sealed partial class LightClient
{
    private void HandleCollabMessage(ReadOnlySpan<byte> message, int generation, long now)
    {
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
                        OnCollabAckLocked(body, now);
                    }
                }

                break;
            case ServerBody.Pong when _ctx.Settings.SubmitMode == SubmitMode.Ping:
                OnPong((long)ServerMessage.Parser.ParseFrom(message).Pong.Nonce, now);
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
                SequencedOpView op = CollabWire.ReadSequencedOp(reader.ReadLengthDelimited());
                OnSequencedOpLocked(op.Version, op.ClientId, op.ClientSeq, new WireOp(op.Op, _model.CollabFormat), now);
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

    private void OnCollabAckLocked(ReadOnlySpan<byte> body, long now)
    {
        AckView ack = CollabWire.ReadAck(body);
        if (!ack.DocId.SequenceEqual(Doc.IdUtf8))
        {
            _ctx.Errors.Add("wrong-document", "an Ack for a document this connection did not subscribe");
            return;
        }

        OnAckLocked(ack.ClientSeq, ack.Version, now);
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
                    OnClientIdLocked(message.Welcome.ClientId);
                    break;
                case ServerMessage.BodyOneofCase.Snapshot:
                    if (_model.SubscribeType.Length > 0 && message.Snapshot.Type != _model.SubscribeType)
                    {
                        // The document existed with another type (a server that ignores Subscribe.type would say so here).
                        _ctx.Errors.Add("type-mismatch", $"{Doc.Id} is '{message.Snapshot.Type}', not '{_model.SubscribeType}'");
                        _ready?.TrySetException(new ServerRefusedException($"document type '{message.Snapshot.Type}'"));
                        break;
                    }

                    OnSnapshotLocked(message.Snapshot.Version, message.Snapshot.Text, message.Snapshot.Content.Span, now);
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

        OnSubmitRejectedLocked(error.ClientSeq);
    }

    private void SendCollabHelloLocked() => SendControlMessageLocked(new ClientMessage
    {
        Hello = new Hello
        {
            ProtocolVersion = (uint)ProtocolVersion.Current,
            ClientId = ClientId ?? string.Empty,
            ClientName = _ctx.Settings.ClientName,
        },
    });

    private void SendCollabSubscribeLocked() => SendControlMessageLocked(new ClientMessage
    {
        Subscribe = _hasDocument
            ? new Subscribe { DocId = Doc.Id, FromVersion = _version, Type = _model.SubscribeType }
            : new Subscribe { DocId = Doc.Id, Snapshot = true, Type = _model.SubscribeType },
    });

    private void SendCollabSubmitLocked(PendingOp op, ReadOnlySpan<byte> token)
    {
        if (op.Own is { } own)
        {
            int size = CollabWire.SubmitLength(Doc.IdUtf8.Length, op.Seq, op.BaseVersion, own.Encoded.Length);
            EnsureScratch(size);
            CollabWire.WriteSubmit(_scratch.AsSpan(HeaderGap), Doc.IdUtf8, op.Seq, op.BaseVersion, own.Encoded);
            SendPreparedLocked(WsOpcode.Binary, size);
            return;
        }

        int length = CollabWire.SubmitInsertLength(Doc.IdUtf8.Length, op.Seq, op.BaseVersion, op.Position, token.Length);
        EnsureScratch(length);
        CollabWire.WriteSubmitInsert(_scratch.AsSpan(HeaderGap), Doc.IdUtf8, op.Seq, op.BaseVersion, op.Position, token);
        SendPreparedLocked(WsOpcode.Binary, length);
    }

    /// <summary>Ping mode: the nonce is the slot's scheduled time, so the Pong says which slot it answers.</summary>
    private void SendCollabPingLocked(long scheduled) =>
        SendControlMessageLocked(new ClientMessage { Ping = new Ping { Nonce = (ulong)scheduled } });
}
