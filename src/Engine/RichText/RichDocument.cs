using System.Buffers;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using Collab.Engine.Text;

namespace Collab.Engine.RichText;

/// <summary>
/// An immutable, persistent rich-text document (the rich-text type's snapshot): a height-balanced (AVL) tree whose
/// leaves hold up to <see cref="MaxLeaf"/> units of content as segments (text or an embed, each with its attributes)
/// and whose nodes cache their length. Applying an op copies only the paths from the root to the leaves it touches
/// and those leaves, so a small edit to a large document allocates O(log n) and leaves every older version intact.
/// </summary>
/// <remarks>
/// <para>Lengths are UTF-16 units, an embed counts 1 (as in Quill). Inside a leaf, adjacent text segments with equal
/// attributes are merged; across leaves a run may be cut into pieces, which no observer can see:
/// <see cref="ToOp"/> (the document as quill-delta ops), equality and serialization merge them. Text segments are
/// well-formed and no leaf or segment boundary falls inside a surrogate pair.</para>
/// </remarks>
public sealed class RichDocument : IEquatable<RichDocument>
{
    /// <summary>
    /// Largest leaf in units: a small edit copies at most one leaf's segment array and one text run. 256, as the rope's
    /// chunk: with 1,024 a one-character insert allocated 2.1 KB in the sequencer, with 256 1.1 KB (docs/PERFORMANCE.md,
    /// "Engine: the rope's leaf size and node size").
    /// </summary>
    internal const int MaxLeaf = 256;

    /// <summary>Leaf size when building from scratch: room left for edits before the first split.</summary>
    internal const int BuildLeaf = MaxLeaf * 3 / 4;

    /// <summary>A leaf shorter than this is merged into a neighbour when an edit passes its seam, which bounds fragmentation.</summary>
    internal const int MinLeaf = MaxLeaf / 4;

    /// <summary>Largest document in units (the longest .NET string), as for text documents.</summary>
    public const int MaxLength = Rope.MaxUtf16Length;

    private readonly RichComponent[]? _segments;
    private readonly RichDocument? _left;
    private readonly RichDocument? _right;
    private readonly int _length;
    private readonly int _height;
    private readonly bool _hasSurrogates;

    /// <summary>The empty document; the only leaf with no segments, never inside a larger tree.</summary>
    public static RichDocument Empty { get; } = new([], 0, false);

    private RichDocument(RichComponent[] segments, int length, bool hasSurrogates)
    {
        _segments = segments;
        _length = length;
        _hasSurrogates = hasSurrogates;
    }

    private RichDocument(RichDocument left, RichDocument right)
    {
        Debug.Assert(left._length > 0 && right._length > 0);
        _left = left;
        _right = right;
        _length = left._length + right._length;
        _height = Math.Max(left._height, right._height) + 1;
        _hasSurrogates = left._hasSurrogates || right._hasSurrogates;
    }

    /// <summary>Length in UTF-16 units, an embed counting 1 (Quill's <c>getLength()</c>).</summary>
    public int Length => _length;

    /// <summary>Whether the document holds nothing (length 0).</summary>
    public bool IsEmpty => _length == 0;

    [MemberNotNullWhen(true, nameof(_segments))]
    [MemberNotNullWhen(false, nameof(_left), nameof(_right))]
    private bool IsLeaf => _segments is not null;

    internal int Height => _height;

    internal int LeafCount => IsLeaf ? (_length == 0 ? 0 : 1) : _left.LeafCount + _right.LeafCount;

    /// <summary>
    /// The document that <paramref name="document"/> (an op of inserts only, as quill-delta represents documents)
    /// describes. Throws <see cref="OtException"/> (<see cref="OtErrorCode.Malformed"/>) if it retains or deletes and
    /// (<see cref="OtErrorCode.TooLarge"/>) past <see cref="MaxLength"/>.
    /// </summary>
    public static RichDocument FromOp(RichOp document)
    {
        if (!document.IsDocument)
        {
            throw new OtException(OtErrorCode.Malformed, "A rich-text document holds inserts only; this op retains or deletes.");
        }

        if (document.TargetLength > MaxLength)
        {
            ThrowTooLarge();
        }

        return Build(document.Components);
    }

