using Collab.Client.Internal;
using Collab.Protocol.V1;

namespace Collab.Client.Sync;

/// <summary>The connection's view of one open document, whatever its type: <see cref="CollabClient"/> routes server messages through it.</summary>
internal interface IDocumentSync
{
    string DocId { get; }

    /// <summary>Completes when the first snapshot is loaded; faults when the open fails.</summary>
    Task WhenOpened { get; }

    void OnSessionStarted(ServerLink session, long generation);

    void OnSessionEnded(ServerLink session);

    void OnClientClosed();

    void OnSnapshot(ServerLink session, ulong requestId, Snapshot snapshot);

    void OnSubscribed(ServerLink session, ulong requestId, Subscribed subscribed);

    void OnOps(ServerLink session, ulong requestId, Ops ops);

    void OnAck(ServerLink session, Ack ack);

    void OnPresence(ServerLink session, Presence presence);

    void OnError(ServerLink session, ulong requestId, Error error, CollabErrorEventArgs args);

    /// <summary>Unsubscribes and closes the document.</summary>
    ValueTask DisposeAsync();
}

/// <summary>How a <see cref="DocumentSync{TSnapshot, TOp}"/> reaches its public document: events, raised on the client's dispatcher.</summary>
internal interface IDocumentEvents<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    void RaiseChanged(TOp op, long version, TSnapshot snapshot, string? clientId, string? author, bool isResync);

    void RaisePresenceChanged(PresenceChangedEventArgs args);

    void RaiseAcknowledged(OpAcknowledgedEventArgs args);

    void RaiseError(CollabErrorEventArgs args);
}

/// <summary>Why a local edit was made: the undo manager records only the user's own edits, not its undos and redos.</summary>
internal enum EditOrigin
{
    User,
    Undo,
    Redo,
}

/// <summary>
/// Sees every change of the local document as it is applied, synchronously and under the document's lock, so that what
/// it keeps (an undo history) always matches the document.
/// </summary>
internal interface IDocumentObserver<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    /// <summary>A local edit <paramref name="op"/> was applied to <paramref name="before"/>.</summary>
    void OnLocalEdit(TOp op, TSnapshot before, EditOrigin origin);

    /// <summary>A change from the server (another client's op, or a resync) was applied to the local document.</summary>
    void OnRemoteChange(TOp op);
}
