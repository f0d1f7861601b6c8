using System.Buffers;
using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;

namespace Collab.Engine.RichText;

/// <summary>
/// The rich-text OT type, with the semantics of ShareDB's <c>rich-text</c> 4.1.0 type on <c>quill-delta</c> 4.2.2
/// (Quill's Delta format): ops are <see cref="RichOp"/>s, snapshots are <see cref="RichDocument"/>s, and lengths count
/// UTF-16 units with an embed counting 1. Apply, transform, compose, cursor transform and invert give exactly the
/// results of the npm oracle (checked case by case against it), so Quill clients running rich-text converge with the
/// server. Semantics, tie-breaks and the binary format are specified in docs/OT.md.
/// </summary>
/// <remarks>
/// The algorithms are static and pure. An instance carries the <see cref="RichTextOptions"/> limits that
/// <see cref="ValidateLimits"/> enforces on submitted ops, and exposes the algorithms through
/// <see cref="IOtType{TSnapshot, TOp}"/> for the generic sequencer. Inputs are never modified; bad input is rejected
/// with <see cref="OtException"/> and a typed code.
/// </remarks>
public sealed class RichTextType : IOtType<RichDocument, RichOp>
{
    /// <summary>The type's name on the wire and in storage (ShareDB's name for it).</summary>
    public const string TypeName = "rich-text";

    private readonly int _maxAttributes;
    private readonly int _maxNameLength;
    private readonly int _maxValueBytes;
    private readonly int _maxEmbedBytes;
    private readonly FrozenSet<string>? _embedTypes;
    private readonly FrozenSet<string>? _attributeNames;

    /// <summary>A type enforcing <paramref name="options"/> (copied: later changes to it have no effect).</summary>
    public RichTextType(RichTextOptions? options = null)
    {
        options ??= new RichTextOptions();
        options.Validate();
        _maxAttributes = options.MaxAttributesPerComponent;
        _maxNameLength = options.MaxAttributeNameLength;
        _maxValueBytes = options.MaxAttributeValueBytes;
        _maxEmbedBytes = options.MaxEmbedBytes;
        _embedTypes = options.AllowedEmbedTypes?.ToFrozenSet(StringComparer.Ordinal);
        _attributeNames = options.AllowedAttributes?.ToFrozenSet(StringComparer.Ordinal);
    }

    /// <summary>The type with default limits.</summary>
    public static RichTextType Default { get; } = new();

    /// <inheritdoc />
    public string Name => TypeName;

    /// <inheritdoc />
    public RichDocument Empty => RichDocument.Empty;

    // ---- Apply -----------------------------------------------------------------------------------------------------

    /// <summary>
    /// Applies <paramref name="op"/> to <paramref name="document"/> (rich-text's <c>apply</c>: the document composed with
    /// the op), copying only what it touches. Throws <see cref="OtErrorCode.OpTooLong"/> when the op reaches past the
    /// end, <see cref="OtErrorCode.SplitsSurrogatePair"/> when a boundary cuts a pair, <see cref="OtErrorCode.TooLarge"/>
    /// past <see cref="RichDocument.MaxLength"/>.
    /// </summary>
    public static RichDocument Apply(RichDocument document, RichOp op)
    {
        ArgumentNullException.ThrowIfNull(document);
        CheckFits(op, document);
        return op.IsNoop ? document : document.Apply(op);
    }

    // ---- Transform and compose -----------------------------------------------------------------------------------

    /// <summary>
    /// Transforms <paramref name="op"/> so that it applies after <paramref name="other"/>, both made against one document:
    /// rich-text's <c>transform(op, other, side)</c>, which is quill-delta's <c>other.transform(op, side == 'left')</c>.
    /// <b>With <see cref="TransformSide.Left"/>, <paramref name="other"/> has priority</b> (the opposite of text-unicode):
    /// when both insert at one position, <paramref name="other"/>'s insert comes first, and where both set one attribute,
    /// <paramref name="other"/>'s value stands. With <see cref="TransformSide.Right"/>, <paramref name="op"/> wins both.
    /// </summary>
    public static RichOp Transform(RichOp op, RichOp other, TransformSide side)
    {
        if (side is not (TransformSide.Left or TransformSide.Right))
        {
            ThrowInvalidSide(side);
        }

        if (op.IsNoop || other.IsNoop)
        {
            return op;
        }

        bool priority = side == TransformSide.Left;
        var first = new RichOpReader(other.Components);
        var second = new RichOpReader(op.Components);
        var result = new RichOpBuilder();
        while (first.HasNext || second.HasNext)
        {
            if (first.PeekKind == RichComponentKind.Insert && (priority || second.PeekKind != RichComponentKind.Insert))
            {
                result.RetainTrusted(first.NextWhole().Length, null);
            }
            else if (second.PeekKind == RichComponentKind.Insert)
            {
                result.Push(second.NextWhole());
            }
            else
            {
                int length = Math.Min(first.PeekLength, second.PeekLength);
                RichComponent mine = first.Next(length);
                RichComponent theirs = second.Next(length);
                if (mine.IsDelete)
                {
                    // other deleted this range: op's retain or delete of it vanishes.
                    continue;
                }

                if (theirs.IsDelete)
                {
                    result.Push(theirs);
                }
                else
                {
                    result.RetainTrusted(length, AttributeMap.Transform(mine.Attributes, theirs.Attributes, priority));
                }
            }
        }

        return result.ToOp();
    }

