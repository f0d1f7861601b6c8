using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Collab.Engine.Text;

/// <summary>
/// An immutable, persistent text document: a height-balanced (AVL) binary tree whose leaves are
/// string chunks and whose nodes cache their UTF-16 length and code point count. Every subtree is
/// itself a <see cref="Rope"/>. Edits copy only the path from the root to the touched leaves
/// (O(log n) nodes and one chunk of at most <see cref="MaxLeaf"/> chars), so applying a small op
/// to a megabyte document leaves the document and every older version intact and shares all of
/// it but that path.
/// </summary>
/// <remarks>
/// <para>Positions and lengths are in code points (<see cref="Length"/>); a chunk never starts
/// with a low surrogate or ends with a high surrogate, so no edit can split a pair.</para>
/// <para>Equality (<see cref="Equals(Rope)"/>) compares content, independent of chunking.</para>
/// <para>Rope methods take positions the caller owns and throw <see cref="ArgumentOutOfRangeException"/>
/// for ranges outside the document; ops from the wire go through <see cref="TextType"/>, which
/// rejects them with <see cref="OtException"/> first.</para>
/// </remarks>
public sealed class Rope : IEquatable<Rope>
{
    /// <summary>
    /// Largest chunk, in UTF-16 units. A small edit copies one chunk (192 chars on average, ~400 B) and the path above it
    /// (48 B a level). 256 measured best per edit with the structure's memory still modest beside the text (a leaf node,
    /// a string header and an inner node, ~120 B, per ~192 chars): 1,024 copied up to 2 KB per keystroke (1.2–2.2 KB per
    /// edit against 0.56–1.08 KB; 128 saved another 0.1 KB at twice the nodes). docs/PERFORMANCE.md, "Engine: the rope's
    /// leaf size and node size".
    /// </summary>
    internal const int MaxLeaf = 256;

    /// <summary>Chunk size when building from a string: room left for edits before the first split.</summary>
    internal const int BuildLeaf = MaxLeaf * 3 / 4;

    /// <summary>A chunk shorter than this is merged into a neighbour when an edit passes by, which bounds fragmentation.</summary>
    internal const int MinLeaf = MaxLeaf / 4;

    /// <summary>Largest document in UTF-16 units: the longest string .NET can allocate, so <see cref="ToString"/> always succeeds.</summary>
    public const int MaxUtf16Length = 0x3FFFFFDF;

    // A leaf holds its chunk (a string) in _item and has no right child; an inner node holds its left child (a Rope) in
    // _item. One field where there were two keeps a node at 48 B instead of 56, 8 B less for every node an edit copies.
    private readonly object _item;
    private readonly Rope? _right;
    private readonly int _length;
    private readonly int _utf16Length;
    private readonly int _height;

    /// <summary>The empty document. It is the only leaf with no text and never appears inside a larger rope.</summary>
    public static Rope Empty { get; } = new(string.Empty, 0);

    private Rope(string text, int codePoints)
    {
        _item = text;
        _length = codePoints;
        _utf16Length = text.Length;
    }

    private Rope(Rope left, Rope right)
    {
        Debug.Assert(left._utf16Length > 0 && right._utf16Length > 0);
        _item = left;
        _right = right;
        _length = left._length + right._length;
        _utf16Length = left._utf16Length + right._utf16Length;
        _height = Math.Max(left._height, right._height) + 1;
    }

    /// <summary>Length in code points (Unicode scalar values).</summary>
    public int Length => _length;

    /// <summary>Length in UTF-16 code units (the length of <see cref="ToString"/>).</summary>
    public int Utf16Length => _utf16Length;

    /// <summary>True for the empty document.</summary>
    public bool IsEmpty => _utf16Length == 0;

    [MemberNotNullWhen(true, nameof(_text))]
    [MemberNotNullWhen(false, nameof(_left), nameof(_right))]
    private bool IsLeaf => _right is null;

