using System.Buffers;
using System.Diagnostics.CodeAnalysis;

namespace Collab.Engine.Text;

/// <summary>
/// The plain-text OT type, wire-compatible with ShareDB's <c>ot-text-unicode</c>: ops are
/// <see cref="TextOp"/>s, snapshots are <see cref="Rope"/>s, and every position counts Unicode
/// code points. Transform, compose, cursor transform and normalization give exactly the results
/// text-unicode gives (checked against its published transform vectors), so JS, C#, Rust and
/// Swift replicas converge. Semantics and the binary format are specified in docs/OT.md.
/// </summary>
/// <remarks>
/// All members are static and pure; <see cref="Instance"/> exposes them through
/// <see cref="IOtType{TSnapshot, TOp}"/> for the generic sequencer. Bad input is rejected with
/// <see cref="OtException"/> before anything is built, and inputs are never modified.
/// </remarks>
public sealed class TextType : IOtType<Rope, TextOp>
{
    /// <summary>The type's name on the wire and in storage.</summary>
    public const string TypeName = "text-unicode";

    private TextType()
    {
    }

    /// <summary>The singleton registered with the sequencer.</summary>
    public static TextType Instance { get; } = new();

    /// <summary><see cref="TypeName"/>.</summary>
    public string Name => TypeName;

    /// <summary>The empty document, <see cref="Rope.Empty"/>.</summary>
    public Rope Empty => Rope.Empty;

    // ---- Apply -----------------------------------------------------------------------------

    /// <summary>
    /// Applies <paramref name="op"/> to <paramref name="document"/>, copying only O(log n) of it.
    /// Throws <see cref="OtErrorCode.OpTooLong"/> when the op reaches past the end of the document.
    /// </summary>
    public static Rope Apply(Rope document, TextOp op)
    {
        ArgumentNullException.ThrowIfNull(document);
        Validate(op, document.Length);
        return op.IsNoop ? document : document.Apply(op);
    }

    /// <summary>
    /// Applies <paramref name="op"/> to a plain string (the model the rope is tested against).
    /// Throws <see cref="OtErrorCode.InvalidText"/> if <paramref name="document"/> holds a lone
    /// surrogate and <see cref="OtErrorCode.OpTooLong"/> if the op does not fit it.
    /// </summary>
    public static string Apply(string document, TextOp op)
    {
        ArgumentNullException.ThrowIfNull(document);
        int length = CodePoints.CountOrInvalid(document);
        if (length < 0)
        {
            TextComponent.ThrowInvalidText();
        }

        Validate(op, length);
        if (op.IsNoop)
        {
            return document;
        }

        // Pass 1 maps the code point extents of retains and deletes to UTF-16 extents;
        // pass 2 writes the result in one allocation.
        ReadOnlySpan<TextComponent> components = op.Components;
        int[] extents = ArrayPool<int>.Shared.Rent(components.Length);
        try
        {
            var cursor = new StringCursor(document, length == document.Length);
            long total = 0;
            for (int i = 0; i < components.Length; i++)
            {
                ref readonly TextComponent c = ref components[i];
                if (c.IsInsert)
                {
                    total += c.Text.Length;
                    continue;
                }

                int units = cursor.Advance(c.Length);
                extents[i] = units;
                if (c.IsRetain)
                {
                    total += units;
                }
            }

            total += document.Length - cursor.Offset;
            if (total > Rope.MaxUtf16Length)
            {
                Rope.ThrowTooLarge();
            }

            return string.Create((int)total, (Document: document, Op: op, Extents: extents), static (span, state) =>
            {
                ReadOnlySpan<TextComponent> components = state.Op.Components;
                string document = state.Document;
                int source = 0;
                for (int i = 0; i < components.Length; i++)
                {
                    ref readonly TextComponent c = ref components[i];
                    switch (c.Kind)
                    {
                        case TextComponentKind.Insert:
                            c.Text!.CopyTo(span);
                            span = span[c.Text.Length..];
                            break;
                        case TextComponentKind.Retain:
                            int units = state.Extents[i];
                            document.AsSpan(source, units).CopyTo(span);
                            span = span[units..];
                            source += units;
                            break;
                        default:
                            source += state.Extents[i];
                            break;
                    }
                }

                document.AsSpan(source).CopyTo(span);
            });
        }
        finally
        {
            ArrayPool<int>.Shared.Return(extents);
        }
    }

    // ---- Transform and compose ---------------------------------------------------------------

