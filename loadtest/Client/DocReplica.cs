using Collab.Engine;
using Collab.Engine.RichText;
using Collab.Engine.Text;

namespace Collab.LoadTest.Client;

/// <summary>A client's full copy of its document, whatever its OT type (what <see cref="LightClient"/> and the convergence check see).</summary>
internal interface IReplica
{
    /// <summary>Starts over from the server's snapshot: <paramref name="text"/> (text-unicode) or <paramref name="content"/> (rich-text, the document as an insert-only op).</summary>
    void Reset(string text, ReadOnlySpan<byte> content);

    /// <summary>Applies an op as the server sequenced it; <paramref name="oldestPendingBase"/> is -1 with nothing pending.</summary>
    void ApplySequenced(long version, WireOp op, long oldestPendingBase);

    /// <summary>
    /// Applies this client's own op <paramref name="encoded"/> (as submitted), acknowledged at <paramref name="version"/>, that it
    /// made against <paramref name="baseVersion"/>; <paramref name="oldestPendingBase"/> is the base of the next pending op, or -1.
    /// </summary>
    void ApplyOwn(long version, ReadOnlySpan<byte> encoded, long baseVersion, long oldestPendingBase);

    /// <summary>Whether the replica holds exactly the document of the server's snapshot.</summary>
    bool Matches(string text, ReadOnlySpan<byte> content);
}

/// <summary>
/// A client's full copy of the server's document, for the convergence check: remote ops are applied as sequenced;
/// an own op is transformed exactly as the server did it (side Left, against every op sequenced after its base
/// version), which the replica can do because all those ops reached this client before the ack (protocol
/// guarantee 2). Only the ops the pending submits still need are kept. One implementation for every OT type, through
/// the Engine's <see cref="IOtType{TSnapshot, TOp}"/>; the subclasses only say how a type travels on the wire.
/// </summary>
internal abstract class DocReplica<TSnapshot, TOp>(IOtType<TSnapshot, TOp> type) : IReplica
    where TSnapshot : notnull
    where TOp : notnull
{
    private readonly List<(long Version, TOp Op)> _log = [];

    public TSnapshot Document { get; private set; } = type.Empty;

    public void Reset(TSnapshot document)
    {
        Document = document;
        _log.Clear();
    }

    public void Reset(string text, ReadOnlySpan<byte> content) => Reset(FromSnapshot(text, content));

    public void ApplySequenced(long version, WireOp op, long oldestPendingBase) => ApplySequenced(version, Decode(op), oldestPendingBase);

    /// <summary>Applies an op as the server sequenced it, already decoded.</summary>
    public void ApplySequenced(long version, TOp op, long oldestPendingBase)
    {
        Document = type.Apply(Document, op);
        Remember(version, op, oldestPendingBase);
    }

    public void ApplyOwn(long version, ReadOnlySpan<byte> encoded, long baseVersion, long oldestPendingBase) =>
        ApplyOwn(version, type.Decode(encoded), baseVersion, oldestPendingBase);

    /// <summary>Applies this client's own op, already decoded (see <see cref="IReplica.ApplyOwn"/>).</summary>
    public void ApplyOwn(long version, TOp original, long baseVersion, long oldestPendingBase)
    {
        TOp op = original;
        foreach ((long seen, TOp other) in _log)
        {
            if (seen > baseVersion)
            {
                op = type.Transform(op, other, TransformSide.Left);
            }
        }

        Document = type.Apply(Document, op);
        Remember(version, op, oldestPendingBase);
    }

    public abstract bool Matches(string text, ReadOnlySpan<byte> content);

    protected abstract TSnapshot FromSnapshot(string text, ReadOnlySpan<byte> content);

    protected abstract TOp Decode(WireOp op);

    private void Remember(long version, TOp op, long oldestPendingBase)
    {
        if (oldestPendingBase < 0)
        {
            _log.Clear();
            return;
        }

        int stale = 0;
        while (stale < _log.Count && _log[stale].Version <= oldestPendingBase)
        {
            stale++;
        }

        _log.RemoveRange(0, stale);
        if (version > oldestPendingBase)
        {
            _log.Add((version, op));
        }
    }
}

/// <summary>A text-unicode replica: a rope; ops from Collab (binary) or ShareDB (JSON).</summary>
internal sealed class TextReplica() : DocReplica<Rope, TextOp>(TextType.Instance)
{
    public void Reset(string text) => Reset(Rope.FromString(text));

    public override bool Matches(string text, ReadOnlySpan<byte> content) => Document.ContentEquals(text);

    protected override Rope FromSnapshot(string text, ReadOnlySpan<byte> content) => Rope.FromString(text);

    protected override TextOp Decode(WireOp op) => op.Decode();
}

/// <summary>A rich-text replica (Quill Delta): snapshots and ops in the rich type's binary encoding (docs/OT.md §20).</summary>
internal sealed class RichReplica() : DocReplica<RichDocument, RichOp>(RichTextType.Default)
{
    public override bool Matches(string text, ReadOnlySpan<byte> content) => Document.Equals(FromSnapshot(text, content));

    protected override RichDocument FromSnapshot(string text, ReadOnlySpan<byte> content) =>
        content.IsEmpty ? RichDocument.Empty : RichDocument.FromOp(RichOpCodec.Decode(content));

    protected override RichOp Decode(WireOp op) => RichOpCodec.Decode(op.Bytes);
}
