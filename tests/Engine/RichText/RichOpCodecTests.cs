using Collab.Engine.RichText;

namespace Collab.Engine.Tests.RichText;

/// <summary>The binary format of docs/OT.md ("rich-text: binary encoding"), byte for byte, and every way to break it.</summary>
public sealed class RichOpCodecTests
{
    // The examples of docs/OT.md's table.
    [Theory]
    [InlineData("[]", "")]
    [InlineData("""[{"insert":"Hi"}]""", "124869")]
    [InlineData("""[{"retain":5},{"retain":3,"attributes":{"bold":true}}]""", "28190104626F6C6410")]
    [InlineData("""[{"retain":2},{"delete":1}]""", "100E")]
    [InlineData("""[{"insert":{"image":"a.png"}}]""", "2C696D6167652B612E706E67")]
    [InlineData("""[{"insert":"😀","attributes":{"bold":true}}]""", "23F09F98800104626F6C6410")]
    [InlineData("""[{"retain":1,"attributes":{"color":null,"header":2}}]""", "090205636F6C6F72000668656164657221")]
    [InlineData("""[{"retain":1,"attributes":{"size":1.5}}]""", "09010473697A6502000000000000F83F")]
    [InlineData("""[{"insert":{"mention":{"id":-7,"tags":[true,"a"]}}}]""", "3C6D656E74696F6E1502696469047461677314100B61")]
    public void Encodes_the_documented_bytes(string json, string hex)
    {
        RichOp op = RichOp.Parse(json);
        byte[] bytes = RichOpCodec.Encode(op);
        Assert.Equal(hex, Convert.ToHexString(bytes));
        Assert.Equal(bytes.Length, RichOpCodec.GetEncodedLength(op));
        Assert.Equal(op, RichOpCodec.Decode(bytes));
    }

    [Fact]
    public void Round_trips_long_text_written_in_pieces_and_every_value_kind()
    {
        string text = string.Concat(Enumerable.Repeat("héllo wörld 😀 ", 5000)); // > 16 KiB of UTF-8: streamed in pieces
        RichValue payload = RichValue.Object(
            new("n", RichValue.Null), new("f", false), new("t", true), new("i", -9007199254740991.0), new("d", 0.1),
            new("big", 1e300), new("s", "ß"), new("a", RichValue.Array(1, RichValue.Array(), RichValue.Object())), new("", "empty name"));
        RichOp op = RichOp.Create(
            RichComponent.Retain(3, AttributeMap.Create(new("link", "https://example.test/" + new string('x', 3000)), new("width", 640))),
            RichComponent.Insert(text, AttributeMap.Of("bold", true)),
            RichComponent.Insert(new RichEmbed("custom", payload)),
            RichComponent.Delete(int.MaxValue - 3));
        byte[] bytes = RichOpCodec.Encode(op);
        Assert.Equal(bytes.Length, RichOpCodec.GetEncodedLength(op));
        RichOp decoded = RichOpCodec.Decode(bytes);
        Assert.Equal(op, decoded);
        Assert.Equal(bytes, RichOpCodec.Encode(decoded));
        Assert.Equal(text.Length, decoded[1].Length);
    }

    [Fact]
    public void Common_names_and_single_true_maps_are_shared_between_decodes()
    {
        byte[] bytes = RichOpCodec.Encode(RichOp.Parse("""[{"retain":1,"attributes":{"bold":true}},{"insert":{"image":"x"}}]"""));
        RichOp first = RichOpCodec.Decode(bytes);
        RichOp second = RichOpCodec.Decode(bytes);
        Assert.Same(first[0].Attributes, second[0].Attributes);
        Assert.Same(first[1].Embed!.Type, second[1].Embed!.Type);
    }

    [Theory]
    [InlineData("12", "an insert cut short")]
    [InlineData("1248", "an insert cut short")]
    [InlineData("80", "a truncated varint")]
    [InlineData("8000", "a non-minimal varint")]
    [InlineData("FFFFFFFFFFFFFFFFFF7F", "a varint past 64 bits")]
    [InlineData("06", "a delete of length zero")]
    [InlineData("04", "an embed whose type is empty")]
    [InlineData("0F0104626F6C6410", "a delete with attributes")]
    [InlineData("0E0E", "two adjacent deletes")]
    [InlineData("0E0A61", "an insert after a delete")]
    [InlineData("0A610A62", "two text inserts that merge")]
    [InlineData("10", "a trailing plain retain")]
    [InlineData("0810", "two plain retains that merge")]
    [InlineData("0B6100", "an empty attribute map")]
    [InlineData("0B6102016910016210", "attribute names out of order")]
    [InlineData("0B6102016110016110", "a repeated attribute name")]
    [InlineData("0B61010010", "an empty attribute name")]
    [InlineData("0B6101016106", "a reserved value type")]
    [InlineData("0B6101016118", "an unknown literal")]
    [InlineData("0B610101610A000000000000F83F", "a float with a payload")]
    [InlineData("0B610101610200000000000000F03F", "an integral float (1.0 must be an integer)")]
    [InlineData("0B610101610200000000000000F07F", "an infinite float")]
    [InlineData("0B61010161818080808080808002", "an integer past 2^53")]
    [InlineData("0AFF", "invalid UTF-8 text")]
    [InlineData("1AEDA080", "an encoded surrogate")]
    [InlineData("0B610101610BFF", "a string value that is not UTF-8")]
    [InlineData("0B61010161A406", "a count past the end of the input")]
    [InlineData("2C696D616765", "an embed without its payload")]
    public void Rejects_malformed_bytes(string hex, string why)
    {
        OtException ex = Assert.Throws<OtException>(() => RichOpCodec.Decode(Convert.FromHexString(hex)));
        Assert.True(ex.Code == OtErrorCode.Malformed, why);
    }

    [Fact]
    public void Rejects_values_nested_past_the_limit_and_accepts_the_limit()
    {
        RichValue deep = RichValue.Null;
        for (int i = 0; i < RichValue.MaxDepth; i++)
        {
            deep = RichValue.Array(deep);
        }

        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        RichOpCodec.WriteValue(buffer, deep);
        Assert.Equal(deep, RichOpCodec.DecodeValue(buffer.WrittenSpan));

        // One level more: 0x0C is an array of one element.
        byte[] deeper = [0x0C, .. buffer.WrittenSpan];
        Assert.Equal(OtErrorCode.Malformed, Assert.Throws<OtException>(() => RichOpCodec.DecodeValue(deeper)).Code);
        Assert.Throws<ArgumentException>(() => RichValue.Array(deep));
    }

    [Fact]
    public void Rejects_lengths_past_int_max()
    {
        RichOp op = RichOp.Create(RichComponent.Retain(int.MaxValue, AttributeMap.Of("bold", true)));
        byte[] bytes = RichOpCodec.Encode(op);
        Assert.Equal(op, RichOpCodec.Decode(bytes));
        Assert.Equal(OtErrorCode.Malformed, Assert.Throws<OtException>(() => RichOpCodec.Decode([.. bytes, 0x0E])).Code);
    }
}
