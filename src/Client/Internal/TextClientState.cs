using Collab.Engine;
using Collab.Engine.Text;

namespace Collab.Client.Internal;

/// <summary>
/// The client OT state of one text document: server version, local text, at most one op in flight and
/// one composed buffer (docs/PROTOCOL.md section 5.4). Not thread-safe: owned by its document's lock.
/// </summary>
internal sealed class TextClientState
{
    public TextClientState(Rope snapshot, long version)
    {
        Snapshot = snapshot;
        Version = version;
    }

    /// <summary>The local text: the server's text at <see cref="Version"/> plus the pending ops.</summary>
    public Rope Snapshot { get; private set; }

    /// <summary>The last server version applied.</summary>
    public long Version { get; private set; }

    /// <summary>The op submitted and not yet acknowledged; it applies to the server text at <see cref="Version"/>.</summary>
    public TextOp? InFlight { get; private set; }

    /// <summary>Local edits made while <see cref="InFlight"/> was pending, composed; applies after <see cref="InFlight"/>.</summary>
    public TextOp? Buffer { get; private set; }

    public bool HasPending => InFlight is not null;

    /// <summary>Applies a local edit; returns <see langword="true"/> when it became the in-flight op (send it).</summary>
    public bool ApplyLocal(TextOp op)
    {
        Snapshot = TextType.Apply(Snapshot, op);
        if (InFlight is null)
        {
            InFlight = op;
            return true;
        }

        Buffer = Buffer is { } buffer ? TextType.Compose(buffer, op) : op;
        return false;
    }

    /// <summary>Applies the server's op with version <see cref="Version"/> + 1; returns it as applied to the local text.</summary>
    public TextOp ApplyRemote(TextOp op, long version)
    {
        TextOp applied = op;
        if (InFlight is { } inflight)
        {
            applied = TextType.Transform(op, inflight, TransformSide.Right);
            InFlight = TextType.Transform(inflight, op, TransformSide.Left);
            if (Buffer is { } buffer)
            {
                TextOp past = applied;
                applied = TextType.Transform(past, buffer, TransformSide.Right);
                Buffer = TextType.Transform(buffer, past, TransformSide.Left);
            }
        }

        Snapshot = TextType.Apply(Snapshot, applied);
        Version = version;
        return applied;
    }

    /// <summary>The in-flight op got <paramref name="version"/>; returns <see langword="true"/> when the buffer became the next in-flight op.</summary>
    public bool Acknowledge(long version)
    {
        Version = version;
        InFlight = Buffer;
        Buffer = null;
        return InFlight is not null;
    }

    /// <summary>Starts over from a server snapshot with nothing pending.</summary>
    public void Reset(Rope snapshot, long version)
    {
        Snapshot = snapshot;
        Version = version;
        InFlight = null;
        Buffer = null;
    }
}
