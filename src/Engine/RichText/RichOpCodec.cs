using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using System.Text.Unicode;

namespace Collab.Engine.RichText;

/// <summary>
/// The compact binary form of a <see cref="RichOp"/>, used on the wire and in the op log; specified byte for byte in
/// docs/OT.md ("rich-text: binary encoding") so that other languages can implement it.
/// </summary>
/// <remarks>
/// Each component is a varint tag <c>value &lt;&lt; 3 | kind &lt;&lt; 1 | hasAttributes</c> (kind 0 retain, 1 text
/// insert, 2 embed insert, 3 delete), the text or the embed, then the attributes as a count and sorted (name, value)
/// pairs; values are tagged JSON (null, booleans, integers as zigzag varints, other numbers as binary64, strings,
/// arrays, objects). Only canonical input decodes: normal form, minimal varints, sorted unique names, integral
/// numbers as integers, nesting within <see cref="RichValue.MaxDepth"/>; so decoding and re-encoding gives back the
/// same bytes. Anything else throws <see cref="OtException"/> (<see cref="OtErrorCode.Malformed"/>).
/// </remarks>
public static class RichOpCodec
{
    private const int KindRetain = 0;
    private const int KindText = 1;
    private const int KindEmbed = 2;
    private const int KindDelete = 3;

    private const int TypeLiteral = 0;
    private const int TypeInteger = 1;
    private const int TypeFloat = 2;
    private const int TypeString = 3;
    private const int TypeArray = 4;
    private const int TypeObject = 5;

    /// <summary>Largest integer written as an integer: JavaScript's <c>Number.MAX_SAFE_INTEGER</c>.</summary>
    private const double MaxSafeInteger = 9007199254740991;

    /// <summary>Names Quill uses, decoded without allocating (and a cached <c>{name: true}</c> map for each).</summary>
    private static readonly string[] s_knownNames =
    [
        "align", "background", "blockquote", "bold", "code", "code-block", "color", "direction", "font", "formula",
        "header", "image", "indent", "italic", "link", "list", "script", "size", "strike", "underline", "video", "width",
        "height", "alt",
    ];

    private static readonly byte[][] s_knownNamesUtf8 = [.. s_knownNames.Select(Encoding.UTF8.GetBytes)];
    private static readonly AttributeMap[] s_trueMaps = [.. s_knownNames.Select(name => AttributeMap.Of(name, RichValue.True))];

    // ---- Encoding --------------------------------------------------------------------------------------------------

    /// <summary>Exact encoded size of <paramref name="op"/> in bytes.</summary>
    public static int GetEncodedLength(RichOp op)
    {
        long size = 0;
        foreach (ref readonly RichComponent c in op.Components)
        {
            switch (c.Kind)
            {
                case RichComponentKind.Insert when c.IsText:
                    int bytes = Encoding.UTF8.GetByteCount(c.Text);
                    size += WireFormat.VarintLength(Tag(bytes, KindText, c.Attributes)) + bytes;
                    break;
                case RichComponentKind.Insert:
                    int typeBytes = Encoding.UTF8.GetByteCount(c.Embed!.Type);
                    size += WireFormat.VarintLength(Tag(typeBytes, KindEmbed, c.Attributes)) + typeBytes + GetEncodedLength(c.Embed.Value, long.MaxValue);
                    break;
                default:
                    size += WireFormat.VarintLength(Tag(c.Length, c.IsRetain ? KindRetain : KindDelete, c.Attributes));
                    break;
            }

            if (c.Attributes is { } attributes)
            {
                size += WireFormat.VarintLength((ulong)attributes.Count);
                foreach (KeyValuePair<string, RichValue> entry in attributes.Entries)
                {
                    size += StringLength(entry.Key) + GetEncodedLength(entry.Value, long.MaxValue);
                }
            }
        }

        return checked((int)size);
    }

    /// <summary>Encoded size of an embed (its tag aside): type name and payload; stops counting past <paramref name="cap"/>.</summary>
    public static long GetEncodedLength(RichEmbed embed, long cap)
    {
        ArgumentNullException.ThrowIfNull(embed);
        int typeBytes = Encoding.UTF8.GetByteCount(embed.Type);
        return typeBytes + GetEncodedLength(embed.Value, cap - typeBytes);
    }

