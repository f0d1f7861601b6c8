using System.Diagnostics;
using Collab.Engine.Sequencing;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Server.Sessions;

/// <summary>
/// The presence (selections and user data) of one open document: its local clients' entries, shared with the other
/// subscribers and, in a cluster, published to the other nodes; and the other nodes' clients' entries, kept here tagged
/// with their node (docs/CLUSTER.md, "Presence"). Owned by the document's <see cref="DocumentHub{TSnapshot, TOp}"/> and touched only on
/// the sequencer's worker (every method takes the <see cref="CommittedView{TSnapshot, TOp}"/> that proves it), so it
/// needs no lock. Positions count the document's OT type's units (code points for text-unicode, UTF-16 units for rich-text)
/// and are moved through the committed ops with that type.
/// </summary>
internal sealed class DocumentPresence<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    private readonly DocumentKind<TSnapshot, TOp> _kind;
    private readonly string _docId;
    private readonly IDocumentReplication? _replication;

    // The hub's subscriber list and its index by client id (worker only): presence is broadcast to them.
    private readonly List<Subscription> _subscribers;
    private readonly Dictionary<string, Subscription> _byClient;
    private readonly Dictionary<string, PresenceEntry> _entries = new(StringComparer.Ordinal);

    // Remote presence made at a version this node has not delivered yet, held until it has.
    private Dictionary<string, PresenceEntry>? _ahead;

    // When each remote client's presence was last published by its node (Stopwatch timestamps). Nodes republish their
    // clients' presence periodically, so an entry not heard of for Cluster:PresenceExpiry is one whose clear was lost
    // (core NATS is at most once) and is dropped.
    private Dictionary<string, long>? _remoteSeen;

    public DocumentPresence(DocumentKind<TSnapshot, TOp> kind, string docId, IDocumentReplication? replication, List<Subscription> subscribers, Dictionary<string, Subscription> byClient)
    {
        _kind = kind;
        _docId = docId;
        _replication = replication;
        _subscribers = subscribers;
        _byClient = byClient;
    }

    /// <summary>True when remote presence waits for a version (the hub then checks <see cref="AnyAheadReached"/> after each batch).</summary>
    public bool HasAhead => _ahead is { Count: > 0 };

    /// <summary>Transforms a local client's selection from its base version to the committed one and shares it; false when it is stale or the subscriber left.</summary>
    public bool Update(in CommittedView<TSnapshot, TOp> view, Subscription sub, long baseVersion, Selection? selection, ByteString userData)
    {
        if (sub.Detached)
        {
            return false;
        }

        if (selection is null)
        {
            if (_entries.Remove(sub.ClientId))
            {
                Broadcast(sub.ClientId, view.Version, null, userData, except: sub);
                _replication?.PublishPresence(sub.ClientId, view.Version, null, userData);
            }

            return true;
        }

        if (!TryPlace(view, baseVersion, selection.Anchor, selection.Head, sub.ClientId, out int anchor, out int head))
        {
            return false; // made against a version the window no longer holds: stale, the client sends a fresh one
        }

        _ahead?.Remove(sub.ClientId);
        _entries[sub.ClientId] = new PresenceEntry(view.Version, anchor, head, userData, Origin: null);
        var shared = new Selection { Anchor = anchor, Head = head };
        Broadcast(sub.ClientId, view.Version, shared, userData, except: sub);
        _replication?.PublishPresence(sub.ClientId, view.Version, shared, userData);
        return true;
    }

    /// <summary>Presence of a client of another node; see <see cref="DocumentHub{TSnapshot, TOp}.ApplyRemotePresenceAsync"/>.</summary>
    public bool ApplyRemote(in CommittedView<TSnapshot, TOp> view, string origin, string clientId, long version, Selection? selection, ByteString userData)
    {
        if (selection is not null)
        {
            (_remoteSeen ??= new Dictionary<string, long>(StringComparer.Ordinal))[clientId] = Stopwatch.GetTimestamp();
        }

        if (_ahead is not null && _ahead.TryGetValue(clientId, out PresenceEntry ahead)
            && (selection is not null || string.Equals(ahead.Origin, origin, StringComparison.Ordinal)))
        {
            _ahead.Remove(clientId); // superseded
        }

        if (selection is null)
        {
            if (_entries.TryGetValue(clientId, out PresenceEntry current) && string.Equals(current.Origin, origin, StringComparison.Ordinal))
            {
                _entries.Remove(clientId);
                Broadcast(clientId, view.Version, null, ByteString.Empty, except: _byClient.GetValueOrDefault(clientId));
            }

            return true;
        }

        var entry = new PresenceEntry(version, ClampToInt(selection.Anchor), ClampToInt(selection.Head), userData, origin);
        if (version > view.Version)
        {
            // The other node delivered ops this one has not yet: hold the presence until they are delivered here too.
            (_ahead ??= new Dictionary<string, PresenceEntry>(StringComparer.Ordinal))[clientId] = entry;
            return true;
        }

        return ShareRemote(view, clientId, entry);
    }

    /// <summary>The clients of <paramref name="origin"/> are gone: clears their presence.</summary>
    public void ClearRemote(in CommittedView<TSnapshot, TOp> view, string origin)
    {
        // Removing the current entry while enumerating a Dictionary is allowed.
        if (_ahead is not null)
        {
            foreach ((string clientId, PresenceEntry entry) in _ahead)
            {
                if (string.Equals(entry.Origin, origin, StringComparison.Ordinal))
                {
                    _ahead.Remove(clientId);
                }
            }
        }

        foreach ((string clientId, PresenceEntry entry) in _entries)
        {
            if (string.Equals(entry.Origin, origin, StringComparison.Ordinal))
            {
                _entries.Remove(clientId);
                Broadcast(clientId, view.Version, null, ByteString.Empty, except: null);
            }
        }
    }

    /// <summary>Publishes every local client's presence again (another node opened the document or reconnected).</summary>
    public void Republish(in CommittedView<TSnapshot, TOp> view)
    {
        foreach ((string clientId, PresenceEntry entry) in _entries)
        {
            if (entry.Origin is null && view.TryTransformSelection(entry.Version, entry.Anchor, entry.Head, clientId, out int anchor, out int head))
            {
                _replication?.PublishPresence(clientId, view.Version, new Selection { Anchor = anchor, Head = head }, entry.UserData);
            }
        }
    }

    /// <summary>Drops remote entries not republished since <paramref name="cutoff"/> (a Stopwatch timestamp); returns how many.</summary>
    public int ExpireRemote(in CommittedView<TSnapshot, TOp> view, long cutoff)
    {
        int expired = 0;
        if (_remoteSeen is null)
        {
            return expired;
        }

        // Removing the current entry while enumerating a Dictionary is allowed.
        foreach ((string clientId, long seen) in _remoteSeen)
        {
            if (seen >= cutoff)
            {
                continue;
            }

            _remoteSeen.Remove(clientId);
            if (_ahead is not null && _ahead.TryGetValue(clientId, out PresenceEntry ahead) && ahead.Origin is not null)
            {
                _ahead.Remove(clientId);
            }

            // A local entry (the client moved here) is this node's own and never expires.
            if (_entries.TryGetValue(clientId, out PresenceEntry entry) && entry.Origin is not null)
            {
                _entries.Remove(clientId);
                Broadcast(clientId, view.Version, null, ByteString.Empty, except: _byClient.GetValueOrDefault(clientId));
                expired++;
            }
        }

        return expired;
    }

    /// <summary>Whether some held remote presence was made at or before <paramref name="version"/> (called from the listener, which has no view).</summary>
    public bool AnyAheadReached(long version)
    {
        foreach (PresenceEntry entry in _ahead!.Values)
        {
            if (entry.Version <= version)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Shares the held remote presence whose version has now been delivered here.</summary>
    public void ReleaseAhead(in CommittedView<TSnapshot, TOp> view)
    {
        if (_ahead is not { Count: > 0 } ahead)
        {
            return;
        }

        foreach ((string clientId, PresenceEntry entry) in ahead)
        {
            if (entry.Version <= view.Version)
            {
                ahead.Remove(clientId);
                ShareRemote(view, clientId, entry);
            }
        }
    }

    /// <summary>Sends a new subscriber everyone else's presence, moved to the committed version.</summary>
    public void SendSnapshot(in CommittedView<TSnapshot, TOp> view, Subscription sub)
    {
        foreach ((string clientId, PresenceEntry entry) in _entries)
        {
            if (clientId == sub.ClientId || !view.TryTransformSelection(entry.Version, entry.Anchor, entry.Head, clientId, out int anchor, out int head))
            {
                continue;
            }

            sub.SendOwned(ServerFrames.Presence(_docId, clientId, view.Version, new Selection { Anchor = anchor, Head = head }, entry.UserData));
        }
    }

    /// <summary>A client's last subscription here detached (at <paramref name="version"/>): its local presence is cleared everywhere.</summary>
    public void OnClientLeft(string clientId, long version)
    {
        if (_entries.TryGetValue(clientId, out PresenceEntry entry) && entry.Origin is null)
        {
            _entries.Remove(clientId);
            Broadcast(clientId, version, null, ByteString.Empty, except: null);
            _replication?.PublishPresence(clientId, version, null, ByteString.Empty);
        }
    }

    /// <summary>The local presence of <paramref name="clientId"/> (for resuming a failed document's subscriber), if it has one.</summary>
    public bool TryGetLocal(string clientId, out long version, out Selection? selection, out ByteString userData)
    {
        if (_entries.TryGetValue(clientId, out PresenceEntry entry) && entry.Origin is null)
        {
            version = entry.Version;
            selection = new Selection { Anchor = entry.Anchor, Head = entry.Head };
            userData = entry.UserData;
            return true;
        }

        version = 0;
        selection = null;
        userData = ByteString.Empty;
        return false;
    }

    /// <summary>The document stopped: every entry goes, and the other nodes stop showing the local clients' presence.</summary>
    public void Clear()
    {
        foreach ((string clientId, PresenceEntry entry) in _entries)
        {
            if (entry.Origin is null)
            {
                // The clients resynchronise and send their presence again; until then the other nodes must not show it.
                _replication?.PublishPresence(clientId, entry.Version, null, ByteString.Empty);
            }
        }

        _entries.Clear();
        _ahead?.Clear();
        _remoteSeen?.Clear();
    }

    private bool ShareRemote(in CommittedView<TSnapshot, TOp> view, string clientId, PresenceEntry entry)
    {
        if (!TryPlace(view, entry.Version, entry.Anchor, entry.Head, clientId, out int anchor, out int head))
        {
            return false; // older than the history window: the client's next update replaces it
        }

        PresenceEntry shared = entry with { Version = view.Version, Anchor = anchor, Head = head };
        if (_entries.TryGetValue(clientId, out PresenceEntry current) && current == shared)
        {
            return true; // republished for a node that opened the document: the subscribers here have it
        }

        _entries[clientId] = shared;
        Broadcast(clientId, view.Version, new Selection { Anchor = anchor, Head = head }, entry.UserData, except: _byClient.GetValueOrDefault(clientId));
        return true;
    }

    private void Broadcast(string clientId, long version, Selection? selection, ByteString userData, Subscription? except)
    {
        if (_subscribers.Count == 0 || (_subscribers.Count == 1 && except is not null))
        {
            return;
        }

        using Transport.OutboundMessage frame = ServerFrames.Presence(_docId, clientId, version, selection, userData);
        foreach (Subscription sub in _subscribers)
        {
            if (!ReferenceEquals(sub, except))
            {
                sub.Send(frame);
            }
        }
    }

    private static int ClampToInt(long value) => (int)Math.Clamp(value, 0, int.MaxValue);

    /// <summary>
    /// A selection made at <paramref name="version"/>, clamped to the document's length at that version (a client may send
    /// any numbers: (1000000, 3) on a 5-unit document is (5, 3), never relayed verbatim), then moved to the
    /// committed version. False when the window no longer reaches back to <paramref name="version"/>.
    /// </summary>
    private bool TryPlace(in CommittedView<TSnapshot, TOp> view, long version, long anchor, long head, string clientId, out int placedAnchor, out int placedHead)
    {
        placedAnchor = placedHead = 0;
        if (version > view.Version)
        {
            return false;
        }

        long length = _kind.Type.LengthOf(view.Snapshot);
        for (long v = view.Version; v > version; v--)
        {
            if (!view.TryGetOp(v, out TOp op))
            {
                return false;
            }

            length -= _kind.LengthChange(op);
        }

        return view.TryTransformSelection(
            version, (int)Math.Clamp(anchor, 0, length), (int)Math.Clamp(head, 0, length), clientId, out placedAnchor, out placedHead);
    }

    /// <summary>A client's selection at <paramref name="Version"/>; <paramref name="Origin"/> is the node of a remote client, null for a local one.</summary>
    private readonly record struct PresenceEntry(long Version, int Anchor, int Head, ByteString UserData, string? Origin);
}