    /// <summary>Parses the document's quill-delta JSON (<see cref="RichJson.ParseDocument"/>).</summary>
    public static RichDocument Parse(string json) => RichJson.ParseDocument(json);

    /// <summary>The document as quill-delta ops (inserts only, in normal form: what Quill's <c>getContents()</c> gives).</summary>
    public RichOp ToOp()
    {
        if (_length == 0)
        {
            return RichOp.Empty;
        }

        var builder = new RichOpBuilder();
        var run = new List<string>();
        AttributeMap? runAttributes = null;
        foreach (RichComponent segment in EnumerateSegments())
        {
            if (segment.IsText && run.Count > 0 && AttributeMap.Equals(segment.Attributes, runAttributes))
            {
                run.Add(segment.Text);
                continue;
            }

            Flush(ref builder, run, runAttributes);
            if (segment.IsText)
            {
                run.Add(segment.Text);
                runAttributes = segment.Attributes;
            }
            else
            {
                builder.Push(segment);
            }
        }

        Flush(ref builder, run, runAttributes);
        return builder.ToOp();

        // A run cut across leaves is concatenated once, not piece by piece.
        static void Flush(ref RichOpBuilder builder, List<string> run, AttributeMap? attributes)
        {
            if (run.Count > 0)
            {
                builder.Push(RichComponent.InsertTrusted(run.Count == 1 ? run[0] : string.Concat(run), attributes));
                run.Clear();
            }
        }
    }

    /// <summary>The text without embeds, as Quill's <c>getText()</c>.</summary>
    public string ToPlainText()
    {
        var builder = new System.Text.StringBuilder(_length);
        foreach (RichComponent segment in EnumerateSegments())
        {
            if (segment.IsText)
            {
                builder.Append(segment.Text);
            }
        }

        return builder.ToString();
    }

    /// <summary>The document's quill-delta JSON ops array.</summary>
    public override string ToString() => RichJson.Write(this);

    /// <summary>The stored segments in order (a run of equal formatting may come in several pieces).</summary>
    public SegmentEnumerator EnumerateSegments() => new(this, 0);

    /// <summary>The segments from the one holding <paramref name="position"/> on; <see cref="SegmentEnumerator.SkipInFirst"/> says where in it the position falls.</summary>
    internal SegmentEnumerator EnumerateFrom(int position) => new(this, position);

    /// <summary>Content equality (the same quill-delta ops), independent of how either tree is cut.</summary>
    public bool Equals([NotNullWhen(true)] RichDocument? other) =>
        ReferenceEquals(this, other) || (other is not null && other._length == _length && ToOp().Equals(other.ToOp()));

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is RichDocument other && Equals(other);

    /// <summary>The length only: consistent with content equality, and cheap.</summary>
    public override int GetHashCode() => _length;

    // ---- Editing -------------------------------------------------------------------------------------------------

    /// <summary>Applies an op whose base length fits (checked by the caller), path-copying what it touches.</summary>
    internal RichDocument Apply(RichOp op)
    {
        Debug.Assert(op.BaseLength <= _length);
        if ((long)_length - op.BaseLength + op.TargetLength > MaxLength)
        {
            ThrowTooLarge();
        }

        ReadOnlySpan<RichComponent> components = op.Components;
        RichDocument doc = this;
        int position = 0;
        int i = 0;
        while (i < components.Length)
        {
            ref readonly RichComponent c = ref components[i];
            if (c.IsRetain)
            {
                if (c.Attributes is not null)
                {
                    var format = new Edit(default, c.Attributes);
                    doc = EditNode(doc, position, position + c.Length, format);
                }

                position += c.Length;
                i++;
                continue;
            }

            // The inserts at this position and the delete after them are one replacement: one path copy.
            int first = i;
            int inserted = 0;
            while (i < components.Length && components[i].IsInsert)
            {
                inserted += components[i].Length;
                i++;
            }

            int insertEnd = i;
            int deleted = 0;
            if (i < components.Length && components[i].IsDelete)
            {
                deleted = components[i].Length;
                i++;
            }

            var replace = new Edit(components[first..insertEnd], null);
            doc = EditNode(doc, position, position + deleted, replace);
            position += inserted;
        }

        return doc;
    }