    /// <summary>Encoded size of a value in bytes; stops counting (returns something above <paramref name="cap"/>) once past it.</summary>
    public static long GetEncodedLength(RichValue value, long cap)
    {
        switch (value.Kind)
        {
            case RichValueKind.Null:
            case RichValueKind.False:
            case RichValueKind.True:
                return 1;
            case RichValueKind.Number:
                return TryGetInteger(value.Number, out long integer) ? WireFormat.VarintLength(Header(ZigZag(integer), TypeInteger)) : 9;
            case RichValueKind.String:
                int bytes = Encoding.UTF8.GetByteCount(value.String!);
                return WireFormat.VarintLength(Header((ulong)bytes, TypeString)) + bytes;
            case RichValueKind.Array:
                long size = WireFormat.VarintLength(Header((ulong)value.Items.Length, TypeArray));
                foreach (RichValue item in value.Items)
                {
                    size += GetEncodedLength(item, cap - size);
                    if (size > cap)
                    {
                        break;
                    }
                }

                return size;
            default:
                long total = WireFormat.VarintLength(Header((ulong)value.Members.Length, TypeObject));
                foreach (KeyValuePair<string, RichValue> member in value.Members)
                {
                    total += StringLength(member.Key);
                    total += GetEncodedLength(member.Value, cap - total);
                    if (total > cap)
                    {
                        break;
                    }
                }

                return total;
        }
    }

    /// <summary>Writes <paramref name="op"/> into <paramref name="output"/>.</summary>
    public static void Encode(RichOp op, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        foreach (ref readonly RichComponent c in op.Components)
        {
            switch (c.Kind)
            {
                case RichComponentKind.Insert when c.IsText:
                    WriteString(output, c.Text, KindText, c.Attributes);
                    break;
                case RichComponentKind.Insert:
                    WriteString(output, c.Embed!.Type, KindEmbed, c.Attributes);
                    WriteValue(output, c.Embed.Value);
                    break;
                default:
                    WireFormat.WriteVarint(output, Tag(c.Length, c.IsRetain ? KindRetain : KindDelete, c.Attributes));
                    break;
            }

            if (c.Attributes is { } attributes)
            {
                WireFormat.WriteVarint(output, (ulong)attributes.Count);
                foreach (KeyValuePair<string, RichValue> entry in attributes.Entries)
                {
                    WriteName(output, entry.Key);
                    WriteValue(output, entry.Value);
                }
            }
        }
    }

