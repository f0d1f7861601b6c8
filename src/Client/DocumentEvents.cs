using Collab.Engine.RichText;
using Collab.Engine.Text;

namespace Collab.Client;

/// <summary>Arguments of <see cref="CollabDocument.Changed"/>: the local text changed because of the server.</summary>
public sealed class DocumentChangedEventArgs : EventArgs
{
    private string? _text;

    internal DocumentChangedEventArgs(TextOp op, long version, Rope snapshot, string? clientId, string? author, bool isResync)
    {
        Op = op;
        Version = version;
        Snapshot = snapshot;
        ClientId = clientId;
        Author = author;
        IsResync = isResync;
    }

    /// <summary>The op as applied to the local text (remote ops are already transformed past local pending edits).</summary>
    public TextOp Op { get; }

    /// <summary>The server version the document is at after this change.</summary>
    public long Version { get; }

    /// <summary>The local text after the change (immutable; cheap to keep).</summary>
    public Rope Snapshot { get; }

    /// <summary>The local text after the change, materialised on first use.</summary>
    public string Text => _text ??= Snapshot.ToString();

    /// <summary>The client whose op this was; <see langword="null"/> for a resync.</summary>
    public string? ClientId { get; }

    /// <summary>The authenticated author of the op, if the server knows one.</summary>
    public string? Author { get; }

    /// <summary>
    /// The document was reloaded from a snapshot (history gap, rejected op, <c>VERSION_TOO_OLD</c>); <see cref="Op"/>
    /// turns the previous local text into the new one, with surviving local edits rebased onto it.
    /// </summary>
    public bool IsResync { get; }
}

/// <summary>Another client's selection in a document, in local code-point offsets.</summary>
/// <param name="ClientId">Whose selection.</param>
/// <param name="Anchor">Where the selection started.</param>
/// <param name="Head">Where the caret is (equal to <paramref name="Anchor"/> for a plain caret).</param>
/// <param name="UserData">Opaque data the client attached (name, colour).</param>
public sealed record RemotePresence(string ClientId, int Anchor, int Head, ReadOnlyMemory<byte> UserData);

/// <summary>Arguments of <see cref="CollabDocument.PresenceChanged"/>.</summary>
public sealed class PresenceChangedEventArgs : EventArgs
{
    internal PresenceChangedEventArgs(string clientId, RemotePresence? presence)
    {
        ClientId = clientId;
        Presence = presence;
    }

    /// <summary>Whose presence changed.</summary>
    public string ClientId { get; }

    /// <summary>The new selection, or <see langword="null"/> when the client left or cleared it.</summary>
    public RemotePresence? Presence { get; }
}

/// <summary>Arguments of <see cref="CollabDocument.Acknowledged"/>.</summary>
/// <param name="clientId">The client id the op was submitted under.</param>
/// <param name="clientSeq">The op's client seq.</param>
/// <param name="version">The document version the op produced.</param>
public sealed class OpAcknowledgedEventArgs(string clientId, long clientSeq, long version) : EventArgs
{
    /// <summary>The client id the op was submitted under.</summary>
    public string ClientId { get; } = clientId;

    /// <summary>The op's client seq.</summary>
    public long ClientSeq { get; } = clientSeq;

    /// <summary>The document version the op produced.</summary>
    public long Version { get; } = version;
}

/// <summary>Arguments of <see cref="CollabRichDocument.Changed"/>: the local rich document changed because of the server.</summary>
public sealed class RichDocumentChangedEventArgs : EventArgs
{
    internal RichDocumentChangedEventArgs(RichOp op, long version, RichDocument document, string? clientId, string? author, bool isResync)
    {
        Op = op;
        Version = version;
        Document = document;
        ClientId = clientId;
        Author = author;
        IsResync = isResync;
    }

    /// <summary>The op as applied to the local document (a Quill editor applies it with <c>updateContents</c>).</summary>
    public RichOp Op { get; }

    /// <summary>The server version the document is at after this change.</summary>
    public long Version { get; }

    /// <summary>The local document after the change (immutable).</summary>
    public RichDocument Document { get; }

    /// <summary>The client whose op this was; <see langword="null"/> for a resync.</summary>
    public string? ClientId { get; }

    /// <summary>The authenticated author of the op, if the server knows one.</summary>
    public string? Author { get; }

    /// <summary>The document was reloaded from a snapshot; <see cref="Op"/> turns the previous local document into the new one.</summary>
    public bool IsResync { get; }
}