    /// <summary>True when <paramref name="position"/> falls between the two halves of a surrogate pair.</summary>
    internal bool SplitsSurrogatePair(int position)
    {
        if (!_hasSurrogates || position <= 0 || position >= _length)
        {
            return false;
        }

        RichDocument node = this;
        while (!node.IsLeaf)
        {
            if (!node._hasSurrogates)
            {
                return false;
            }

            int split = node._left._length;
            if (position < split)
            {
                node = node._left;
            }
            else if (position == split)
            {
                return false; // Leaf boundaries never cut a pair.
            }
            else
            {
                position -= split;
                node = node._right;
            }
        }

        foreach (RichComponent segment in node._segments)
        {
            if (position < segment.Length)
            {
                return segment.IsText && position > 0 && char.IsLowSurrogate(segment.Text[position]) && char.IsHighSurrogate(segment.Text[position - 1]);
            }

            position -= segment.Length;
        }

        return false;
    }

    /// <summary>A replacement (delete [start, end), insert <see cref="Inserted"/>) or a format (compose <see cref="Format"/> onto [start, end)).</summary>
    private readonly ref struct Edit(ReadOnlySpan<RichComponent> inserted, AttributeMap? format)
    {
        public ReadOnlySpan<RichComponent> Inserted { get; } = inserted;

        public AttributeMap? Format { get; } = format;

        public bool IsFormat => Format is not null;
    }

    private static RichDocument EditNode(RichDocument node, int start, int end, scoped in Edit edit)
    {
        if (node.IsLeaf)
        {
            return EditLeaf(node, start, end, edit);
        }

        if (!edit.IsFormat && start == 0 && end == node._length)
        {
            return Build(edit.Inserted);
        }

        RichDocument left = node._left;
        RichDocument right = node._right;
        int split = left._length;
        if (end <= split)
        {
            return Join(EditNode(left, start, end, edit), right);
        }

        if (start >= split)
        {
            return Join(left, EditNode(right, start - split, end - split, edit));
        }

        // The range spans both children: a replacement inserts into the left part and only deletes from the right.
        var rest = edit.IsFormat ? edit : new Edit(default, null);
        return Join(EditNode(left, start, split, edit), EditNode(right, 0, end - split, rest));
    }

    private static RichDocument EditLeaf(RichDocument leaf, int start, int end, scoped in Edit edit)
    {
        // Only the segments the edit touches, and one neighbour on each side (merges happen only at those seams), are
        // rebuilt; the segments before and after them are copied as they are.
        RichComponent[] segments = leaf._segments!;
        int first = 0;
        int windowStart = 0;
        while (first < segments.Length && windowStart + segments[first].Length <= start)
        {
            windowStart += segments[first].Length;
            first++;
        }

        int last = first;
        int windowEnd = windowStart;
        while (last < segments.Length && windowEnd < end)
        {
            windowEnd += segments[last].Length;
            last++;
        }

        if (first > 0)
        {
            first--;
            windowStart -= segments[first].Length;
        }

        if (last < segments.Length)
        {
            windowEnd += segments[last].Length;
            last++;
        }

        ReadOnlySpan<RichComponent> window = segments.AsSpan(first, last - first);
        var pieces = new LeafBuilder();
        try
        {
            // What the leaf keeps cannot hold a surrogate if the leaf held none: only inserted text needs a scan.
            pieces.HasSurrogates = leaf._hasSurrogates;
            pieces.AddRange(window, 0, start - windowStart, null);
            if (edit.IsFormat)
            {
                pieces.AddRange(window, start - windowStart, end - windowStart, edit.Format);
            }
            else
            {
                pieces.AddInserts(edit.Inserted);
            }

            pieces.AddRange(window, end - windowStart, windowEnd - windowStart, null);
            return pieces.Build(segments.AsSpan(0, first), segments.AsSpan(last), leaf._length - (windowEnd - windowStart));
        }
        finally
        {
            pieces.Dispose();
        }
    }

