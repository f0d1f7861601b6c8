using Collab.Client.Internal;
using Collab.Protocol;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Client.Sync;

/// <summary>Selections: this client's (published when nothing is pending) and the others' (moved through every change).</summary>
internal sealed partial class DocumentSync<TSnapshot, TOp>
{
    private LocalPresence? _localPresence;

    // The latest server's announced presence limit (Welcome.max_presence_bytes); the protocol default until one is known.
    private int _maxPresenceBytes = ProtocolLimits.DefaultMaxPresenceBytes;
    private bool _presenceDirty;

    public void SetPresence(int anchor, int head, ReadOnlyMemory<byte> userData)
    {
        lock (Gate)
        {
            ObjectDisposedException.ThrowIf(_closed, _owner);
            if (userData.Length > _maxPresenceBytes)
            {
                throw new ArgumentOutOfRangeException(nameof(userData), $"Presence user data is limited to {_maxPresenceBytes} bytes by the server.");
            }

            int length = _state is { } state ? _kind.Length(state.Snapshot) : 0;
            ArgumentOutOfRangeException.ThrowIfNegative(anchor);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(anchor, length);
            ArgumentOutOfRangeException.ThrowIfNegative(head);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(head, length);
            _localPresence = new LocalPresence(anchor, head, ByteString.CopyFrom(userData.Span));
            _presenceDirty = true;
            TrySendPresence();
        }
    }

    public void ClearPresence()
    {
        lock (Gate)
        {
            ObjectDisposedException.ThrowIf(_closed, _owner);
            _localPresence = null;
            _presenceDirty = true;
            TrySendPresence();
        }
    }

    public IReadOnlyList<RemotePresence> GetPresences()
    {
        lock (Gate)
        {
            return [.. _remotePresence.Values];
        }
    }

    public void OnPresence(ServerLink session, Presence presence)
    {
        lock (Gate)
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

            // Positions refer to the server document at presence.Version; move them through later server ops and our pending edits.
            int length = _kind.Length(state.Snapshot);
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

    /// <summary>Moves every known selection through an op just applied to the local document.</summary>
    private void MovePresences(TOp op, bool remoteIsOwn, bool localIsOwn, string? author = null)
    {
        if (_kind.IsNoop(op))
        {
            return;
        }

        if (_localPresence is { } local)
        {
            _localPresence = local with
            {
                Anchor = _kind.TransformCursor(local.Anchor, op, localIsOwn),
                Head = _kind.TransformCursor(local.Head, op, localIsOwn),
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
                Anchor = _kind.TransformCursor(presence.Anchor, op, own),
                Head = _kind.TransformCursor(presence.Head, op, own),
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
        Post(events => events.RaisePresenceChanged(args));
    }

    private sealed record LocalPresence(int Anchor, int Head, ByteString UserData);
}