    /// <summary>
    /// Transforms <paramref name="op"/> so that it applies after <paramref name="other"/>, both made
    /// against one document (text-unicode's <c>transform(op, other, side)</c>). When both insert at
    /// one position, the op whose side is <see cref="TransformSide.Left"/> goes first: with
    /// <paramref name="side"/> Left the insert of <paramref name="op"/> lands before that of
    /// <paramref name="other"/>. TP1 holds:
    /// <c>apply(apply(d, a), Transform(b, a, Right)) == apply(apply(d, b), Transform(a, b, Left))</c>.
    /// </summary>
    public static TextOp Transform(TextOp op, TextOp other, TransformSide side)
    {
        if (side is not (TransformSide.Left or TransformSide.Right))
        {
            ThrowInvalidSide(side);
        }

        if (op.IsNoop || other.IsNoop)
        {
            return op;
        }

        var result = new TextOpBuilder();
        var reader = new ComponentReader(op.Components);
        foreach (ref readonly TextComponent c in other.Components)
        {
            switch (c.Kind)
            {
                case TextComponentKind.Retain:
                    for (int length = c.Length; length > 0;)
                    {
                        // Inserts of op are kept whole and cost none of other's length.
                        TextComponent piece = reader.Take(length, TextComponentKind.Insert);
                        result.AppendTrusted(piece);
                        if (!piece.IsInsert)
                        {
                            length -= piece.Length;
                        }
                    }

                    break;

                case TextComponentKind.Insert:
                    if (side == TransformSide.Left && reader.PeekKind == TextComponentKind.Insert)
                    {
                        result.AppendTrusted(reader.TakeRest());
                    }

                    result.AppendRetain(c.Length);
                    break;

                default:
                    for (int length = c.Length; length > 0;)
                    {
                        // Text other deleted is gone: op's retains and deletes of it vanish, its inserts stay.
                        TextComponent piece = reader.Take(length, TextComponentKind.Insert);
                        if (piece.IsInsert)
                        {
                            result.AppendTrusted(piece);
                        }
                        else
                        {
                            length -= piece.Length;
                        }
                    }

                    break;
            }
        }

        while (!reader.AtEnd)
        {
            result.AppendTrusted(reader.TakeRest());
        }

        return result.ToOp();
    }

    /// <summary>
    /// One op with the effect of <paramref name="first"/> followed by <paramref name="second"/>
    /// (text-unicode's <c>compose</c>). Note that transform does not distribute over compose
    /// (docs/OT.md): transform against each op of a history in turn, not against their composition.
    /// </summary>
    public static TextOp Compose(TextOp first, TextOp second)
    {
        if (first.IsNoop)
        {
            return second;
        }

        if (second.IsNoop)
        {
            return first;
        }

        var result = new TextOpBuilder();
        var reader = new ComponentReader(first.Components);
        foreach (ref readonly TextComponent c in second.Components)
        {
            switch (c.Kind)
            {
                case TextComponentKind.Retain:
                    for (int length = c.Length; length > 0;)
                    {
                        // Deletes of first are kept whole and do not reach second's input.
                        TextComponent piece = reader.Take(length, TextComponentKind.Delete);
                        result.AppendTrusted(piece);
                        if (!piece.IsDelete)
                        {
                            length -= piece.Length;
                        }
                    }

                    break;

                case TextComponentKind.Insert:
                    result.AppendTrusted(c);
                    break;

                default:
                    for (int length = c.Length; length > 0;)
                    {
                        int taken = reader.Skip(length, TextComponentKind.Delete, out TextComponentKind kind);
                        switch (kind)
                        {
                            case TextComponentKind.Retain:
                                result.AppendDelete(taken);
                                length -= taken;
                                break;
                            case TextComponentKind.Insert:
                                // Deleting text first inserted: both vanish.
                                length -= taken;
                                break;
                            default:
                                result.AppendDelete(taken);
                                break;
                        }
                    }

                    break;
            }
        }

        while (!reader.AtEnd)
        {
            result.AppendTrusted(reader.TakeRest());
        }

        return result.ToOp();
    }

    // ---- Invert ----------------------------------------------------------------------------

    /// <summary>
    /// The op that undoes <paramref name="op"/>, given the document it was applied to: inserts
    /// become deletes and deletes become inserts of the text they removed, in place.
    /// <c>Apply(Apply(d, op), Invert(op, d)) == d</c>.
    /// </summary>
    public static TextOp Invert(TextOp op, Rope documentBefore)
    {
        ArgumentNullException.ThrowIfNull(documentBefore);
        Validate(op, documentBefore.Length);
        var result = new TextOpBuilder();
        int position = 0;
        foreach (ref readonly TextComponent c in op.Components)
        {
            switch (c.Kind)
            {
                case TextComponentKind.Retain:
                    result.AppendRetain(c.Length);
                    position += c.Length;
                    break;
                case TextComponentKind.Insert:
                    result.AppendDelete(c.Length);
                    break;
                default:
                    result.AppendInsert(documentBefore.Slice(position, c.Length), c.Length);
                    position += c.Length;
                    break;
            }
        }

        return result.ToOp();
    }