    /// <summary>A balanced tree over <paramref name="segments"/> (valid inserts).</summary>
    private static RichDocument Build(ReadOnlySpan<RichComponent> segments)
    {
        var pieces = new LeafBuilder();
        try
        {
            pieces.AddInserts(segments);
            return pieces.Build(default, default, 0);
        }
        finally
        {
            pieces.Dispose();
        }
    }

    private static RichDocument NewLeaf(RichComponent[] segments, int length)
    {
        bool surrogates = false;
        foreach (RichComponent segment in segments)
        {
            if (HasSurrogate(segment))
            {
                surrogates = true;
                break;
            }
        }

        return new RichDocument(segments, length, surrogates);
    }

    private static bool HasSurrogate(in RichComponent segment) => segment.IsText && segment.Text.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF');

    // ---- Balancing (as Rope: the AVL join of Blelloch, Ferizovic and Sun) -------------------------------------------

    private static RichDocument Join(RichDocument left, RichDocument right)
    {
        if (left._length == 0)
        {
            return right;
        }

        if (right._length == 0)
        {
            return left;
        }

        int hl = left._height;
        int hr = right._height;
        if (hl > hr + 1 || (hr == 0 && hl == 1 && right._length < MinLeaf))
        {
            return Balance(left._left!, Join(left._right!, right));
        }

        if (hr > hl + 1 || (hl == 0 && hr == 1 && left._length < MinLeaf))
        {
            return Balance(Join(left, right._left!), right._right!);
        }

        if (hl == 0 && hr == 0 && left._length + right._length <= MaxLeaf
            && (Math.Min(left._length, right._length) < MinLeaf || Mergeable(left._segments![^1], right._segments![0])))
        {
            return MergeLeaves(left, right);
        }

        return new RichDocument(left, right);
    }

    private static RichDocument Balance(RichDocument left, RichDocument right)
    {
        int hl = left._height;
        int hr = right._height;
        if (hl > hr + 1)
        {
            RichDocument ll = left._left!;
            RichDocument lr = left._right!;
            if (ll._height >= lr._height)
            {
                return new RichDocument(ll, new RichDocument(lr, right));
            }

            return new RichDocument(new RichDocument(ll, lr._left!), new RichDocument(lr._right!, right));
        }

        if (hr > hl + 1)
        {
            RichDocument rl = right._left!;
            RichDocument rr = right._right!;
            if (rr._height >= rl._height)
            {
                return new RichDocument(new RichDocument(left, rl), rr);
            }

            return new RichDocument(new RichDocument(left, rl._left!), new RichDocument(rl._right!, rr));
        }

        return new RichDocument(left, right);
    }

    private static RichDocument MergeLeaves(RichDocument left, RichDocument right)
    {
        RichComponent[] a = left._segments!;
        RichComponent[] b = right._segments!;
        int seam = Mergeable(a[^1], b[0]) ? 1 : 0;
        var merged = new RichComponent[a.Length + b.Length - seam];
        a.CopyTo(merged, 0);
        b.AsSpan(seam).CopyTo(merged.AsSpan(a.Length));
        if (seam == 1)
        {
            merged[a.Length - 1] = RichComponent.InsertTrusted(string.Concat(a[^1].Text, b[0].Text), a[^1].Attributes);
        }

        return new RichDocument(merged, left._length + right._length, left._hasSurrogates || right._hasSurrogates);
    }

