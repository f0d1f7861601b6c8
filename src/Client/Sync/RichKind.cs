using Collab.Engine;
using Collab.Engine.RichText;
using Collab.Protocol.V1;

namespace Collab.Client.Sync;

/// <summary>The <c>rich-text</c> type (Quill Delta): documents of formatted text and embeds, lengths in UTF-16 units.</summary>
internal sealed class RichKind : DocumentKind<RichDocument, RichOp>
{
    public static RichKind Instance { get; } = new();

    public override string TypeName => RichTextType.TypeName;

    public override IOtType<RichDocument, RichOp> Type => RichTextType.Default;

    public override RichOp EmptyOp => RichOp.Empty;

    public override RichOp Invert(RichOp op, RichDocument before) => RichTextType.Invert(op, before);

    public override int GetEncodedLength(RichOp op) => RichOpCodec.GetEncodedLength(op);

    /// <summary>P6: a rich snapshot travels in <c>Snapshot.content</c> as one insert-only op in the binary op encoding.</summary>
    public override RichDocument ReadSnapshot(Snapshot snapshot) =>
        snapshot.Content.IsEmpty ? RichDocument.Empty : RichDocument.FromOp(RichOpCodec.Decode(snapshot.Content.Span));

    public override RichOp Diff(RichDocument before, RichDocument after) => RichDiff.Between(before, after);
}

/// <summary>
/// The single-replace op that turns one rich document into another: the common prefix and suffix (same characters or
/// embeds with the same attributes) kept, the middle deleted and re-inserted with its formats. quill-delta's
/// <c>diff</c> finds smaller ops with a character diff; a rebase only needs an exact one, and this is O(n) without one.
/// </summary>
internal static class RichDiff
{
    public static RichOp Between(RichDocument before, RichDocument after)
    {
        RichComponent[] a = before.ToOp().Components.ToArray();
        RichComponent[] b = after.ToOp().Components.ToArray();
        int max = Math.Min(before.Length, after.Length);

        int prefix = 0;
        var ca = new UnitCursor(a, fromEnd: false);
        var cb = new UnitCursor(b, fromEnd: false);
        while (prefix < max && UnitCursor.Same(ca, cb))
        {
            prefix++;
            ca.Forward();
            cb.Forward();
        }

        // Never end the kept prefix between the halves of a surrogate pair (rich-text ops may not split one).
        if (prefix > 0 && IsHighSurrogateAt(a, prefix - 1))
        {
            prefix--;
        }

        int suffix = 0;
        ca = new UnitCursor(a, fromEnd: true);
        cb = new UnitCursor(b, fromEnd: true);
        while (suffix < max - prefix && UnitCursor.Same(ca, cb))
        {
            suffix++;
            ca.Backward();
            cb.Backward();
        }

        if (suffix > 0 && IsHighSurrogateAt(a, before.Length - suffix - 1))
        {
            suffix--;
        }

        int deleted = before.Length - prefix - suffix;
        int insertedEnd = after.Length - suffix;
        if (deleted == 0 && insertedEnd == prefix)
        {
            return RichOp.Empty;
        }

        var op = new RichOpBuilder();
        op.Retain(prefix);
        op.Delete(deleted);
        int position = 0;
        foreach (RichComponent segment in b)
        {
            int start = position;
            int end = position + segment.Length;
            position = end;
            if (end <= prefix || start >= insertedEnd)
            {
                continue;
            }

            int from = Math.Max(prefix - start, 0);
            int to = Math.Min(insertedEnd - start, segment.Length);
            if (segment.Embed is { } embed)
            {
                op.Insert(embed, segment.Attributes);
            }
            else
            {
                op.Insert(segment.Text!.Substring(from, to - from), segment.Attributes);
            }
        }

        return op.ToOp();
    }

    private static bool IsHighSurrogateAt(RichComponent[] segments, int index)
    {
        if (index < 0)
        {
            return false;
        }

        foreach (RichComponent segment in segments)
        {
            if (index < segment.Length)
            {
                return segment.Text is { } text && char.IsHighSurrogate(text[index]);
            }

            index -= segment.Length;
        }

        return false;
    }

    /// <summary>Walks a document's units (UTF-16 units of text, or one embed) forwards or backwards.</summary>
    private struct UnitCursor
    {
        private readonly RichComponent[] _segments;
        private int _segment;
        private int _offset;

        public UnitCursor(RichComponent[] segments, bool fromEnd)
        {
            _segments = segments;
            _segment = fromEnd ? segments.Length - 1 : 0;
            _offset = fromEnd && segments.Length > 0 ? segments[^1].Length - 1 : 0;
        }

        private readonly bool Valid => _segment >= 0 && _segment < _segments.Length;

        public static bool Same(in UnitCursor x, in UnitCursor y)
        {
            if (!x.Valid || !y.Valid)
            {
                return false;
            }

            RichComponent sx = x._segments[x._segment];
            RichComponent sy = y._segments[y._segment];
            if (!AttributeMap.Equals(sx.Attributes, sy.Attributes))
            {
                return false;
            }

            return (sx.Text, sy.Text) switch
            {
                ({ } tx, { } ty) => tx[x._offset] == ty[y._offset],
                (null, null) => sx.Embed!.Equals(sy.Embed),
                _ => false,
            };
        }

        public void Forward()
        {
            if (++_offset == _segments[_segment].Length)
            {
                _segment++;
                _offset = 0;
            }
        }

        public void Backward()
        {
            if (--_offset < 0 && --_segment >= 0)
            {
                _offset = _segments[_segment].Length - 1;
            }
        }
    }
}
