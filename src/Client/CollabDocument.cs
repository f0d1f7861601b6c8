using Collab.Client.Sync;
using Collab.Engine;
using Collab.Engine.Text;

namespace Collab.Client;

/// <summary>
/// One open text document (<c>text-unicode</c>): a local replica that accepts edits at once and converges with the
/// server and every other client (docs/PROTOCOL.md sections 5 to 8). Obtained from <see cref="CollabClient.OpenDocumentAsync"/>.
/// </summary>
/// <remarks>
/// <para>Local edits apply to <see cref="Text"/> immediately. At most one op is in flight; edits made meanwhile are
/// composed into one buffered op sent when the server acknowledges the in-flight one. Remote ops are transformed past
/// the pending local edits and raise <see cref="Changed"/>. Edits keep being accepted while disconnected and are sent
/// (the in-flight one resent with its original client seq, so the server never applies it twice) after the reconnect.</para>
/// <para>Thread-safety: all members may be called from any thread; each call sees and leaves a consistent state.
/// Positions and lengths count Unicode code points, not UTF-16 units.</para>
/// </remarks>
public sealed class CollabDocument : IAsyncDisposable, IDocumentEvents<Rope, TextOp>
{
    internal CollabDocument(CollabClient client, string docId)
    {
        Sync = new DocumentSync<Rope, TextOp>(client, docId, TextKind.Instance, this);
        Sync.Attach(this);
    }

    /// <summary>
    /// Something reached this replica from the server: another client's op was applied, or the document was resynced.
    /// Not raised for this client's own <see cref="Insert"/>, <see cref="Delete"/> or <see cref="Submit"/>: <see cref="Text"/>
    /// has those at once, and an editor applies its own keystrokes itself (<see cref="Acknowledged"/> tells when they are
    /// durable).
    /// </summary>
    public event EventHandler<DocumentChangedEventArgs>? Changed;

    /// <summary>Another client's selection changed, appeared or went away.</summary>
    public event EventHandler<PresenceChangedEventArgs>? PresenceChanged;

    /// <summary>
    /// One of this client's ops is durable on the server: raised once per op, with the version it got.
    /// (An ack lost in a disconnect is recovered on resume, so every acknowledged op is reported exactly once.)
    /// </summary>
    public event EventHandler<OpAcknowledgedEventArgs>? Acknowledged;

    /// <summary>
    /// The server reported an error for this document. For a rejected submit (non-retryable) the op has been
    /// dropped and the document resyncs from a snapshot; <c>ALREADY_COMMITTED</c> is not a rejection (the op is in the
    /// server's document; the document resyncs keeping it). Retryable errors (the op's outcome may be unknown, as after
    /// <c>UNAVAILABLE</c>) are retried automatically with the same client seq, which the server deduplicates.
    /// </summary>
    public event EventHandler<CollabErrorEventArgs>? Error;

    /// <summary>The document id.</summary>
    public string DocId => Sync.DocId;

    /// <summary>The last server version this replica has applied (pending local edits are not counted).</summary>
    public long Version => Sync.Version;

    /// <summary>The local text, including pending local edits. O(length): prefer <see cref="Snapshot"/> for large documents.</summary>
    public string Text => Snapshot.ToString();

    /// <summary>The local text as an immutable rope (cheap to read and keep).</summary>
    public Rope Snapshot => Sync.Snapshot;

    /// <summary>Local edits exist that the server has not acknowledged.</summary>
    public bool HasPendingOps => Sync.HasPendingOps;

    internal DocumentSync<Rope, TextOp> Sync { get; }

    /// <summary>Inserts <paramref name="text"/> at code point <paramref name="position"/>.</summary>
    /// <exception cref="OtException">The position is beyond the end of the text, or the text is not valid Unicode.</exception>
    public void Insert(int position, string text) => Submit(TextOp.Insert(position, text));

    /// <summary>Deletes <paramref name="length"/> code points at <paramref name="position"/>.</summary>
    /// <exception cref="OtException">The range reaches beyond the end of the text.</exception>
    public void Delete(int position, int length) => Submit(TextOp.Delete(position, length));

    /// <summary>Applies a local edit made against the current <see cref="Text"/> and queues it for the server.</summary>
    /// <exception cref="OtException">The op does not fit the current text.</exception>
    /// <exception cref="ArgumentException">The op's encoding exceeds the server's <c>max_op_bytes</c>.</exception>
    /// <exception cref="ObjectDisposedException">The document (or its client) is closed.</exception>
    public void Submit(TextOp op) => Sync.Submit(op);

    /// <summary>
    /// Completes when every local edit made so far has been acknowledged (or, for a rejected edit, dropped and the
    /// document resynced). Faults with <see cref="ObjectDisposedException"/> or <see cref="CollabConnectionException"/>
    /// when the document or client closes first.
    /// </summary>
    public Task WhenSyncedAsync(CancellationToken cancellationToken = default) => Sync.WhenSyncedAsync(cancellationToken);

    /// <summary>
    /// Publishes this client's selection (code points in the current <see cref="Text"/>). Sent when no local edit is
    /// pending (so the server can place it), coalesced with later calls, and re-sent after a reconnect.
    /// </summary>
    /// <param name="anchor">Where the selection starts.</param>
    /// <param name="head">Where the caret is; equal to <paramref name="anchor"/> for a caret.</param>
    /// <param name="userData">
    /// Opaque data shown to others (name, colour); at most the server's announced <c>max_presence_bytes</c>
    /// (1 KiB unless the server says otherwise).
    /// </param>
    /// <exception cref="ArgumentOutOfRangeException">A position is outside the text, or <paramref name="userData"/> is over the limit.</exception>
    public void SetPresence(int anchor, int head, ReadOnlyMemory<byte> userData = default) => Sync.SetPresence(anchor, head, userData);

    /// <summary>Withdraws this client's selection.</summary>
    public void ClearPresence() => Sync.ClearPresence();

    /// <summary>The other clients' current selections, in local positions.</summary>
    public IReadOnlyList<RemotePresence> GetPresences() => Sync.GetPresences();

    /// <summary>
    /// Starts recording this user's edits for undo and redo (<see cref="UndoManager"/>). Edits made before are not
    /// recorded. One manager at a time: dispose it before creating another.
    /// </summary>
    /// <param name="options">Settings; defaults when null.</param>
    /// <exception cref="InvalidOperationException">The document already has an undo manager.</exception>
    public UndoManager CreateUndoManager(UndoManagerOptions? options = null) => new(UndoManager.Create<Rope, TextOp>(Sync, options));

    /// <summary>Unsubscribes and closes the document. Unacknowledged local edits are abandoned.</summary>
    public ValueTask DisposeAsync() => Sync.DisposeAsync();

    void IDocumentEvents<Rope, TextOp>.RaiseChanged(TextOp op, long version, Rope snapshot, string? clientId, string? author, bool isResync) =>
        Changed?.Invoke(this, new DocumentChangedEventArgs(op, version, snapshot, clientId, author, isResync));

    void IDocumentEvents<Rope, TextOp>.RaisePresenceChanged(PresenceChangedEventArgs args) => PresenceChanged?.Invoke(this, args);

    void IDocumentEvents<Rope, TextOp>.RaiseAcknowledged(OpAcknowledgedEventArgs args) => Acknowledged?.Invoke(this, args);

    void IDocumentEvents<Rope, TextOp>.RaiseError(CollabErrorEventArgs args) => Error?.Invoke(this, args);
}
