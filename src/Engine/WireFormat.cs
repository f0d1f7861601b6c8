using System.Buffers;
using System.Diagnostics;
using System.Text.Unicode;

namespace Collab.Engine;

/// <summary>
/// Primitives shared by the op codecs (docs/OT.md §8 and §20): minimal unsigned LEB128 varints, as in protobuf, and
/// UTF-8 text written into a buffer writer without an intermediate copy.
/// </summary>
internal static class WireFormat
{
    /// <summary>The longest varint: ten bytes hold 64 bits.</summary>
    public const int MaxVarintBytes = 10;

    /// <summary>Text up to this many UTF-8 bytes is written in one span; longer text streams in pieces.</summary>
    public const int ContiguousTextLimit = 16 * 1024;

    public static int VarintLength(ulong value)
    {
        int n = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            n++;
        }

        return n;
    }

    public static int WriteVarint(Span<byte> destination, ulong value) => Sequencing.VarInt.Write(destination, value);

    public static void WriteVarint(IBufferWriter<byte> output, ulong value) =>
        output.Advance(WriteVarint(output.GetSpan(MaxVarintBytes), value));

    /// <summary>
    /// Reads a minimal varint of at most <paramref name="maxBytes"/> bytes (at most ten, the tenth holding only bit 63);
    /// anything else throws <see cref="OtErrorCode.Malformed"/> naming <paramref name="what"/>.
    /// </summary>
    public static ulong ReadVarint(ReadOnlySpan<byte> input, ref int position, int maxBytes, string what)
    {
        Debug.Assert(maxBytes is > 0 and <= MaxVarintBytes);
        ulong value = 0;
        for (int i = 0; i < maxBytes; i++)
        {
            if (position >= input.Length)
            {
                ThrowMalformed(what, "a varint is truncated");
            }

            byte b = input[position++];
            if (i == MaxVarintBytes - 1 && b > 1)
            {
                ThrowMalformed(what, "a varint overflows 64 bits");
            }

            value |= (ulong)(b & 0x7F) << (7 * i);
            if (b < 0x80)
            {
                if (b == 0 && i > 0)
                {
                    ThrowMalformed(what, "a varint is not minimally encoded");
                }

                return value;
            }
        }

        ThrowMalformed(what, $"a varint is longer than {maxBytes} bytes");
        return 0;
    }

    /// <summary>Writes the UTF-8 of <paramref name="text"/> (<paramref name="bytes"/> long): in one span when short, in pieces when long.</summary>
    public static void WriteUtf8(IBufferWriter<byte> output, string text, int bytes)
    {
        if (bytes <= ContiguousTextLimit)
        {
            Span<byte> span = output.GetSpan(Math.Max(bytes, 1));
            int written = System.Text.Encoding.UTF8.GetBytes(text, span);
            Debug.Assert(written == bytes);
            output.Advance(bytes);
            return;
        }

        ReadOnlySpan<char> rest = text;
        while (!rest.IsEmpty)
        {
            // At least four bytes so that any scalar fits; the encoder stops before a scalar that does not.
            Span<byte> destination = output.GetSpan(Math.Clamp(bytes, 4, ContiguousTextLimit));
            OperationStatus status = Utf8.FromUtf16(rest, destination, out int read, out int written, replaceInvalidSequences: false);
            Debug.Assert(status is OperationStatus.Done or OperationStatus.DestinationTooSmall);
            output.Advance(written);
            rest = rest[read..];
            bytes -= written;
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowMalformed(string what, string why) =>
        throw new OtException(OtErrorCode.Malformed, $"Malformed {what}: {why}.");
}
