using Collab.Client.Sync;
using Collab.Engine;
using Collab.Engine.RichText;

namespace Collab.Client;

/// <summary>
/// One open rich-text document (<c>rich-text</c>: Quill Delta, formatted text and embeds), synced exactly like a
/// <see cref="CollabDocument"/> (the same state machine: one op in flight, buffered edits, resume, resync). Obtained
/// from <see cref="CollabClient.OpenRichDocumentAsync"/>.
/// </summary>
/// <remarks>
/// Positions and lengths count UTF-16 code units, an embed counting 1 (Quill's units, unlike the code points of text
/// documents); an op may not split a surrogate pair. Ops are <see cref="RichOp"/>s with the semantics of ShareDB's
/// <c>rich-text</c> type (docs/OT.md); a Quill editor's <c>text-change</c> delta is such an op. Thread-safety: all
/// members may be called from any thread.
/// </remarks>
public sealed class CollabRichDocument : IAsyncDisposable, IDocumentEvents<RichDocument, RichOp>
{
    internal CollabRichDocument(CollabClient client, string docId)
    {
        Sync = new DocumentSync<RichDocument, RichOp>(client, docId, RichKind.Instance, this);
        Sync.Attach(this);
    }

    /// <summary>
    /// Something reached this replica from the server: another client's op was applied, or the document was resynced.
    /// Not raised for this client's own edits.
    /// </summary>
    public event EventHandler<RichDocumentChangedEventArgs>? Changed;

    /// <summary>Another client's selection changed, appeared or went away (positions in UTF-16 units).</summary>
    public event EventHandler<PresenceChangedEventArgs>? PresenceChanged;

    /// <summary>One of this client's ops is durable on the server: raised once per op, with the version it got.</summary>
    public event EventHandler<OpAcknowledgedEventArgs>? Acknowledged;

    /// <summary>The server reported an error for this document (see <see cref="CollabDocument.Error"/>).</summary>
    public event EventHandler<CollabErrorEventArgs>? Error;

    /// <summary>The document id.</summary>
    public string DocId => Sync.DocId;

    /// <summary>The last server version this replica has applied (pending local edits are not counted).</summary>
    public long Version => Sync.Version;

    /// <summary>The local document, including pending local edits (immutable; cheap to read and keep).</summary>
    public RichDocument Document => Sync.Snapshot;

    /// <summary>The document's length in UTF-16 units, an embed counting 1.</summary>
    public int Length => Document.Length;

    /// <summary>Local edits exist that the server has not acknowledged.</summary>
    public bool HasPendingOps => Sync.HasPendingOps;

    internal DocumentSync<RichDocument, RichOp> Sync { get; }

    /// <summary>Inserts <paramref name="text"/> with <paramref name="attributes"/> at UTF-16 position <paramref name="position"/>.</summary>
    /// <exception cref="OtException">The position is beyond the end or inside a surrogate pair.</exception>
    public void Insert(int position, string text, AttributeMap? attributes = null) => Submit(RichOp.Insert(position, text, attributes));

    /// <summary>Deletes <paramref name="length"/> UTF-16 units at <paramref name="position"/>.</summary>
    /// <exception cref="OtException">The range reaches beyond the end or splits a surrogate pair.</exception>
    public void Delete(int position, int length) => Submit(RichOp.Delete(position, length));

    /// <summary>Sets (or, with a null value, removes) <paramref name="attributes"/> on a range.</summary>
    /// <exception cref="OtException">The range reaches beyond the end or splits a surrogate pair.</exception>
    public void Format(int position, int length, AttributeMap attributes) => Submit(RichOp.Format(position, length, attributes));

    /// <summary>Applies a local edit made against the current <see cref="Document"/> and queues it for the server.</summary>
    /// <exception cref="OtException">The op does not fit the current document.</exception>
    /// <exception cref="ArgumentException">The op's encoding exceeds the server's <c>max_op_bytes</c>.</exception>
    /// <exception cref="ObjectDisposedException">The document (or its client) is closed.</exception>
    public void Submit(RichOp op) => Sync.Submit(op);

    /// <summary>Completes when every local edit made so far has been acknowledged (see <see cref="CollabDocument.WhenSyncedAsync"/>).</summary>
    /// <param name="cancellationToken">Stops waiting (the edits are still sent).</param>
    public Task WhenSyncedAsync(CancellationToken cancellationToken = default) => Sync.WhenSyncedAsync(cancellationToken);

    /// <summary>Publishes this client's selection, in UTF-16 units of the current <see cref="Document"/> (see <see cref="CollabDocument.SetPresence"/>).</summary>
    /// <param name="anchor">Where the selection starts.</param>
    /// <param name="head">Where the caret is; equal to <paramref name="anchor"/> for a caret.</param>
    /// <param name="userData">Opaque data shown to others (name, colour); at most the server's <c>max_presence_bytes</c>.</param>
    /// <exception cref="ArgumentOutOfRangeException">A position is outside the document, or <paramref name="userData"/> is over the limit.</exception>
    public void SetPresence(int anchor, int head, ReadOnlyMemory<byte> userData = default) => Sync.SetPresence(anchor, head, userData);

    /// <summary>Withdraws this client's selection.</summary>
    public void ClearPresence() => Sync.ClearPresence();

    /// <summary>The other clients' current selections, in local UTF-16 positions.</summary>
    public IReadOnlyList<RemotePresence> GetPresences() => Sync.GetPresences();

    /// <summary>
    /// Starts recording this user's edits for undo and redo (<see cref="UndoManager"/>). Edits made before are not
    /// recorded. One manager at a time: dispose it before creating another.
    /// </summary>
    /// <param name="options">Settings; defaults when null.</param>
    /// <exception cref="InvalidOperationException">The document already has an undo manager.</exception>
    public UndoManager CreateUndoManager(UndoManagerOptions? options = null) => new(UndoManager.Create<RichDocument, RichOp>(Sync, options));

    /// <summary>Unsubscribes and closes the document. Unacknowledged local edits are abandoned.</summary>
    public ValueTask DisposeAsync() => Sync.DisposeAsync();

    void IDocumentEvents<RichDocument, RichOp>.RaiseChanged(RichOp op, long version, RichDocument snapshot, string? clientId, string? author, bool isResync) =>
        Changed?.Invoke(this, new RichDocumentChangedEventArgs(op, version, snapshot, clientId, author, isResync));

    void IDocumentEvents<RichDocument, RichOp>.RaisePresenceChanged(PresenceChangedEventArgs args) => PresenceChanged?.Invoke(this, args);

    void IDocumentEvents<RichDocument, RichOp>.RaiseAcknowledged(OpAcknowledgedEventArgs args) => Acknowledged?.Invoke(this, args);

    void IDocumentEvents<RichDocument, RichOp>.RaiseError(CollabErrorEventArgs args) => Error?.Invoke(this, args);
}
