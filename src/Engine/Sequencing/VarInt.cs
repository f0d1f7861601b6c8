using System.Buffers;

namespace Collab.Engine.Sequencing;

/// <summary>LEB128 unsigned varints (the protobuf encoding) for the compact dedupe metadata.</summary>
internal static class VarInt
{
    public const int MaxLength = 10;

    public static int Write(Span<byte> destination, ulong value)
    {
        int i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[i++] = (byte)value;
        return i;
    }

    public static void Write(IBufferWriter<byte> output, ulong value)
    {
        Span<byte> span = output.GetSpan(MaxLength);
        output.Advance(Write(span, value));
    }

    /// <summary>Reads one varint; false when the input ends early or the value overflows 64 bits.</summary>
    public static bool TryRead(ReadOnlySpan<byte> input, ref int offset, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if ((uint)offset >= (uint)input.Length)
            {
                return false;
            }

            byte b = input[offset++];
            if (shift == 63 && b > 1)
            {
                return false;
            }

            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return true;
            }
        }

        return false;
    }
}