    /// <summary>The op that undoes <paramref name="op"/> applied to the string <paramref name="documentBefore"/>.</summary>
    public static TextOp Invert(TextOp op, string documentBefore)
    {
        ArgumentNullException.ThrowIfNull(documentBefore);
        int length = CodePoints.CountOrInvalid(documentBefore);
        if (length < 0)
        {
            TextComponent.ThrowInvalidText();
        }

        Validate(op, length);
        var result = new TextOpBuilder();
        var cursor = new StringCursor(documentBefore, length == documentBefore.Length);
        foreach (ref readonly TextComponent c in op.Components)
        {
            switch (c.Kind)
            {
                case TextComponentKind.Retain:
                    result.AppendRetain(c.Length);
                    cursor.Advance(c.Length);
                    break;
                case TextComponentKind.Insert:
                    result.AppendDelete(c.Length);
                    break;
                default:
                    int start = cursor.Offset;
                    int units = cursor.Advance(c.Length);
                    result.AppendInsert(documentBefore.Substring(start, units), c.Length);
                    break;
            }
        }

        return result.ToOp();
    }

    // ---- Cursors ---------------------------------------------------------------------------

    /// <summary>
    /// Moves a cursor (a code point position) through <paramref name="op"/>. For another user's op
    /// this is exactly text-unicode's <c>transformPosition</c>: an insert at the cursor stays after
    /// it, a deleted range pulls it to the range start. With <paramref name="isOwnOp"/> the cursor's
    /// owner made the op, so an insert at the cursor pushes it to the end of the inserted text.
    /// A cursor inside the document before stays inside it after. Throws
    /// <see cref="OtErrorCode.InvalidLength"/> for a negative cursor.
    /// </summary>
    public static int TransformCursor(int cursor, TextOp op, bool isOwnOp)
    {
        if (cursor < 0)
        {
            ThrowNegativeCursor(cursor);
        }

        long position = 0;
        long result = cursor;
        foreach (ref readonly TextComponent c in op.Components)
        {
            if (result < position || (result == position && !(isOwnOp && c.IsInsert)))
            {
                break;
            }

            switch (c.Kind)
            {
                case TextComponentKind.Retain:
                    position += c.Length;
                    break;
                case TextComponentKind.Insert:
                    position += c.Length;
                    result += c.Length;
                    break;
                default:
                    result -= Math.Min(c.Length, result - position);
                    break;
            }
        }

        return (int)Math.Min(result, int.MaxValue);
    }

    /// <summary>Moves both ends of a selection through <paramref name="op"/> (text-unicode's <c>transformSelection</c>); the focus may lie before the anchor.</summary>
    public static (int Anchor, int Focus) TransformCursor((int Anchor, int Focus) selection, TextOp op, bool isOwnOp) =>
        (TransformCursor(selection.Anchor, op, isOwnOp), TransformCursor(selection.Focus, op, isOwnOp));

    // ---- Validation and misc -----------------------------------------------------------------

    /// <summary>The normal form of an arbitrary component sequence (same as <see cref="TextOp.Create"/>).</summary>
    public static TextOp Normalize(ReadOnlySpan<TextComponent> components) => TextOp.Create(components);

    /// <summary>
    /// Checks that <paramref name="op"/> is well-formed and in normal form. Ops made through the public
    /// API always are; this guards ops assembled by trusted internal code.
    /// </summary>
    public static void Validate(TextOp op)
    {
        long baseLength = 0;
        long targetLength = 0;
        TextComponentKind previous = 0;
        foreach (ref readonly TextComponent c in op.Components)
        {
            if (c.Kind is not (TextComponentKind.Retain or TextComponentKind.Insert or TextComponentKind.Delete))
            {
                throw new OtException(OtErrorCode.UnknownComponent, $"Unknown text op component kind {(int)c.Kind}.");
            }

            if (c.Length <= 0)
            {
                TextComponent.ThrowInvalidLength(c.Length);
            }

            if (c.IsInsert)
            {
                int codePoints = string.IsNullOrEmpty(c.Text) ? -1 : CodePoints.CountOrInvalid(c.Text);
                if (codePoints != c.Length)
                {
                    TextComponent.ThrowInvalidText();
                }
            }

            if (c.Kind == previous)
            {
                ThrowNotNormalized("adjacent components of one kind");
            }

            baseLength += c.IsInsert ? 0 : c.Length;
            targetLength += c.IsDelete ? 0 : c.Length;
            previous = c.Kind;
        }

        if (previous == TextComponentKind.Retain)
        {
            ThrowNotNormalized("a trailing retain");
        }

        if (baseLength != op.BaseLength || targetLength != op.TargetLength)
        {
            ThrowNotNormalized("cached lengths that do not match its components");
        }
    }