    /// <summary>
    /// One op with the effect of <paramref name="first"/> followed by <paramref name="second"/> (rich-text's
    /// <c>compose</c>). Transform does not distribute over compose: transform against each op of a history in turn.
    /// Throws <see cref="OtErrorCode.SplitsSurrogatePair"/> when <paramref name="second"/> cuts a pair
    /// <paramref name="first"/> inserted.
    /// </summary>
    public static RichOp Compose(RichOp first, RichOp second)
    {
        if (second.IsNoop)
        {
            return first;
        }

        if (first.IsNoop)
        {
            return second;
        }

        var a = new RichOpReader(first.Components);
        var b = new RichOpReader(second.Components);
        var result = new RichOpBuilder();
        while (a.HasNext || b.HasNext)
        {
            if (b.PeekKind == RichComponentKind.Insert)
            {
                result.Push(b.NextWhole());
            }
            else if (a.PeekKind == RichComponentKind.Delete)
            {
                result.Push(a.NextWhole());
            }
            else
            {
                int length = Math.Min(a.PeekLength, b.PeekLength);
                if (b.PeekKind == RichComponentKind.Delete)
                {
                    // Inserted then deleted: both vanish; a retained range becomes deleted.
                    if (a.Skip(length) == RichComponentKind.Retain)
                    {
                        result.Push(RichComponent.DeleteTrusted(length));
                    }

                    b.Skip(length);
                    continue;
                }

                RichComponent mine = a.Next(length);
                RichComponent theirs = b.Next(length);
                // Nulls are kept when composing two retains (they still remove formats), dropped onto an insert.
                AttributeMap? attributes = AttributeMap.Compose(mine.Attributes, theirs.Attributes, keepNull: mine.IsRetain);
                result.Push(mine.IsRetain ? RichComponent.RetainTrusted(length, attributes) : mine.WithAttributes(attributes));
            }
        }

        return result.ToOp();
    }

    // ---- Invert ----------------------------------------------------------------------------------------------------

    /// <summary>
    /// The op that undoes <paramref name="op"/> given the document it applied to (quill-delta's <c>invert(base)</c>):
    /// inserts become deletes, deletes re-insert what they removed with its formats, a format goes back to the
    /// formats it replaced. <c>Apply(Apply(d, op), Invert(op, d)) == d</c>.
    /// </summary>
    public static RichOp Invert(RichOp op, RichDocument documentBefore)
    {
        ArgumentNullException.ThrowIfNull(documentBefore);
        Validate(op, documentBefore);
        var result = new RichOpBuilder();
        int position = 0;
        foreach (ref readonly RichComponent c in op.Components)
        {
            if (c.IsInsert)
            {
                result.Push(RichComponent.DeleteTrusted(c.Length));
                continue;
            }

            if (c.IsPlainRetain)
            {
                result.RetainTrusted(c.Length, null);
                position += c.Length;
                continue;
            }

            int end = position + c.Length;
            RichDocument.SegmentEnumerator segments = documentBefore.EnumerateFrom(position);
            int skip = segments.SkipInFirst;
            int at = position - skip;
            while (at < end && segments.MoveNext())
            {
                RichComponent segment = segments.Current;
                int from = Math.Max(position - at, 0);
                int to = Math.Min(end - at, segment.Length);
                at += segment.Length;
                if (c.IsDelete)
                {
                    result.Push(from == 0 && to == segment.Length ? segment : RichComponent.InsertTrusted(segment.Text!.Substring(from, to - from), segment.Attributes));
                }
                else
                {
                    result.RetainTrusted(to - from, AttributeMap.Invert(c.Attributes, segment.Attributes));
                }
            }

            position = end;
        }

        return result.ToOp();
    }

    // ---- Cursors ---------------------------------------------------------------------------------------------------