    /// <summary>A leaf's chunk (null for an inner node).</summary>
    private string? _text => _right is null ? Unsafe.As<string>(_item) : null;

    /// <summary>An inner node's left child (null for a leaf).</summary>
    private Rope? _left => _right is null ? null : Unsafe.As<Rope>(_item);

    internal int Height => _height;

    // Structure, for tests that check sharing and fragmentation.
    internal Rope? LeftChild => _left;

    internal Rope? RightChild => _right;

    internal int LeafCount => IsLeaf ? (_utf16Length == 0 ? 0 : 1) : _left.LeafCount + _right.LeafCount;

    /// <summary>
    /// Builds a rope holding <paramref name="text"/>; throws <see cref="OtException"/>
    /// (<see cref="OtErrorCode.InvalidText"/>) if it holds a lone surrogate and
    /// (<see cref="OtErrorCode.TooLarge"/>) if it exceeds <see cref="MaxUtf16Length"/>.
    /// </summary>
    public static Rope FromString(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int codePoints = CodePoints.CountOrInvalid(text);
        if (codePoints < 0)
        {
            TextComponent.ThrowInvalidText();
        }

        if (text.Length > MaxUtf16Length)
        {
            ThrowTooLarge();
        }

        return FromValidText(text, codePoints);
    }

    /// <summary>Inserts <paramref name="text"/> at code point <paramref name="position"/>.</summary>
    public Rope Insert(int position, string text) => Replace(position, 0, text);

    /// <summary>Removes <paramref name="length"/> code points at <paramref name="start"/>.</summary>
    public Rope Remove(int start, int length) => Replace(start, length, string.Empty);

    /// <summary>Replaces <paramref name="length"/> code points at <paramref name="start"/> with <paramref name="text"/>.</summary>
    public Rope Replace(int start, int length, string text)
    {
        CheckRange(start, length);
        ArgumentNullException.ThrowIfNull(text);
        int codePoints = TextComponent.CountInsertCodePoints(text);
        if ((long)_utf16Length + text.Length > MaxUtf16Length)
        {
            ThrowTooLarge();
        }

        return ReplaceRange(start, start + length, text, codePoints);
    }

    /// <summary>The text of <paramref name="length"/> code points from <paramref name="start"/>.</summary>
    public string Slice(int start, int length)
    {
        CheckRange(start, length);
        if (length == 0)
        {
            return string.Empty;
        }

        int from = Utf16OffsetOf(start);
        int to = Utf16OffsetOf(start + length);
        if (IsLeaf)
        {
            return _text.Substring(from, to - from);
        }

        return string.Create(to - from, (Rope: this, From: from), static (span, state) => state.Rope.CopyRange(state.From, span));
    }

    /// <summary>The whole document as one string, built in a single pass (a one-chunk rope returns its chunk).</summary>
    public override string ToString()
    {
        if (IsLeaf)
        {
            return _text;
        }

        return string.Create(_utf16Length, this, static (span, rope) => rope.CopyRange(0, span));
    }

    /// <summary>Copies the whole document into <paramref name="destination"/>, which must hold <see cref="Utf16Length"/> chars.</summary>
    public void CopyTo(Span<char> destination)
    {
        if (destination.Length < _utf16Length)
        {
            throw new ArgumentException("Destination is shorter than the document.", nameof(destination));
        }

        CopyRange(0, destination[.._utf16Length]);
    }

    /// <summary>The chunks in document order, for streaming the text (e.g. into a UTF-8 encoder) without building one string.</summary>
    public ChunkEnumerator EnumerateChunks() => new(this);

    /// <summary>True when the document's text equals <paramref name="text"/> (ordinal).</summary>
    public bool ContentEquals(ReadOnlySpan<char> text)
    {
        if (text.Length != _utf16Length)
        {
            return false;
        }

        foreach (ReadOnlyMemory<char> chunk in EnumerateChunks())
        {
            if (!chunk.Span.SequenceEqual(text[..chunk.Length]))
            {
                return false;
            }

            text = text[chunk.Length..];
        }

        return true;
    }