    private static bool Mergeable(in RichComponent a, in RichComponent b) => a.IsText && b.IsText && AttributeMap.Equals(a.Attributes, b.Attributes);

    private static RichDocument BuildBalanced(ReadOnlySpan<RichDocument> leaves)
    {
        if (leaves.Length == 1)
        {
            return leaves[0];
        }

        int half = leaves.Length / 2;
        return new RichDocument(BuildBalanced(leaves[..half]), BuildBalanced(leaves[half..]));
    }

    [DoesNotReturn]
    internal static void ThrowTooLarge() =>
        throw new OtException(OtErrorCode.TooLarge, $"The document would exceed {MaxLength} units.");

    /// <summary>Verifies every structural invariant; for tests.</summary>
    internal void CheckInvariants()
    {
        if (_length == 0)
        {
            if (!ReferenceEquals(this, Empty))
            {
                throw new InvalidOperationException("An empty document must be RichDocument.Empty.");
            }

            return;
        }

        CheckNode(this);

        static void CheckNode(RichDocument node)
        {
            if (node.IsLeaf)
            {
                int length = 0;
                bool surrogates = false;
                for (int i = 0; i < node._segments.Length; i++)
                {
                    RichComponent s = node._segments[i];
                    if (!s.IsInsert || s.Length <= 0 || (s.IsText && (s.Text.Length != s.Length || CodePoints.CountOrInvalid(s.Text) < 0)))
                    {
                        throw new InvalidOperationException("A leaf holds an invalid segment.");
                    }

                    if (i > 0 && Mergeable(node._segments[i - 1], s))
                    {
                        throw new InvalidOperationException("A leaf holds two mergeable segments side by side.");
                    }

                    surrogates |= s.IsText && s.Text.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF');
                    length += s.Length;
                }

                // The surrogate flag may stay raised after the text holding one is deleted (it only saves scans), never the reverse.
                if (length != node._length || length == 0 || length > MaxLeaf || node._height != 0 || (surrogates && !node._hasSurrogates))
                {
                    throw new InvalidOperationException($"Bad leaf of {length} units.");
                }

                return;
            }

            CheckNode(node._left);
            CheckNode(node._right);
            if (Math.Abs(node._left._height - node._right._height) > 1 || node._height != Math.Max(node._left._height, node._right._height) + 1)
            {
                throw new InvalidOperationException("AVL balance violated.");
            }

            if (node._length != node._left._length + node._right._length || node._hasSurrogates != (node._left._hasSurrogates || node._right._hasSurrogates))
            {
                throw new InvalidOperationException("Cached values are wrong.");
            }
        }
    }

    /// <summary>Enumerates the segments (inserts) in order without recursion, optionally from a position.</summary>
    public struct SegmentEnumerator
    {
        private readonly RichDocument[] _stack;
        private int _depth;
        private RichComponent[]? _leaf;
        private int _index;
        private RichComponent _current;

        internal SegmentEnumerator(RichDocument root, int from)
        {
            _stack = new RichDocument[root._height + 1];
            if (root._length == 0)
            {
                return;
            }

            // Descend to the leaf holding `from`, stacking the right siblings still to visit.
            RichDocument node = root;
            while (!node.IsLeaf)
            {
                if (from < node._left._length)
                {
                    _stack[_depth++] = node._right;
                    node = node._left;
                }
                else
                {
                    from -= node._left._length;
                    node = node._right;
                }
            }

            _leaf = node._segments;
            while (_index < _leaf.Length && from >= _leaf[_index].Length)
            {
                from -= _leaf[_index].Length;
                _index++;
            }

            SkipInFirst = from;
        }

        /// <summary>Units of the first segment that lie before the requested start position.</summary>
        internal int SkipInFirst { get; }

        /// <summary>The current segment, as an insert component (text or embed with its attributes).</summary>
        public readonly RichComponent Current => _current;

        /// <summary>This enumerator, so it can be the subject of <c>foreach</c>.</summary>
        public readonly SegmentEnumerator GetEnumerator() => this;

