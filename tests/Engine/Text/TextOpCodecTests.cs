using System.Buffers;
using Collab.Engine.Text;

namespace Collab.Engine.Tests.Text;

public sealed class TextOpCodecTests
{
    private static byte[] Encode(TextOp op)
    {
        var buffer = new ArrayBufferWriter<byte>();
        TextOpCodec.Encode(op, buffer);
        Assert.Equal(buffer.WrittenCount, TextOpCodec.GetEncodedLength(op));
        return buffer.WrittenSpan.ToArray();
    }

    private static void AssertMalformed(params byte[] bytes)
    {
        OtException e = Assert.Throws<OtException>(() => TextOpCodec.Decode(bytes));
        Assert.Equal(OtErrorCode.Malformed, e.Code);
    }

    [Fact]
    public void EmptyOpIsZeroBytes()
    {
        Assert.Empty(Encode(TextOp.Empty));
        Assert.True(TextOpCodec.Decode([]).IsNoop);
    }

    [Fact]
    public void EncodesTheDocumentedBytes()
    {
        // [3, "hi", {d:2}]: tags 3<<2|0, 2<<2|1 + "hi", 2<<2|2.
        TextOp op = OpJson.Parse("[3,\"hi\",{\"d\":2}]");
        Assert.Equal(new byte[] { 0x0C, 0x09, (byte)'h', (byte)'i', 0x0A }, Encode(op));

        // An insert's tag carries UTF-8 bytes (4 for U+1F47B), its component length code points (1).
        TextOp ghost = TextOp.Insert(0, "👻");
        Assert.Equal(new byte[] { 0x11, 0xF0, 0x9F, 0x91, 0xBB }, Encode(ghost));
        Assert.Equal(1, TextOpCodec.Decode(Encode(ghost))[0].Length);

        // Retain 100: tag 400 = 0x190 as LEB128 is 0x90 0x03.
        Assert.Equal(new byte[] { 0x90, 0x03, 0x05, (byte)'x' }, Encode(TextOp.Insert(100, "x")));

        // The largest delete needs all five varint bytes: (2^31 - 1) << 2 | 2.
        Assert.Equal(new byte[] { 0xFE, 0xFF, 0xFF, 0xFF, 0x1F }, Encode(TextOp.Delete(0, int.MaxValue)));
        Assert.Equal(TextOp.Delete(0, int.MaxValue), TextOpCodec.Decode([0xFE, 0xFF, 0xFF, 0xFF, 0x1F]));
    }

    [Fact]
    public void RoundTripsMixedScripts()
    {
        TextOp op = OpJson.Parse("[5,\"héllo 世界 😀\u0301\",{\"d\":7},2,{\"d\":1},\"\\n\"]");
        Assert.Equal(op, TextOpCodec.Decode(Encode(op)));
    }

    [Fact]
    public void LargeInsertsStreamIntoSmallSegments()
    {
        string text = string.Concat(Enumerable.Repeat("ab😀世", 10_000));
        TextOp op = TextOp.Insert(7, text);
        var writer = new SmallSegmentWriter();
        TextOpCodec.Encode(op, writer);
        Assert.True(writer.Segments > 3);
        Assert.Equal(TextOpCodec.GetEncodedLength(op), writer.Written.Count);
        Assert.Equal(Encode(op), writer.Written.ToArray());
        Assert.Equal(op, TextOpCodec.Decode(writer.Written.ToArray()));
    }

    [Fact]
    public void RejectsTruncatedAndOverlongVarints()
    {
        AssertMalformed(0x80);
        AssertMalformed(0x0C, 0x89);
        AssertMalformed(0x8C, 0x00, 0x05, (byte)'x');         // 3<<2 in two bytes
        AssertMalformed(0x85, 0x80, 0x00, (byte)'x');          // padded with zero groups
        AssertMalformed(0x80, 0x80, 0x80, 0x80, 0x80, 0x01);   // six bytes
    }

    [Fact]
    public void RejectsReservedKindAndZeroLengths()
    {
        AssertMalformed(0x07);       // kind 3, length 1
        AssertMalformed(0x03);       // kind 3, length 0
        AssertMalformed(0x00);       // retain 0
        AssertMalformed(0x01);       // insert of 0 bytes
        AssertMalformed(0x02);       // delete 0
        AssertMalformed(0x0A, 0x02); // delete 2, delete 0
    }

    [Fact]
    public void RejectsHugeLengths()
    {
        // Retain 2^31: tag 2^33.
        AssertMalformed(0x80, 0x80, 0x80, 0x80, 0x20, 0x05, (byte)'x');
        // Delete int.MaxValue twice around an insert: the op would span 2^32 - 2 code points.
        AssertMalformed(0xFE, 0xFF, 0xFF, 0xFF, 0x1F, 0x05, (byte)'x', 0xFE, 0xFF, 0xFF, 0xFF, 0x1F);
        // An insert claiming more bytes than remain.
        AssertMalformed(0xFD, 0xFF, 0xFF, 0xFF, 0x1F, (byte)'x');
    }

    [Fact]
    public void RejectsTruncatedInserts()
    {
        AssertMalformed(0x09, (byte)'h');
        AssertMalformed(0x0C, 0x11, 0xF0, 0x9F, 0x91);
    }

    [Fact]
    public void RejectsInvalidUtf8()
    {
        AssertMalformed(0x05, 0xFF);
        AssertMalformed(0x05, 0x80);                   // lone continuation byte
        AssertMalformed(0x09, 0xC0, 0x80);             // overlong NUL
        AssertMalformed(0x0D, 0xED, 0xA0, 0x80);       // an encoded surrogate
        AssertMalformed(0x09, 0xF0, 0x9F);             // a truncated scalar
        AssertMalformed(0x11, 0xF4, 0x90, 0x80, 0x80); // past U+10FFFF
    }

    [Fact]
    public void RejectsNonNormalizedSequences()
    {
        AssertMalformed(0x04, 0x04, 0x05, (byte)'x');          // retain, retain
        AssertMalformed(0x05, (byte)'a', 0x05, (byte)'b');     // insert, insert
        AssertMalformed(0x06, 0x06);                           // delete, delete
        AssertMalformed(0x05, (byte)'a', 0x04);                // trailing retain
        AssertMalformed(0x04);                                 // only a retain
    }

    [Fact]
    public void DecodedOpsAreValid()
    {
        TextOp op = TextOpCodec.Decode([0x0C, 0x0D, 0xE4, 0xB8, 0x96, 0x0A]);
        TextType.Validate(op);
        Assert.Equal("[3,\"世\",{\"d\":2}]", op.ToString());
        Assert.Equal(5, op.BaseLength);
        Assert.Equal(4, op.TargetLength);
    }

    /// <summary>A writer that hands out exactly the size hint, like a pipe near the end of a segment.</summary>
    private sealed class SmallSegmentWriter : IBufferWriter<byte>
    {
        private byte[] _segment = [];

        public List<byte> Written { get; } = [];

        public int Segments { get; private set; }

        public void Advance(int count) => Written.AddRange(_segment.AsSpan(0, count).ToArray());

        public Memory<byte> GetMemory(int sizeHint = 0) => GetSegment(sizeHint);

        public Span<byte> GetSpan(int sizeHint = 0) => GetSegment(sizeHint);

        private byte[] GetSegment(int sizeHint)
        {
            Segments++;
            _segment = new byte[Math.Max(sizeHint, 1)];
            return _segment;
        }
    }
}