    /// <summary>True when the document's text equals <paramref name="text"/> (ordinal).</summary>
    public bool ContentEquals(string? text) => text is not null && ContentEquals(text.AsSpan());

    /// <summary>Content equality, independent of how either rope is chunked.</summary>
    public bool Equals([NotNullWhen(true)] Rope? other)
    {
        if (ReferenceEquals(this, other))
        {
            return true;
        }

        if (other is null || other._utf16Length != _utf16Length || other._length != _length)
        {
            return false;
        }

        ChunkEnumerator mine = EnumerateChunks();
        ChunkEnumerator theirs = other.EnumerateChunks();
        ReadOnlySpan<char> a = default;
        ReadOnlySpan<char> b = default;
        while (true)
        {
            if (a.IsEmpty)
            {
                if (!mine.MoveNext())
                {
                    return true; // Equal lengths: both are exhausted together.
                }

                a = mine.Current.Span;
            }

            if (b.IsEmpty)
            {
                theirs.MoveNext();
                b = theirs.Current.Span;
            }

            int n = Math.Min(a.Length, b.Length);
            if (!a[..n].SequenceEqual(b[..n]))
            {
                return false;
            }

            a = a[n..];
            b = b[n..];
        }
    }

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is Rope other && Equals(other);

    /// <summary>Content hash from the length and up to 32 chars at each end: O(log n), consistent with content equality.</summary>
    public override int GetHashCode()
    {
        const int Edge = 32;
        Span<char> edges = stackalloc char[2 * Edge];
        int n = Math.Min(Edge, _utf16Length);
        CopyRange(0, edges[..n]);
        CopyRange(_utf16Length - n, edges.Slice(n, n));
        return HashCode.Combine(_utf16Length, string.GetHashCode(edges[..(2 * n)], StringComparison.Ordinal));
    }

    // ---- Editing -------------------------------------------------------------------------

    /// <summary>Applies a text op whose <see cref="TextOp.BaseLength"/> fits (checked by the caller).</summary>
    internal Rope Apply(TextOp op)
    {
        Debug.Assert(op.BaseLength <= _length);
        ReadOnlySpan<TextComponent> components = op.Components;
        long inserted = 0;
        foreach (ref readonly TextComponent c in components)
        {
            if (c.IsInsert)
            {
                inserted += c.Text.Length;
            }
        }

        if (_utf16Length + inserted > MaxUtf16Length)
        {
            ThrowTooLarge();
        }

        Rope doc = this;
        int position = 0;
        for (int i = 0; i < components.Length; i++)
        {
            ref readonly TextComponent c = ref components[i];
            switch (c.Kind)
            {
                case TextComponentKind.Retain:
                    position += c.Length;
                    break;
                case TextComponentKind.Insert:
                    // An insert next to a delete is one replacement: one path copy instead of two.
                    int deleted = i + 1 < components.Length && components[i + 1].IsDelete ? components[++i].Length : 0;
                    doc = doc.ReplaceRange(position, position + deleted, c.Text!, c.Length);
                    position += c.Length;
                    break;
                default:
                    if (i + 1 < components.Length && components[i + 1].IsInsert)
                    {
                        ref readonly TextComponent insert = ref components[++i];
                        doc = doc.ReplaceRange(position, position + c.Length, insert.Text!, insert.Length);
                        position += insert.Length;
                    }
                    else
                    {
                        doc = doc.ReplaceRange(position, position + c.Length, string.Empty, 0);
                    }

                    break;
            }
        }

        return doc;
    }

    /// <summary>Replaces code points [start, end) with valid text of <paramref name="codePoints"/> code points.</summary>
    internal Rope ReplaceRange(int start, int end, string text, int codePoints)
    {
        Debug.Assert(0 <= start && start <= end && end <= _length);
        if (start == end && text.Length == 0)
        {
            return this;
        }

        return Replace(this, start, end, text, codePoints);
    }

