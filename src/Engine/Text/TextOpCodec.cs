using System.Buffers;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using System.Text.Unicode;

namespace Collab.Engine.Text;

/// <summary>
/// The compact binary form of a <see cref="TextOp"/>, used on the wire and in the op log
/// (specified byte for byte in docs/OT.md so other languages can implement it).
/// </summary>
/// <remarks>
/// An op is its components in order, each a tag — an unsigned LEB128 varint (minimal, at most
/// five bytes) holding <c>length &lt;&lt; 2 | kind</c> with kind 0 = retain, 1 = insert,
/// 2 = delete, 3 = reserved — and, for an insert, that many bytes of UTF-8: an insert's tag
/// length is its UTF-8 byte count, a retain's or delete's its code point count. The empty op is
/// zero bytes. Only normal form is accepted: no zero length, no two adjacent components of one
/// kind, no trailing retain.
/// </remarks>
public static class TextOpCodec
{
    private const int KindRetain = 0;
    private const int KindInsert = 1;
    private const int KindDelete = 2;
    private const int MaxVarintBytes = 5;

    /// <summary>Exact encoded size of <paramref name="op"/> in bytes.</summary>
    public static int GetEncodedLength(TextOp op)
    {
        long size = 0;
        foreach (ref readonly TextComponent c in op.Components)
        {
            if (c.IsInsert)
            {
                int bytes = Encoding.UTF8.GetByteCount(c.Text);
                size += WireFormat.VarintLength(Tag(bytes, KindInsert)) + bytes;
            }
            else
            {
                size += WireFormat.VarintLength(Tag(c.Length, c.IsRetain ? KindRetain : KindDelete));
            }
        }

        return checked((int)size);
    }

    /// <summary>Writes <paramref name="op"/> into <paramref name="output"/> without intermediate buffers.</summary>
    public static void Encode(TextOp op, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        foreach (ref readonly TextComponent c in op.Components)
        {
            if (!c.IsInsert)
            {
                Span<byte> span = output.GetSpan(MaxVarintBytes);
                output.Advance(WireFormat.WriteVarint(span, Tag(c.Length, c.IsRetain ? KindRetain : KindDelete)));
                continue;
            }

            string text = c.Text;
            int bytes = Encoding.UTF8.GetByteCount(text);
            Span<byte> destination = output.GetSpan(MaxVarintBytes + (bytes <= WireFormat.ContiguousTextLimit ? bytes : 0));
            int tagLength = WireFormat.WriteVarint(destination, Tag(bytes, KindInsert));
            if (destination.Length - tagLength >= bytes)
            {
                int written = Encoding.UTF8.GetBytes(text, destination[tagLength..]);
                Debug.Assert(written == bytes);
                output.Advance(tagLength + bytes);
            }
            else
            {
                output.Advance(tagLength);
                WireFormat.WriteUtf8(output, text, bytes);
            }
        }
    }

    /// <summary>
    /// Decodes <see cref="Encode"/>'s output. Any deviation — truncation, an overlong or oversized
    /// varint, kind 3, a zero length, invalid UTF-8, a non-normalized sequence, lengths past
    /// <see cref="int.MaxValue"/> — throws <see cref="OtException"/> with <see cref="OtErrorCode.Malformed"/>.
    /// Memory use is bounded by the input: the bytes are validated in a first pass that allocates
    /// nothing, then the components array is allocated at its exact size.
    /// </summary>
    public static TextOp Decode(ReadOnlySpan<byte> input)
    {
        int count = 0;
        long baseLength = 0;
        long targetLength = 0;
        int previous = -1;
        int position = 0;
        while (position < input.Length)
        {
            ulong tag = WireFormat.ReadVarint(input, ref position, MaxVarintBytes, "text op");
            int kind = (int)(tag & 3);
            ulong length = tag >> 2;
            if (kind == 3)
            {
                ThrowMalformed("component kind 3 is reserved");
            }

            if (length == 0)
            {
                ThrowMalformed("a component has length zero");
            }

            if (length > int.MaxValue)
            {
                ThrowMalformed("a component length exceeds int.MaxValue");
            }

            if (kind == previous)
            {
                ThrowMalformed("two adjacent components have one kind (the op is not normalized)");
            }

            if (kind == KindInsert)
            {
                if (length > (ulong)(input.Length - position))
                {
                    ThrowMalformed("an insert is truncated");
                }

                ReadOnlySpan<byte> utf8 = input.Slice(position, (int)length);
                if (!Utf8.IsValid(utf8))
                {
                    ThrowMalformed("an insert is not valid UTF-8");
                }

                targetLength += CountUtf8CodePoints(utf8);
                position += (int)length;
            }
            else
            {
                baseLength += (long)length;
                if (kind == KindRetain)
                {
                    targetLength += (long)length;
                }
            }

            if (baseLength > int.MaxValue || targetLength > int.MaxValue)
            {
                ThrowMalformed("the op's lengths exceed int.MaxValue");
            }

            previous = kind;
            count++;
        }

        if (previous == KindRetain)
        {
            ThrowMalformed("it ends with a retain (the op is not normalized)");
        }

        if (count == 0)
        {
            return TextOp.Empty;
        }

        var components = new TextComponent[count];
        position = 0;
        for (int i = 0; i < components.Length; i++)
        {
            ulong tag = WireFormat.ReadVarint(input, ref position, MaxVarintBytes, "text op");
            int length = (int)(tag >> 2);
            switch ((int)(tag & 3))
            {
                case KindRetain:
                    components[i] = TextComponent.RetainTrusted(length);
                    break;
                case KindDelete:
                    components[i] = TextComponent.DeleteTrusted(length);
                    break;
                default:
                    string text = Encoding.UTF8.GetString(input.Slice(position, length));
                    components[i] = TextComponent.InsertTrusted(text, CodePoints.CountValid(text));
                    position += length;
                    break;
            }
        }

        return new TextOp(components, (int)baseLength, (int)targetLength);
    }

    private static ulong Tag(int length, int kind) => ((ulong)(uint)length << 2) | (uint)kind;

    /// <summary>Code points of valid UTF-8: every byte that is not a continuation byte starts one.</summary>
    private static int CountUtf8CodePoints(ReadOnlySpan<byte> utf8)
    {
        if (Ascii.IsValid(utf8))
        {
            return utf8.Length;
        }

        int continuation = 0;
        foreach (byte b in utf8)
        {
            if ((b & 0xC0) == 0x80)
            {
                continuation++;
            }
        }

        return utf8.Length - continuation;
    }

    [DoesNotReturn]
    private static void ThrowMalformed(string why) =>
        throw new OtException(OtErrorCode.Malformed, $"Malformed text op: {why}.");
}
