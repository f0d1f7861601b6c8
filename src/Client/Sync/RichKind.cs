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
/// An op that turns one rich document into another: the common prefix and suffix of content (same characters or
/// embeds) kept, with their format changes as attribute retains (as quill-delta's <c>diff</c> does for equal text), and
/// the middle deleted and re-inserted with its formats. quill-delta finds smaller ops with a character diff; a rebase
/// needs an exact op that keeps unchanged content as retains (so concurrent edits there survive), and this is O(n).
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
        while (prefix < max && UnitCursor.SameContent(ca, cb))
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
        while (suffix < max - prefix && UnitCursor.SameContent(ca, cb))
        {
            suffix++;
            ca.Backward();
            cb.Backward();
        }

        if (suffix > 0 && IsHighSurrogateAt(a, before.Length - suffix - 1))
        {
            suffix--;
        }

        var op = new RichOpBuilder();
        RetainFormats(ref op, a, 0, b, 0, prefix);
        op.Delete(before.Length - prefix - suffix);
        InsertRange(ref op, b, prefix, after.Length - suffix);
        RetainFormats(ref op, a, before.Length - suffix, b, after.Length - suffix, suffix);
        return op.ToOp();
    }

    /// <summary>Retains <paramref name="length"/> units of equal content, changing the formats of <paramref name="a"/> into those of <paramref name="b"/>.</summary>
    private static void RetainFormats(ref RichOpBuilder op, RichComponent[] a, int atA, RichComponent[] b, int atB, int length)
    {
        (int segmentA, int offsetA) = Locate(a, atA);
        (int segmentB, int offsetB) = Locate(b, atB);
        while (length > 0)
        {
            RichComponent sa = a[segmentA];
            RichComponent sb = b[segmentB];
            int n = Math.Min(length, Math.Min(sa.Length - offsetA, sb.Length - offsetB));
            op.Retain(n, DiffAttributes(sa.Attributes, sb.Attributes));
            length -= n;
            if ((offsetA += n) == sa.Length)
            {
                segmentA++;
                offsetA = 0;
            }

            if ((offsetB += n) == sb.Length)
            {
                segmentB++;
                offsetB = 0;
            }
        }
    }

    private static void InsertRange(ref RichOpBuilder op, RichComponent[] segments, int from, int to)
    {
        int position = 0;
        foreach (RichComponent segment in segments)
        {
            int start = position;
            position += segment.Length;
            if (position <= from || start >= to)
            {
                continue;
            }

            if (segment.Embed is { } embed)
            {
                op.Insert(embed, segment.Attributes);
            }
            else
            {
                int skip = Math.Max(from - start, 0);
                op.Insert(segment.Text!.Substring(skip, Math.Min(to - start, segment.Length) - skip), segment.Attributes);
            }
        }
    }

    /// <summary>The attribute changes that turn <paramref name="from"/> into <paramref name="to"/> (a removed attribute as null).</summary>
    private static AttributeMap? DiffAttributes(AttributeMap? from, AttributeMap? to)
    {
        if (AttributeMap.Equals(from, to))
        {
            return null;
        }

        var changes = new List<KeyValuePair<string, RichValue>>();
        if (to is not null)
        {
            foreach (KeyValuePair<string, RichValue> entry in to.Entries)
            {
                if (from is null || !from.TryGetValue(entry.Key, out RichValue old) || !old.Equals(entry.Value))
                {
                    changes.Add(entry);
                }
            }
        }

        if (from is not null)
        {
            foreach (KeyValuePair<string, RichValue> entry in from.Entries)
            {
                if (to is null || !to.ContainsKey(entry.Key))
                {
                    changes.Add(new(entry.Key, RichValue.Null));
                }
            }
        }

        return AttributeMap.Create([.. changes]);
    }

    private static (int Segment, int Offset) Locate(RichComponent[] segments, int position)
    {
        for (int i = 0; i < segments.Length; i++)
        {
            if (position < segments[i].Length)
            {
                return (i, position);
            }

            position -= segments[i].Length;
        }

        return (segments.Length, 0);
    }

    private static bool IsHighSurrogateAt(RichComponent[] segments, int index)
    {
        if (index < 0)
        {
            return false;
        }

        (int segment, int offset) = Locate(segments, index);
        return segment < segments.Length && segments[segment].Text is { } text && char.IsHighSurrogate(text[offset]);
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

        /// <summary>The same character or embed, whatever the formats.</summary>
        public static bool SameContent(in UnitCursor x, in UnitCursor y)
        {
            if (!x.Valid || !y.Valid)
            {
                return false;
            }

            RichComponent sx = x._segments[x._segment];
            RichComponent sy = y._segments[y._segment];
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