        /// <summary>Moves to the next segment; false past the last one.</summary>
        public bool MoveNext()
        {
            while (_leaf is null || _index == _leaf.Length)
            {
                if (_depth == 0)
                {
                    return false;
                }

                RichDocument node = _stack[--_depth];
                while (!node.IsLeaf)
                {
                    _stack[_depth++] = node._right;
                    node = node._left;
                }

                _leaf = node._segments;
                _index = 0;
            }

            _current = _leaf[_index++];
            return true;
        }
    }

    /// <summary>
    /// The content of a new leaf (or leaves) as pieces of existing text and embeds, merged into runs of equal
    /// formatting; each run's text is copied once when the leaves are built.
    /// </summary>
    private ref struct LeafBuilder
    {
        private Piece[] _pieces;
        private int _count;
        private int _runs;
        private long _length;

        public LeafBuilder()
        {
            _pieces = ArrayPool<Piece>.Shared.Rent(16);
        }

        /// <summary>Whether any piece may hold a surrogate (set from the source leaf, raised by inserted text).</summary>
        public bool HasSurrogates { get; set; }

        public void AddInserts(ReadOnlySpan<RichComponent> inserts)
        {
            foreach (ref readonly RichComponent c in inserts)
            {
                HasSurrogates |= HasSurrogate(c);
                Add(c.Content!, 0, c.Length, c.Attributes);
            }
        }

        /// <summary>Adds the content of <paramref name="segments"/> in [<paramref name="from"/>, <paramref name="to"/>), composing <paramref name="format"/> onto it when given.</summary>
        public void AddRange(ReadOnlySpan<RichComponent> segments, int from, int to, AttributeMap? format)
        {
            int position = 0;
            foreach (RichComponent s in segments)
            {
                int start = position;
                position += s.Length;
                if (position <= from)
                {
                    continue;
                }

                if (start >= to)
                {
                    break;
                }

                int offset = Math.Max(from - start, 0);
                int end = Math.Min(to - start, s.Length);
                if (s.IsText)
                {
                    RichOpReader.CheckCut(s.Text, offset);
                    RichOpReader.CheckCut(s.Text, end);
                }

                // A segment of the document is an insert, so a format composes with keepNull false (quill-delta's compose).
                AttributeMap? attributes = format is null ? s.Attributes : AttributeMap.Compose(s.Attributes, format, keepNull: false);
                Add(s.Content!, offset, end - offset, attributes);
            }
        }

        public void Add(object content, int offset, int length, AttributeMap? attributes)
        {
            Debug.Assert(length > 0);
            bool startsRun = true;
            if (_count > 0 && content is string)
            {
                ref Piece last = ref _pieces[_count - 1];
                startsRun = last.Content is not string || !AttributeMap.Equals(last.Attributes, attributes);
                if (!startsRun && ReferenceEquals(last.Content, content) && last.Offset + last.Length == offset)
                {
                    last.Length += length; // The adjacent part of the same string: widen the piece.
                    _length += length;
                    return;
                }
            }

            if (_count == _pieces.Length)
            {
                Piece[] bigger = ArrayPool<Piece>.Shared.Rent(_count * 2);
                _pieces.AsSpan(0, _count).CopyTo(bigger);
                ArrayPool<Piece>.Shared.Return(_pieces, clearArray: true);
                _pieces = bigger;
            }

            _pieces[_count++] = new Piece(content, offset, length, attributes, startsRun);
            _runs += startsRun ? 1 : 0;
            _length += length;
        }

        /// <summary>The leaf (or leaves) of <paramref name="before"/>, the pieces merged into runs, then <paramref name="after"/> (<paramref name="outsideLength"/> units together).</summary>
        public readonly RichDocument Build(ReadOnlySpan<RichComponent> before, ReadOnlySpan<RichComponent> after, int outsideLength)
        {
            long total = _length + outsideLength;
            if (total == 0)
            {
                return Empty;
            }

            if (total > MaxLength)
            {
                ThrowTooLarge();
            }

            var runs = new RichComponent[before.Length + _runs + after.Length];
            before.CopyTo(runs);
            int made = before.Length;
            for (int i = 0; i < _count;)
            {
                int j = i + 1;
                int length = _pieces[i].Length;
                while (j < _count && !_pieces[j].StartsRun)
                {
                    length += _pieces[j].Length;
                    j++;
                }

                runs[made++] = RichComponent.InsertTrusted(RunContent(_pieces.AsSpan(i, j - i), length), _pieces[i].Attributes);
                i = j;
            }

            after.CopyTo(runs.AsSpan(made));
            return total <= MaxLeaf ? new RichDocument(runs, (int)total, HasSurrogates) : Split(runs, (int)total);
        }

        public void Dispose()
        {
            ArrayPool<Piece>.Shared.Return(_pieces, clearArray: true);
            _pieces = [];
            _count = 0;
        }

        private static object RunContent(ReadOnlySpan<Piece> run, int length)
        {
            Piece first = run[0];
            if (first.Content is not string text)
            {
                return first.Content;
            }

            if (run.Length == 1 && first.Offset == 0 && first.Length == text.Length)
            {
                return text;
            }

            if (run.Length == 1)
            {
                return text.Substring(first.Offset, first.Length);
            }

            return string.Create(length, run, static (span, pieces) =>
            {
                foreach (Piece piece in pieces)
                {
                    ((string)piece.Content).AsSpan(piece.Offset, piece.Length).CopyTo(span);
                    span = span[piece.Length..];
                }
            });
        }

        /// <summary>Cuts over-full content into equal leaves (two for a small edit, more for a big paste), keeping pairs whole.</summary>
        private static RichDocument Split(RichComponent[] runs, int total)
        {
            int count = (total + BuildLeaf - 1) / BuildLeaf;
            int size = Math.Min((total + count - 1) / count, MaxLeaf - 1);
            var leaves = new RichDocument[(total + size - 1) / size];
            int made = 0;
            RichComponent[] scratch = ArrayPool<RichComponent>.Shared.Rent(runs.Length + 1);
            try
            {
                int index = 0;
                RichComponent rest = default; // the part of a text run the previous leaf did not take
                while (rest.Kind != 0 || index < runs.Length)
                {
                    int n = 0;
                    int length = 0;
                    while (length < size && (rest.Kind != 0 || index < runs.Length))
                    {
                        RichComponent run = rest.Kind != 0 ? rest : runs[index];
                        int room = size - length;
                        if (run.Length > room && run.IsText)
                        {
                            // Never cut a pair: this leaf takes one unit more (size is below MaxLeaf).
                            room += char.IsHighSurrogate(run.Text[room - 1]) ? 1 : 0;
                        }

                        if (run.Length <= room)
                        {
                            scratch[n++] = run;
                            length += run.Length;
                            index += rest.Kind != 0 ? 0 : 1;
                            rest = default;
                            continue;
                        }

                        scratch[n++] = RichComponent.InsertTrusted(run.Text![..room], run.Attributes);
                        length += room;
                        index += rest.Kind != 0 ? 0 : 1;
                        rest = RichComponent.InsertTrusted(run.Text[room..], run.Attributes);
                    }

                    leaves[made++] = NewLeaf(scratch.AsSpan(0, n).ToArray(), length);
                }
            }
            finally
            {
                ArrayPool<RichComponent>.Shared.Return(scratch, clearArray: true);
            }

            return BuildBalanced(leaves.AsSpan(0, made));
        }

        private struct Piece(object content, int offset, int length, AttributeMap? attributes, bool startsRun)
        {
            public readonly object Content = content;
            public readonly int Offset = offset;
            public int Length = length;
            public readonly AttributeMap? Attributes = attributes;
            public readonly bool StartsRun = startsRun;
        }
    }
}