    private static Rope Replace(Rope node, int start, int end, string text, int codePoints)
    {
        if (start == 0 && end == node._length)
        {
            return FromValidText(text, codePoints);
        }

        if (node.IsLeaf)
        {
            return ReplaceInLeaf(node, start, end, text, codePoints);
        }

        Rope left = node._left;
        Rope right = node._right;
        int split = left._length;
        if (end <= split)
        {
            return Join(Replace(left, start, end, text, codePoints), right);
        }

        if (start >= split)
        {
            return Join(left, Replace(right, start - split, end - split, text, codePoints));
        }

        // The range spans both children: cut the tail of the left and the head of the right.
        return Join(Replace(left, start, split, text, codePoints), Replace(right, 0, end - split, string.Empty, 0));
    }

    private static Rope ReplaceInLeaf(Rope leaf, int start, int end, string text, int codePoints)
    {
        string chunk = leaf._text!;
        int from = leaf.LeafUtf16Offset(start);
        int to = leaf.LeafUtf16Offset(end);
        var pieces = new Pieces(chunk.AsSpan(0, from), text, chunk.AsSpan(to));
        if (pieces.Length <= MaxLeaf)
        {
            int length = leaf._length - (end - start) + codePoints;
            return pieces.Length == 0 ? Empty : new Rope(pieces.ToString(0, pieces.Length), length);
        }

        // Over-full: cut into equal chunks (two for a small edit, more for a big paste).
        return Build(pieces, MaxLeaf);
    }

    /// <summary>UTF-16 offset of code point <paramref name="position"/> inside this leaf.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int LeafUtf16Offset(int position) =>
        _length == _utf16Length ? position : CodePoints.Utf16Offset(_text, position);

    private int Utf16OffsetOf(int position)
    {
        int offset = 0;
        Rope node = this;
        while (!node.IsLeaf)
        {
            Rope left = node._left;
            if (position < left._length)
            {
                node = left;
            }
            else
            {
                position -= left._length;
                offset += left._utf16Length;
                node = node._right;
            }
        }

        return offset + node.LeafUtf16Offset(position);
    }

    /// <summary>Copies UTF-16 units [from, from + destination.Length) into <paramref name="destination"/>.</summary>
    private void CopyRange(int from, Span<char> destination)
    {
        Rope node = this;
        while (!destination.IsEmpty)
        {
            if (node.IsLeaf)
            {
                node._text.AsSpan(from, destination.Length).CopyTo(destination);
                return;
            }

            Rope left = node._left;
            if (from >= left._utf16Length)
            {
                from -= left._utf16Length;
                node = node._right;
                continue;
            }

            int fromLeft = Math.Min(left._utf16Length - from, destination.Length);
            left.CopyRange(from, destination[..fromLeft]);
            destination = destination[fromLeft..];
            from = 0;
            node = node._right;
        }
    }

    // ---- Balancing -----------------------------------------------------------------------

    /// <summary>
    /// Concatenates two ropes of any heights in O(|height difference| + 1), keeping the AVL
    /// invariant (the join of Blelloch, Ferizovic and Sun). A short chunk at the seam is merged
    /// with its neighbour chunk so that repeated edits do not fragment the leaves.
    /// </summary>
    internal static Rope Join(Rope left, Rope right)
    {
        if (left._utf16Length == 0)
        {
            return right;
        }

        if (right._utf16Length == 0)
        {
            return left;
        }

        int hl = left._height;
        int hr = right._height;
        if (hl > hr + 1 || (hr == 0 && hl == 1 && right._utf16Length < MinLeaf))
        {
            return Balance(left._left!, Join(left._right!, right));
        }

        if (hr > hl + 1 || (hl == 0 && hr == 1 && left._utf16Length < MinLeaf))
        {
            return Balance(Join(left, right._left!), right._right!);
        }

        if (hl == 0 && hr == 0)
        {
            int total = left._utf16Length + right._utf16Length;
            if (total <= MaxLeaf && Math.Min(left._utf16Length, right._utf16Length) < MinLeaf)
            {
                return new Rope(string.Concat(left._text, right._text), left._length + right._length);
            }
        }

        return new Rope(left, right);
    }