    /// <summary>
    /// Moves a cursor (a UTF-16 position) through <paramref name="op"/>: rich-text's <c>transformCursor</c>, i.e.
    /// quill-delta's <c>transformPosition(cursor, !isOwnOp)</c>. Another user's insert at the cursor leaves it before
    /// the insert; the cursor owner's own insert pushes it past; a deleted range pulls it to the range start. Throws
    /// <see cref="OtErrorCode.InvalidLength"/> for a negative cursor.
    /// </summary>
    public static int TransformCursor(int cursor, RichOp op, bool isOwnOp)
    {
        if (cursor < 0)
        {
            ThrowNegativeCursor(cursor);
        }

        bool priority = !isOwnOp;
        long index = cursor;
        long offset = 0;
        foreach (ref readonly RichComponent c in op.Components)
        {
            if (offset > index)
            {
                break;
            }

            if (c.IsDelete)
            {
                index -= Math.Min(c.Length, index - offset);
                continue;
            }

            if (c.IsInsert && (offset < index || !priority))
            {
                index += c.Length;
            }

            offset += c.Length;
        }

        return (int)Math.Min(index, int.MaxValue);
    }

    /// <summary>Moves both ends of a selection through <paramref name="op"/>; the focus may precede the anchor.</summary>
    public static (int Anchor, int Focus) TransformCursor((int Anchor, int Focus) selection, RichOp op, bool isOwnOp) =>
        (TransformCursor(selection.Anchor, op, isOwnOp), TransformCursor(selection.Focus, op, isOwnOp));

    // ---- Validation --------------------------------------------------------------------------------------------------

    /// <summary>
    /// Checks that <paramref name="op"/> fits <paramref name="document"/>: its base length is at most the document's
    /// (<see cref="OtErrorCode.OpTooLong"/>) and none of its boundaries falls inside a surrogate pair
    /// (<see cref="OtErrorCode.SplitsSurrogatePair"/>).
    /// </summary>
    public static void Validate(RichOp op, RichDocument document)
    {
        ArgumentNullException.ThrowIfNull(document);
        CheckFits(op, document);
        int position = 0;
        foreach (ref readonly RichComponent c in op.Components)
        {
            // Every component's end is a boundary where something changes (normal form has no trailing plain retain);
            // an insert starts where the previous component ended.
            if (!c.IsInsert)
            {
                position += c.Length;
                if (document.SplitsSurrogatePair(position))
                {
                    RichOpReader.ThrowSplitsPair();
                }
            }
        }
    }

    /// <summary>
    /// Enforces this instance's <see cref="RichTextOptions"/> on an op a client submits: attribute count
    /// (<see cref="OtErrorCode.TooManyAttributes"/>), name length and value size (<see cref="OtErrorCode.AttributeTooLarge"/>),
    /// allowed names (<see cref="OtErrorCode.UnknownAttribute"/>), embed size (<see cref="OtErrorCode.EmbedTooLarge"/>)
    /// and allowed embed types (<see cref="OtErrorCode.UnknownEmbedType"/>). Not applied to ops read back from the op
    /// log, so that tightening a limit never makes a stored document unreadable.
    /// </summary>
    public void ValidateLimits(RichOp op)
    {
        foreach (ref readonly RichComponent c in op.Components)
        {
            if (c.Attributes is { } attributes)
            {
                if (attributes.Count > _maxAttributes)
                {
                    throw new OtException(OtErrorCode.TooManyAttributes, $"A component carries {attributes.Count} attributes; the limit is {_maxAttributes}.");
                }

                foreach (KeyValuePair<string, RichValue> entry in attributes.Entries)
                {
                    if (entry.Key.Length > _maxNameLength)
                    {
                        throw new OtException(OtErrorCode.AttributeTooLarge, $"The attribute name '{Truncate(entry.Key)}' is {entry.Key.Length} units long; the limit is {_maxNameLength}.");
                    }

                    if (_attributeNames is not null && !_attributeNames.Contains(entry.Key))
                    {
                        throw new OtException(OtErrorCode.UnknownAttribute, $"The attribute '{entry.Key}' is not allowed here.");
                    }

                    long bytes = RichOpCodec.GetEncodedLength(entry.Value, _maxValueBytes + 1L);
                    if (bytes > _maxValueBytes)
                    {
                        throw new OtException(OtErrorCode.AttributeTooLarge, $"The value of attribute '{entry.Key}' takes more than {_maxValueBytes} bytes.");
                    }
                }
            }

            if (c.Embed is { } embed)
            {
                if (_embedTypes is not null && !_embedTypes.Contains(embed.Type))
                {
                    throw new OtException(OtErrorCode.UnknownEmbedType, $"The embed type '{Truncate(embed.Type)}' is not allowed here.");
                }

                long bytes = RichOpCodec.GetEncodedLength(embed, _maxEmbedBytes + 1L);
                if (bytes > _maxEmbedBytes)
                {
                    throw new OtException(OtErrorCode.EmbedTooLarge, $"An embed of type '{Truncate(embed.Type)}' takes more than {_maxEmbedBytes} bytes.");
                }
            }
        }

        static string Truncate(string text) => text.Length <= 32 ? text : text[..32] + "…";
    }

