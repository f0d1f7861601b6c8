using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Unicode;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using CsCheck;

namespace Collab.Server.Tests.Transport;

/// <summary>Header parse/encode, masking and incremental UTF-8 validation, each against a simple reference.</summary>
public sealed class FramingUnitTests
{
    [Theory]
    [InlineData(0, 2)]
    [InlineData(125, 2)]
    [InlineData(126, 4)]
    [InlineData(65535, 4)]
    [InlineData(65536, 10)]
    [InlineData(int.MaxValue, 10)]
    public void Server_header_uses_the_minimal_length_encoding(long length, int expectedHeaderLength)
    {
        Span<byte> header = stackalloc byte[10];
        int written = WebSocketFrame.WriteServerHeader(header, WebSocketOpcode.Binary, length);
        Assert.Equal(expectedHeaderLength, written);
        Assert.Equal(expectedHeaderLength, WebSocketFrame.ServerHeaderLength(length));
        Assert.Equal(0x82, header[0]);
        Assert.True(WebSocketFrame.TryParseHeader(header.Slice(0, written), out FrameHeader parsed));
        Assert.Equal((ulong)length, parsed.PayloadLength);
        Assert.False(parsed.Masked);
        Assert.True(parsed.Fin);
    }

    [Fact]
    public void Client_header_round_trips_through_the_parser_for_any_fields()
    {
        Gen<(byte Opcode, bool Fin, byte Rsv, ulong Length, uint Key)> gen =
            Gen.Select(Gen.Byte[0, 15], Gen.Bool, Gen.Byte[0, 7], Gen.OneOf(Gen.ULong[0, 125], Gen.ULong[126, 65535], Gen.ULong[65536, ulong.MaxValue >> 1]), Gen.UInt);
        Property.Check(gen, t =>
        {
            var key = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(key, t.Key);
            byte[] header = EncodeClientHeader(t.Opcode, t.Fin, t.Rsv, t.Length, key);
            for (int available = 0; available < header.Length; available++)
            {
                Assert.False(WebSocketFrame.TryParseHeader(header.AsSpan(0, available), out _)); // incomplete is never misread
            }

            Assert.True(WebSocketFrame.TryParseHeader(header, out FrameHeader parsed));
            Assert.Equal(header.Length, parsed.HeaderLength);
            Assert.Equal(t.Fin, parsed.Fin);
            Assert.Equal(t.Rsv, parsed.ReservedBits);
            Assert.Equal(t.Opcode, (byte)parsed.Opcode);
            Assert.Equal(t.Length, parsed.PayloadLength);
            Assert.True(parsed.Masked);
            Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(key), parsed.MaskKey);

            // Split across two segments at every position: same result.
            for (int split = 1; split < header.Length; split++)
            {
                ReadOnlySequence<byte> sequence = Segments.TwoSegments(header, split);
                Assert.True(WebSocketFrame.TryParseHeader(sequence, out FrameHeader fromSequence));
                Assert.Equal(parsed.PayloadLength, fromSequence.PayloadLength);
                Assert.Equal(parsed.MaskKey, fromSequence.MaskKey);
            }
        }, iterations: 3_000);
    }

    [Theory]
    [InlineData(0x82, 0x85, 0)] // masked binary: valid
    [InlineData(0x02, 0x85, 0)] // non-final binary: valid
    [InlineData(0xC2, 0x85, 1002)] // RSV1
    [InlineData(0x83, 0x85, 1002)] // reserved opcode
    [InlineData(0x82, 0x05, 1002)] // unmasked
    [InlineData(0x09, 0x80, 1002)] // fragmented ping
    [InlineData(0x89, 0xFE, 1002)] // ping with a 126-byte payload (16-bit length)
    public void Validate_names_the_rfc_close_code(byte b0, byte b1, int expected)
    {
        byte[] header = { b0, b1, 0, 126, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
        Assert.True(WebSocketFrame.TryParseHeader(header, out FrameHeader parsed));
        Assert.Equal(expected, WebSocketFrame.Validate(parsed, 1 << 20));
    }

    [Fact]
    public void Validate_applies_the_message_limit_and_the_64_bit_sign_rule()
    {
        var atLimit = new FrameHeader(true, 0, WebSocketOpcode.Binary, true, 1000, 0, 14);
        var overLimit = new FrameHeader(true, 0, WebSocketOpcode.Binary, true, 1001, 0, 14);
        var signBit = new FrameHeader(true, 0, WebSocketOpcode.Binary, true, 1UL << 63, 0, 14);
        Assert.Equal(0, WebSocketFrame.Validate(atLimit, 1000));
        Assert.Equal(1009, WebSocketFrame.Validate(overLimit, 1000));
        Assert.Equal(1002, WebSocketFrame.Validate(signBit, 1000));
    }

    [Theory]
    [InlineData(1000, true)]
    [InlineData(1003, true)]
    [InlineData(1004, false)]
    [InlineData(1005, false)]
    [InlineData(1006, false)]
    [InlineData(1007, true)]
    [InlineData(1014, true)]
    [InlineData(1015, false)]
    [InlineData(2999, false)]
    [InlineData(3000, true)]
    [InlineData(4999, true)]
    [InlineData(5000, false)]
    [InlineData(0, false)]
    public void Close_codes_allowed_on_the_wire(int code, bool valid) => Assert.Equal(valid, WebSocketCloseCodes.IsValidOnWire((ushort)code));

    [Fact]
    public void Vectorized_masking_equals_the_bytewise_definition_at_any_offset()
    {
        Gen<(byte[] Data, uint Key, int Split)> gen = Gen.Select(Gen.Byte.Array[0, 600], Gen.UInt, Gen.Int[0, 600]);
        Property.Check(gen, t =>
        {
            byte[] expected = new byte[t.Data.Length];
            for (int i = 0; i < t.Data.Length; i++)
            {
                expected[i] = (byte)(t.Data[i] ^ (byte)(t.Key >> (8 * (i % 4)))); // key byte i%4, little-endian
            }

            byte[] copy = t.Data.ToArray();
            WebSocketMask.Apply(copy, copy, t.Key);
            Assert.Equal(expected, copy);

            // In two pieces with the key rotated for the second: the streaming path.
            int split = Math.Min(t.Split, t.Data.Length);
            byte[] pieces = t.Data.ToArray();
            uint next = WebSocketMask.ApplyInPlace(pieces.AsSpan(0, split), t.Key);
            Assert.Equal(WebSocketMask.Rotate(t.Key, split), next);
            WebSocketMask.ApplyInPlace(pieces.AsSpan(split), next);
            Assert.Equal(expected, pieces);

            // Out of place: source untouched.
            byte[] destination = new byte[t.Data.Length];
            byte[] source = t.Data.ToArray();
            WebSocketMask.Apply(source, destination, t.Key);
            Assert.Equal(expected, destination);
            Assert.Equal(t.Data, source);
        }, iterations: 3_000);
    }

    [Fact]
    public void Incremental_utf8_validation_matches_whole_message_validation_for_any_split()
    {
        // Half the samples are valid text, half arbitrary bytes (mostly invalid); both split at random points.
        Gen<byte[]> text = Gen.String.Select(s => Encoding.UTF8.GetBytes(s));
        Gen<byte[]> bytes = Gen.Byte.Array[0, 40];
        Gen<(byte[] Data, int[] Cuts)> gen = Gen.Select(Gen.OneOf(text, bytes, Gen.Const(Encoding.UTF8.GetBytes("a€😀é"))), Gen.Int[0, 64].Array[0, 6]);
        Property.Check(gen, t =>
        {
            var validator = default(Utf8Validator);
            int[] cuts = t.Cuts.Select(c => Math.Min(c, t.Data.Length)).Order().ToArray();
            bool valid = true;
            int start = 0;
            foreach (int cut in cuts.Append(t.Data.Length))
            {
                valid &= validator.TryAppend(t.Data.AsSpan(start, cut - start));
                start = cut;
                if (!valid)
                {
                    break;
                }
            }

            Assert.Equal(Utf8.IsValid(t.Data), valid && validator.IsComplete);
        }, iterations: 5_000);
    }

    [Fact]
    public void Utf8_validation_one_byte_at_a_time_of_every_code_point_width()
    {
        byte[] data = Encoding.UTF8.GetBytes("a\u00e9\u20ac\U0001F600z");
        var validator = default(Utf8Validator);
        foreach (byte b in data)
        {
            Assert.True(validator.TryAppend(new[] { b }));
        }

        Assert.True(validator.IsComplete);
        var truncated = default(Utf8Validator);
        Assert.True(truncated.TryAppend(data.AsSpan(0, 5)));
        Assert.False(truncated.IsComplete);
    }

    private static byte[] EncodeClientHeader(byte opcode, bool fin, byte rsv, ulong length, byte[] key)
    {
        var header = new List<byte> { (byte)((fin ? 0x80 : 0) | (rsv << 4) | opcode) };
        if (length <= 125)
        {
            header.Add((byte)(0x80 | (int)length));
        }
        else if (length <= 65535)
        {
            header.Add(0x80 | 126);
            header.Add((byte)(length >> 8));
            header.Add((byte)length);
        }
        else
        {
            header.Add(0x80 | 127);
            for (int shift = 56; shift >= 0; shift -= 8)
            {
                header.Add((byte)(length >> shift));
            }
        }

        header.AddRange(key);
        return header.ToArray();
    }
}