    /// <summary>A node over two AVL trees whose heights differ by at most two, rotated back into balance.</summary>
    private static Rope Balance(Rope left, Rope right)
    {
        int hl = left._height;
        int hr = right._height;
        if (hl > hr + 1)
        {
            Rope ll = left._left!;
            Rope lr = left._right!;
            if (ll._height >= lr._height)
            {
                return new Rope(ll, new Rope(lr, right));
            }

            return new Rope(new Rope(ll, lr._left!), new Rope(lr._right!, right));
        }

        if (hr > hl + 1)
        {
            Rope rl = right._left!;
            Rope rr = right._right!;
            if (rr._height >= rl._height)
            {
                return new Rope(new Rope(left, rl), rr);
            }

            return new Rope(new Rope(left, rl._left!), new Rope(rl._right!, rr));
        }

        return new Rope(left, right);
    }

    // ---- Building ------------------------------------------------------------------------

    private static Rope FromValidText(string text, int codePoints)
    {
        if (text.Length == 0)
        {
            return Empty;
        }

        if (text.Length <= MaxLeaf)
        {
            return new Rope(text, codePoints);
        }

        return Build(new Pieces(text, default, default), BuildLeaf);
    }

    /// <summary>A perfectly balanced rope over the concatenation of <paramref name="pieces"/>, in chunks of about <paramref name="chunk"/> units.</summary>
    private static Rope Build(Pieces pieces, int chunk)
    {
        int total = pieces.Length;
        int count = (total + chunk - 1) / chunk;
        // Equal chunks, each at most MaxLeaf - 1 so that stepping over a surrogate pair still fits.
        int size = Math.Min((total + count - 1) / count, MaxLeaf - 1);
        count = (total + size - 1) / size;
        var leaves = new Rope[count];
        int made = 0;
        int at = 0;
        while (at < total)
        {
            int end = Math.Min(at + size, total);
            if (end < total && char.IsHighSurrogate(pieces[end - 1]))
            {
                end++;
            }

            string text = pieces.ToString(at, end - at);
            leaves[made++] = new Rope(text, CodePoints.CountValid(text));
            at = end;
        }

        return BuildBalanced(leaves.AsSpan(0, made));
    }

    private static Rope BuildBalanced(ReadOnlySpan<Rope> leaves)
    {
        if (leaves.Length == 1)
        {
            return leaves[0];
        }

        int half = leaves.Length / 2;
        return new Rope(BuildBalanced(leaves[..half]), BuildBalanced(leaves[half..]));
    }

    private void CheckRange(int start, int length)
    {
        if ((uint)start > (uint)_length)
        {
            ThrowRange(nameof(start));
        }

        if ((uint)length > (uint)(_length - start))
        {
            ThrowRange(nameof(length));
        }
    }

    [DoesNotReturn]
    private static void ThrowRange(string name) =>
        throw new ArgumentOutOfRangeException(name, "The range lies outside the document.");

    [DoesNotReturn]
    internal static void ThrowTooLarge() =>
        throw new OtException(OtErrorCode.TooLarge, $"The document would exceed {MaxUtf16Length} UTF-16 units.");