    /// <summary>What the server does with a client's op bytes: <see cref="RichOpCodec.Decode"/>, then <see cref="ValidateLimits"/>.</summary>
    public RichOp DecodeSubmission(ReadOnlySpan<byte> input)
    {
        RichOp op = RichOpCodec.Decode(input);
        ValidateLimits(op);
        return op;
    }

    /// <summary>True when the op changes nothing.</summary>
    public static bool IsNoop(RichOp op) => op.IsNoop;

    /// <summary>Approximate retained memory of the op in bytes (array, components, strings; maps and embeds counted per use).</summary>
    public static int SizeOf(RichOp op)
    {
        const int ArrayOverhead = 24;
        const int ComponentSize = 24;
        const int StringOverhead = 22;
        const int MapOverhead = 48;
        const int EntrySize = 32;
        long size = ArrayOverhead + (long)op.Count * ComponentSize;
        foreach (ref readonly RichComponent c in op.Components)
        {
            if (c.IsText)
            {
                size += StringOverhead + 2L * c.Text.Length;
            }
            else if (c.IsEmbed)
            {
                size += MapOverhead + SizeOf(c.Embed.Value);
            }

            if (c.Attributes is { } attributes)
            {
                size += MapOverhead + (long)attributes.Count * EntrySize;
            }
        }

        return (int)Math.Min(size, int.MaxValue);

        // From lengths only: an embed can be a 256 KiB data URL, and this runs on the sequencer's thread for every op.
        static long SizeOf(RichValue value)
        {
            long size = EntrySize;
            switch (value.Kind)
            {
                case RichValueKind.String:
                    size += StringOverhead + 2L * value.String!.Length;
                    break;
                case RichValueKind.Array:
                    foreach (RichValue item in value.Items)
                    {
                        size += SizeOf(item);
                    }

                    break;
                case RichValueKind.Object:
                    foreach (KeyValuePair<string, RichValue> member in value.Members)
                    {
                        size += StringOverhead + 2L * member.Key.Length + SizeOf(member.Value);
                    }

                    break;
            }

            return size;
        }
    }

    // ---- IOtType -----------------------------------------------------------------------------------------------------

    void IOtType<RichDocument, RichOp>.Validate(RichOp op, RichDocument snapshot) => Validate(op, snapshot);

    RichDocument IOtType<RichDocument, RichOp>.Apply(RichDocument snapshot, RichOp op) => Apply(snapshot, op);

    RichOp IOtType<RichDocument, RichOp>.Transform(RichOp op, RichOp other, TransformSide side) => Transform(op, other, side);

    RichOp IOtType<RichDocument, RichOp>.Compose(RichOp first, RichOp second) => Compose(first, second);

    bool IOtType<RichDocument, RichOp>.IsNoop(RichOp op) => op.IsNoop;

    int IOtType<RichDocument, RichOp>.TransformCursor(int cursor, RichOp op, bool isOwnOp) => TransformCursor(cursor, op, isOwnOp);

    int IOtType<RichDocument, RichOp>.SizeOf(RichOp op) => SizeOf(op);

    long IOtType<RichDocument, RichOp>.LengthOf(RichDocument snapshot) => snapshot.Length;

    void IOtType<RichDocument, RichOp>.Encode(RichOp op, IBufferWriter<byte> output) => RichOpCodec.Encode(op, output);

    RichOp IOtType<RichDocument, RichOp>.Decode(ReadOnlySpan<byte> input) => RichOpCodec.Decode(input);

    /// <summary>The document's quill-delta ops as JSON (<see cref="RichJson.Write(RichDocument)"/>).</summary>
    string IOtType<RichDocument, RichOp>.ToText(RichDocument snapshot) => RichJson.Write(snapshot);

    RichDocument IOtType<RichDocument, RichOp>.FromText(string text) => RichJson.ParseDocument(text);

    private static void CheckFits(RichOp op, RichDocument document)
    {
        if (op.BaseLength > document.Length)
        {
            ThrowOpTooLong(op.BaseLength, document.Length);
        }
    }

    [DoesNotReturn]
    private static void ThrowOpTooLong(int baseLength, int documentLength) =>
        throw new OtException(OtErrorCode.OpTooLong, $"The op spans {baseLength} units but the document has {documentLength}.");

    [DoesNotReturn]
    private static void ThrowNegativeCursor(int cursor) =>
        throw new OtException(OtErrorCode.InvalidLength, $"A cursor position must not be negative, got {cursor}.");

    [DoesNotReturn]
    private static void ThrowInvalidSide(TransformSide side) =>
        throw new ArgumentOutOfRangeException(nameof(side), side, "Side must be Left or Right.");
}