    /// <summary>The encoded bytes of <paramref name="op"/>.</summary>
    public static byte[] Encode(RichOp op)
    {
        var buffer = new ArrayBufferWriter<byte>(Math.Max(GetEncodedLength(op), 1));
        Encode(op, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Writes <paramref name="value"/> alone (the encoding of an attribute value or embed payload).</summary>
    public static void WriteValue(IBufferWriter<byte> output, RichValue value)
    {
        switch (value.Kind)
        {
            case RichValueKind.Null:
                WireFormat.WriteVarint(output, Header(0, TypeLiteral));
                break;
            case RichValueKind.False:
                WireFormat.WriteVarint(output, Header(1, TypeLiteral));
                break;
            case RichValueKind.True:
                WireFormat.WriteVarint(output, Header(2, TypeLiteral));
                break;
            case RichValueKind.Number:
                if (TryGetInteger(value.Number, out long integer))
                {
                    WireFormat.WriteVarint(output, Header(ZigZag(integer), TypeInteger));
                }
                else
                {
                    Span<byte> span = output.GetSpan(9);
                    span[0] = TypeFloat;
                    BinaryPrimitives.WriteDoubleLittleEndian(span[1..], value.Number);
                    output.Advance(9);
                }

                break;
            case RichValueKind.String:
                WriteString(output, value.String!, TypeString, null, header: true);
                break;
            case RichValueKind.Array:
                WireFormat.WriteVarint(output, Header((ulong)value.Items.Length, TypeArray));
                foreach (RichValue item in value.Items)
                {
                    WriteValue(output, item);
                }

                break;
            default:
                WireFormat.WriteVarint(output, Header((ulong)value.Members.Length, TypeObject));
                foreach (KeyValuePair<string, RichValue> member in value.Members)
                {
                    WriteName(output, member.Key);
                    WriteValue(output, member.Value);
                }

                break;
        }
    }

    // ---- Decoding --------------------------------------------------------------------------------------------------

    /// <summary>
    /// Decodes <see cref="Encode(RichOp, IBufferWriter{byte})"/>'s output. Any deviation (truncation, a bad or
    /// non-minimal varint, a reserved kind or type, a zero length, invalid UTF-8, a lone surrogate, unsorted or repeated
    /// names, a non-canonical number, nesting past <see cref="RichValue.MaxDepth"/>, a non-normalized sequence, lengths
    /// past <see cref="int.MaxValue"/>) throws <see cref="OtException"/> (<see cref="OtErrorCode.Malformed"/>). Memory
    /// is bounded by the input: every allocation is for content the input holds.
    /// </summary>
    public static RichOp Decode(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
        {
            return RichOp.Empty;
        }

        var reader = new Reader(input);
        RichComponent[] components = ArrayPool<RichComponent>.Shared.Rent(8);
        int count = 0;
        try
        {
            long baseLength = 0;
            long targetLength = 0;
            RichComponent previous = default;
            while (!reader.AtEnd)
            {
                RichComponent component = ReadComponent(ref reader);
                CheckNormalAfter(previous, component);
                baseLength += component.IsInsert ? 0 : component.Length;
                targetLength += component.IsDelete ? 0 : component.Length;
                if (baseLength > int.MaxValue || targetLength > int.MaxValue)
                {
                    ThrowMalformed("the op's lengths exceed int.MaxValue");
                }

                if (count == components.Length)
                {
                    RichComponent[] bigger = ArrayPool<RichComponent>.Shared.Rent(count * 2);
                    components.AsSpan(0, count).CopyTo(bigger);
                    ArrayPool<RichComponent>.Shared.Return(components, clearArray: true);
                    components = bigger;
                }

                components[count++] = component;
                previous = component;
            }

            if (previous.IsPlainRetain)
            {
                ThrowMalformed("it ends with a retain without attributes (the op is not normalized)");
            }

            return new RichOp(components.AsSpan(0, count).ToArray(), (int)baseLength, (int)targetLength);
        }
        finally
        {
            // Cleared: the pooled array must not keep this op's strings alive.
            ArrayPool<RichComponent>.Shared.Return(components, clearArray: true);
        }
    }

    private static RichComponent ReadComponent(ref Reader reader)
    {
        ulong tag = reader.ReadVarint();
        int kind = (int)((tag >> 1) & 3);
        bool hasAttributes = (tag & 1) != 0;
        ulong value = tag >> 3;
        if (value == 0)
        {
            ThrowMalformed("a component has length zero");
        }

        if (value > int.MaxValue)
        {
            ThrowMalformed("a component length exceeds int.MaxValue");
        }

        switch (kind)
        {
            case KindRetain:
                return RichComponent.RetainTrusted((int)value, hasAttributes ? reader.ReadAttributes() : null);
            case KindText:
                string text = reader.ReadUtf8((int)value);
                return RichComponent.InsertTrusted(text, hasAttributes ? reader.ReadAttributes() : null);
            case KindEmbed:
                string type = reader.ReadName((int)value);
                var embed = RichEmbed.CreateTrusted(type, reader.ReadValue(0));
                return RichComponent.InsertTrusted(embed, hasAttributes ? reader.ReadAttributes() : null);
            default:
                if (hasAttributes)
                {
                    ThrowMalformed("a delete carries attributes");
                }

                return RichComponent.DeleteTrusted((int)value);
        }
    }

    /// <summary>Decodes one value written by <see cref="WriteValue"/>, which must take all of <paramref name="input"/>.</summary>
    public static RichValue DecodeValue(ReadOnlySpan<byte> input)
    {
        var reader = new Reader(input);
        RichValue value = reader.ReadValue(0);
        if (!reader.AtEnd)
        {
            ThrowMalformed("bytes follow the value");
        }

        return value;
    }

    /// <summary>quill-delta's <c>push</c> would change nothing: the pair is in normal form.</summary>
    private static void CheckNormalAfter(in RichComponent previous, in RichComponent next)
    {
        if (previous.Kind == 0)
        {
            return;
        }

        if (previous.IsDelete && (next.IsDelete || next.IsInsert))
        {
            ThrowMalformed(next.IsDelete ? "two adjacent deletes (the op is not normalized)" : "an insert after a delete (normal form puts the insert first)");
        }

        if (AttributeMap.Equals(previous.Attributes, next.Attributes) && ((previous.IsText && next.IsText) || (previous.IsRetain && next.IsRetain)))
        {
            ThrowMalformed("two adjacent components that merge (the op is not normalized)");
        }
    }

    // ---- Primitives ------------------------------------------------------------------------------------------------

    private static ulong Tag(int value, int kind, AttributeMap? attributes) =>
        ((ulong)(uint)value << 3) | ((ulong)kind << 1) | (attributes is null ? 0UL : 1UL);

    private static ulong Header(ulong payload, int type) => (payload << 3) | (uint)type;

    private static ulong ZigZag(long value) => (ulong)((value << 1) ^ (value >> 63));

    private static long UnZigZag(ulong value) => (long)(value >> 1) ^ -(long)(value & 1);

    /// <summary>Integral numbers within JavaScript's safe range are written as integers (canonical form).</summary>
    private static bool TryGetInteger(double number, out long integer)
    {
        if (Math.Abs(number) <= MaxSafeInteger && Math.Floor(number) == number)
        {
            integer = (long)number;
            return true;
        }

        integer = 0;
        return false;
    }

    private static long StringLength(string text)
    {
        int bytes = Encoding.UTF8.GetByteCount(text);
        return WireFormat.VarintLength((ulong)bytes) + bytes;
    }

    private static void WriteName(IBufferWriter<byte> output, string name)
    {
        int bytes = Encoding.UTF8.GetByteCount(name);
        WireFormat.WriteVarint(output, (ulong)bytes);
        WireFormat.WriteUtf8(output, name, bytes);
    }

    /// <summary>A length-prefixed string: as a component tag (kind, attributes flag) or as a value header.</summary>
    private static void WriteString(IBufferWriter<byte> output, string text, int kind, AttributeMap? attributes, bool header = false)
    {
        int bytes = Encoding.UTF8.GetByteCount(text);
        WireFormat.WriteVarint(output, header ? Header((ulong)bytes, kind) : Tag(bytes, kind, attributes));
        WireFormat.WriteUtf8(output, text, bytes);
    }

    [DoesNotReturn]
    internal static void ThrowMalformed(string why) =>
        throw new OtException(OtErrorCode.Malformed, $"Malformed rich-text op: {why}.");

    /// <summary>Reads the primitives of the format from a span, rejecting anything non-canonical.</summary>
    private ref struct Reader(ReadOnlySpan<byte> input)
    {
        private readonly ReadOnlySpan<byte> _input = input;
        private int _position;

        public readonly bool AtEnd => _position == _input.Length;

        /// <summary>A minimal LEB128 varint of at most ten bytes that fits 64 bits.</summary>
        public ulong ReadVarint() => WireFormat.ReadVarint(_input, ref _position, WireFormat.MaxVarintBytes, "rich-text op");

        /// <summary>A count or byte length that the rest of the input could hold (each element takes a byte or more).</summary>
        public int ReadCount()
        {
            ulong count = ReadVarint();
            if (count > (ulong)(_input.Length - _position))
            {
                ThrowMalformed("a length or count runs past the end of the input");
            }

            return (int)count;
        }

        public ReadOnlySpan<byte> ReadBytes(int length)
        {
            if ((uint)length > (uint)(_input.Length - _position))
            {
                ThrowMalformed("a string is truncated");
            }

            ReadOnlySpan<byte> bytes = _input.Slice(_position, length);
            _position += length;
            return bytes;
        }

        /// <summary>Well-formed UTF-8 of <paramref name="length"/> bytes as a string (which then has no lone surrogate).</summary>
        public string ReadUtf8(int length)
        {
            ReadOnlySpan<byte> utf8 = ReadBytes(length);
            if (!Utf8.IsValid(utf8))
            {
                ThrowMalformed("a string is not valid UTF-8");
            }

            return Encoding.UTF8.GetString(utf8);
        }

        /// <summary>A non-empty name, interned when it is one Quill uses.</summary>
        public string ReadName(int length) => ReadName(length, out _);

        private string ReadName(int length, out int known)
        {
            if (length == 0)
            {
                ThrowMalformed("an attribute name or embed type is empty");
            }

            ReadOnlySpan<byte> utf8 = ReadBytes(length);
            known = KnownName(utf8);
            if (known >= 0)
            {
                return s_knownNames[known];
            }

            if (!Utf8.IsValid(utf8))
            {
                ThrowMalformed("a name is not valid UTF-8");
            }

            return Encoding.UTF8.GetString(utf8);
        }

        public AttributeMap ReadAttributes()
        {
            int count = ReadCount();
            if (count == 0)
            {
                ThrowMalformed("an attribute map is empty (omit it instead)");
            }

            if (count == 1)
            {
                // The commonest shape, {bold: true}, comes from a cache.
                string name = ReadName(ReadCount(), out int known);
                RichValue value = ReadValue(0);
                return known >= 0 && value.Kind == RichValueKind.True ? s_trueMaps[known] : AttributeMap.CreateTrusted([new(name, value)]);
            }

            var entries = new KeyValuePair<string, RichValue>[count];
            ReadMembers(entries, allowEmptyNames: false, 0);
            return AttributeMap.CreateTrusted(entries);
        }

        public RichValue ReadValue(int depth)
        {
            ulong header = ReadVarint();
            ulong payload = header >> 3;
            switch ((int)(header & 7))
            {
                case TypeLiteral:
                    return payload switch
                    {
                        0 => RichValue.Null,
                        1 => RichValue.False,
                        2 => RichValue.True,
                        _ => Malformed("an unknown literal"),
                    };
                case TypeInteger:
                    long integer = UnZigZag(payload);
                    if (Math.Abs((double)integer) > MaxSafeInteger)
                    {
                        return Malformed("an integer outside JavaScript's safe range");
                    }

                    return RichValue.NumberTrusted(integer);
                case TypeFloat:
                    double number = BinaryPrimitives.ReadDoubleLittleEndian(ReadBytes(8));
                    if (payload != 0 || !double.IsFinite(number) || TryGetInteger(number, out _))
                    {
                        return Malformed("a float that is not finite or should be written as an integer");
                    }

                    return RichValue.NumberTrusted(number);
                case TypeString:
                    if (payload > int.MaxValue)
                    {
                        return Malformed("a string is too long");
                    }

                    return RichValue.StringTrusted(ReadUtf8((int)payload));
                case TypeArray:
                    int count = CheckedCount(payload, depth);
                    var items = new RichValue[count];
                    for (int i = 0; i < items.Length; i++)
                    {
                        items[i] = ReadValue(depth + 1);
                    }

                    return RichValue.ArrayTrusted(items);
                case TypeObject:
                    var members = new KeyValuePair<string, RichValue>[CheckedCount(payload, depth)];
                    ReadMembers(members, allowEmptyNames: true, depth + 1);
                    return RichValue.ObjectTrusted(members);
                default:
                    return Malformed("a reserved value type");
            }
        }

        private readonly int CheckedCount(ulong count, int depth)
        {
            if (depth >= RichValue.MaxDepth)
            {
                ThrowMalformed($"values nest deeper than {RichValue.MaxDepth} levels");
            }

            if (count > (ulong)(_input.Length - _position))
            {
                ThrowMalformed("a count runs past the end of the input");
            }

            return (int)count;
        }

        private void ReadMembers(KeyValuePair<string, RichValue>[] members, bool allowEmptyNames, int depth)
        {
            for (int i = 0; i < members.Length; i++)
            {
                int length = ReadCount();
                string name = allowEmptyNames && length == 0 ? string.Empty : ReadName(length);
                if (i > 0 && string.CompareOrdinal(members[i - 1].Key, name) >= 0)
                {
                    ThrowMalformed("names are not in strictly ascending order");
                }

                members[i] = new(name, ReadValue(depth));
            }
        }

        private static int KnownName(ReadOnlySpan<byte> utf8)
        {
            byte[][] known = s_knownNamesUtf8;
            for (int i = 0; i < known.Length; i++)
            {
                if (known[i].Length == utf8.Length && utf8.SequenceEqual(known[i]))
                {
                    return i;
                }
            }

            return -1;
        }

        private static RichValue Malformed(string why)
        {
            ThrowMalformed(why);
            return default;
        }
    }
}