    /// <summary>Verifies every structural invariant; for tests.</summary>
    internal void CheckInvariants()
    {
        if (_utf16Length == 0)
        {
            if (!ReferenceEquals(this, Empty))
            {
                throw new InvalidOperationException("An empty rope must be Rope.Empty.");
            }

            return;
        }

        CheckNode(this);

        static void CheckNode(Rope node)
        {
            if (node.IsLeaf)
            {
                string text = node._text;
                if (text.Length == 0 || text.Length > MaxLeaf || node._height != 0)
                {
                    throw new InvalidOperationException($"Bad leaf of {text.Length} chars.");
                }

                if (char.IsLowSurrogate(text[0]) || char.IsHighSurrogate(text[^1]) || CodePoints.CountOrInvalid(text) != node._length)
                {
                    throw new InvalidOperationException("A leaf splits a surrogate pair or miscounts its code points.");
                }

                return;
            }

            Rope left = node._left;
            Rope right = node._right;
            CheckNode(left);
            CheckNode(right);
            if (Math.Abs(left._height - right._height) > 1 || node._height != Math.Max(left._height, right._height) + 1)
            {
                throw new InvalidOperationException("AVL balance violated.");
            }

            if (node._length != left._length + right._length || node._utf16Length != left._utf16Length + right._utf16Length)
            {
                throw new InvalidOperationException("Cached lengths are wrong.");
            }
        }
    }

    /// <summary>Enumerates a rope's chunks in order without recursion.</summary>
    public struct ChunkEnumerator
    {
        private readonly Rope[] _stack;
        private int _depth;
        private ReadOnlyMemory<char> _current;

        internal ChunkEnumerator(Rope root)
        {
            _stack = new Rope[root._height + 1];
            if (root._utf16Length > 0)
            {
                _stack[0] = root;
                _depth = 1;
            }
        }

        /// <summary>The current chunk of the text, in order.</summary>
        public readonly ReadOnlyMemory<char> Current => _current;

        /// <summary>This enumerator, so it can be the subject of <c>foreach</c>.</summary>
        public readonly ChunkEnumerator GetEnumerator() => this;

        /// <summary>Moves to the next chunk; false past the last one.</summary>
        public bool MoveNext()
        {
            if (_depth == 0)
            {
                return false;
            }

            Rope node = _stack[--_depth];
            while (!node.IsLeaf)
            {
                _stack[_depth++] = node._right;
                node = node._left;
            }

            _current = node._text.AsMemory();
            return true;
        }
    }

    /// <summary>Up to three spans seen as one text: the kept head of a chunk, the inserted text, the kept tail.</summary>
    private readonly ref struct Pieces
    {
        private readonly ReadOnlySpan<char> _a;
        private readonly ReadOnlySpan<char> _b;
        private readonly ReadOnlySpan<char> _c;

        public Pieces(ReadOnlySpan<char> a, ReadOnlySpan<char> b, ReadOnlySpan<char> c)
        {
            _a = a;
            _b = b;
            _c = c;
        }

        public int Length => _a.Length + _b.Length + _c.Length;

        public char this[int index] =>
            index < _a.Length ? _a[index]
            : index < _a.Length + _b.Length ? _b[index - _a.Length]
            : _c[index - _a.Length - _b.Length];

        /// <summary>A new string of <paramref name="length"/> units from <paramref name="start"/>.</summary>
        public string ToString(int start, int length) =>
            string.Create(length, Slice(start, length), static (span, pieces) => pieces.CopyTo(span));

        private Pieces Slice(int start, int length)
        {
            ReadOnlySpan<char> a = Cut(_a, ref start, ref length);
            ReadOnlySpan<char> b = Cut(_b, ref start, ref length);
            ReadOnlySpan<char> c = Cut(_c, ref start, ref length);
            return new Pieces(a, b, c);

            static ReadOnlySpan<char> Cut(ReadOnlySpan<char> source, scoped ref int start, scoped ref int length)
            {
                if (start >= source.Length)
                {
                    start -= source.Length;
                    return default;
                }

                int n = Math.Min(source.Length - start, length);
                ReadOnlySpan<char> part = source.Slice(start, n);
                start = 0;
                length -= n;
                return part;
            }
        }

        private void CopyTo(Span<char> destination)
        {
            _a.CopyTo(destination);
            _b.CopyTo(destination[_a.Length..]);
            _c.CopyTo(destination[(_a.Length + _b.Length)..]);
        }
    }
}