    /// <summary>Throws <see cref="OtErrorCode.OpTooLong"/> when <paramref name="op"/> reaches past the end of a document of <paramref name="documentLength"/> code points.</summary>
    public static void Validate(TextOp op, long documentLength)
    {
        if (op.BaseLength > documentLength)
        {
            ThrowOpTooLong(op.BaseLength, documentLength);
        }
    }

    /// <summary>True when the op changes nothing.</summary>
    public static bool IsNoop(TextOp op) => op.IsNoop;

    /// <summary>Approximate retained memory of the op in bytes (array, components, inserted strings).</summary>
    public static int SizeOf(TextOp op)
    {
        const int ArrayOverhead = 24;
        const int ComponentSize = 16;
        const int StringOverhead = 22;
        long size = ArrayOverhead + (long)op.Count * ComponentSize;
        foreach (ref readonly TextComponent c in op.Components)
        {
            if (c.IsInsert)
            {
                size += StringOverhead + 2L * c.Text.Length;
            }
        }

        return (int)Math.Min(size, int.MaxValue);
    }

    // ---- IOtType -----------------------------------------------------------------------------

    void IOtType<Rope, TextOp>.Validate(TextOp op, Rope snapshot) => Validate(op, snapshot.Length);

    Rope IOtType<Rope, TextOp>.Apply(Rope snapshot, TextOp op) => Apply(snapshot, op);

    TextOp IOtType<Rope, TextOp>.Transform(TextOp op, TextOp other, TransformSide side) => Transform(op, other, side);

    TextOp IOtType<Rope, TextOp>.Compose(TextOp first, TextOp second) => Compose(first, second);

    bool IOtType<Rope, TextOp>.IsNoop(TextOp op) => op.IsNoop;

    int IOtType<Rope, TextOp>.TransformCursor(int cursor, TextOp op, bool isOwnOp) => TransformCursor(cursor, op, isOwnOp);

    int IOtType<Rope, TextOp>.SizeOf(TextOp op) => SizeOf(op);

    long IOtType<Rope, TextOp>.LengthOf(Rope snapshot) => snapshot.Length;

    void IOtType<Rope, TextOp>.Encode(TextOp op, IBufferWriter<byte> output) => TextOpCodec.Encode(op, output);

    TextOp IOtType<Rope, TextOp>.Decode(ReadOnlySpan<byte> input) => TextOpCodec.Decode(input);

    string IOtType<Rope, TextOp>.ToText(Rope snapshot) => snapshot.ToString();

    Rope IOtType<Rope, TextOp>.FromText(string text) => Rope.FromString(text);

    [DoesNotReturn]
    private static void ThrowOpTooLong(int baseLength, long documentLength) =>
        throw new OtException(OtErrorCode.OpTooLong, $"The op spans {baseLength} code points but the document has {documentLength}.");

    [DoesNotReturn]
    private static void ThrowNotNormalized(string what) =>
        throw new OtException(OtErrorCode.NotNormalized, $"The op is not in normal form: it has {what}.");

    [DoesNotReturn]
    private static void ThrowNegativeCursor(int cursor) =>
        throw new OtException(OtErrorCode.InvalidLength, $"A cursor position must not be negative, got {cursor}.");

    [DoesNotReturn]
    private static void ThrowInvalidSide(TransformSide side) =>
        throw new ArgumentOutOfRangeException(nameof(side), side, "Side must be Left or Right.");

    /// <summary>Walks a well-formed string forward by code points.</summary>
    private struct StringCursor
    {
        private readonly string _text;
        private readonly bool _bmpOnly;
        private int _offset;

        public StringCursor(string text, bool bmpOnly)
        {
            _text = text;
            _bmpOnly = bmpOnly;
        }

        public readonly int Offset => _offset;

        /// <summary>Advances by <paramref name="codePoints"/> and returns the UTF-16 units stepped over.</summary>
        public int Advance(int codePoints)
        {
            int units = _bmpOnly ? codePoints : CodePoints.Utf16Offset(_text.AsSpan(_offset), codePoints);
            _offset += units;
            return units;
        }
    }
}
