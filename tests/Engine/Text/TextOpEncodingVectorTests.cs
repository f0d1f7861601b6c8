using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Collab.Engine.Text;

namespace Collab.Engine.Tests.Text;

/// <summary>
/// Holds every implementation of the binary op encoding (docs/OT.md section 8) to the same bytes: this test writes
/// (with <c>COLLAB_UPDATE_VECTORS=1</c>) and otherwise checks <c>tests/vectors/text-op-encoding.json</c>, the ops in
/// text-unicode JSON with their encodings in hex and the byte strings every decoder must reject. The TypeScript SDK
/// (web/client, <c>codec.test</c>) replays the same file against its own codec.
/// </summary>
public sealed class TextOpEncodingVectorTests
{
    private const string FileName = "text-op-encoding.json";

    /// <summary>Hand-picked ops: the documented examples, every boundary of the varint and of UTF-8, the orders that normal form keeps.</summary>
    private static readonly string[] ChosenOps =
    [
        "[]",
        "[3,\"hi\",{\"d\":2}]",
        "[\"👻\"]",
        "[100,\"x\"]",
        "[{\"d\":2147483647}]",
        "[2147483646,\"x\"]",
        "[31,\"a\"]",
        "[32,\"a\"]",
        "[4095,{\"d\":4096}]",
        "[{\"d\":1},\"x\"]",
        "[\"x\",{\"d\":1}]",
        "[\"\\u0000\\u007f\\u0080\\u07ff\\u0800\\uffff\"]",
        "[\"\\ud800\\udc00\\udbff\\udfff\"]",
        "[5,\"héllo 世界 😀\\u0301\",{\"d\":7},2,{\"d\":1},\"\\n\"]",
        "[1,{\"d\":1},1,{\"d\":1},1,\"z\"]",
    ];

    /// <summary>Byte strings (hex) that every decoder must reject as malformed, with the rule each breaks.</summary>
    private static readonly (string Hex, string Reason)[] MalformedCases =
    [
        ("80", "truncated varint"),
        ("0c89", "varint cut at the end of the input"),
        ("8c000578", "overlong varint (3<<2 in two bytes)"),
        ("85800078", "varint padded with zero groups"),
        ("808080808001", "six-byte varint"),
        ("8080808020", "retain 2^31: length above 2^31-1"),
        ("07", "reserved kind 3"),
        ("03", "reserved kind 3 with length 0"),
        ("00", "retain 0"),
        ("01", "insert of zero bytes"),
        ("02", "delete 0"),
        ("0a02", "delete 2 then delete 0"),
        ("feffffff1f0578feffffff1f", "base length above 2^31-1"),
        ("fdffffff1f78", "insert longer than the input"),
        ("0968", "insert cut short"),
        ("0c11f09f91", "insert cut inside a scalar"),
        ("05ff", "invalid UTF-8 byte"),
        ("0580", "lone UTF-8 continuation byte"),
        ("09c080", "overlong UTF-8 (NUL in two bytes)"),
        ("0deda080", "UTF-8 of a surrogate code point"),
        ("09f09f", "UTF-8 scalar cut at the end of the insert"),
        ("11f4908080", "UTF-8 past U+10FFFF"),
        ("04040578", "retain then retain"),
        ("05610562", "insert then insert"),
        ("0606", "delete then delete"),
        ("056104", "trailing retain"),
        ("04", "a lone retain"),
    ];

    [Fact]
    public void VectorsFileIsWhatTheCodecProduces()
    {
        VectorFiles.AssertFileIs(FileName, Render());
    }

    [Fact]
    public void EveryVectorInTheFileRoundTrips()
    {
        using JsonDocument file = VectorFiles.Load(FileName);
        JsonElement valid = file.RootElement.GetProperty("valid");
        Assert.True(valid.GetArrayLength() > ChosenOps.Length);
        foreach (JsonElement vector in valid.EnumerateArray())
        {
            TextOp op = OpJson.Parse(vector.GetProperty("op").GetRawText());
            byte[] bytes = Convert.FromHexString(vector.GetProperty("hex").GetString()!);
            Assert.Equal(bytes, Encode(op));
            Assert.Equal(op, TextOpCodec.Decode(bytes));
        }
    }

    [Fact]
    public void EveryMalformedVectorInTheFileIsRejected()
    {
        using JsonDocument file = VectorFiles.Load(FileName);
        JsonElement malformed = file.RootElement.GetProperty("malformed");
        Assert.Equal(MalformedCases.Length, malformed.GetArrayLength());
        foreach (JsonElement vector in malformed.EnumerateArray())
        {
            byte[] bytes = Convert.FromHexString(vector.GetProperty("hex").GetString()!);
            OtException e = Assert.Throws<OtException>(() => TextOpCodec.Decode(bytes));
            Assert.Equal(OtErrorCode.Malformed, e.Code);
        }
    }

    private static string Render()
    {
        var options = new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, options))
        {
            writer.WriteStartObject();
            writer.WriteString("description", "docs/OT.md section 8: text-unicode ops (JSON) and their binary encoding (hex), written by "
                + "tests/Engine/Text/TextOpEncodingVectorTests.cs (COLLAB_UPDATE_VECTORS=1) and replayed by every codec.");
            writer.WriteStartArray("valid");
            foreach (TextOp op in AllOps())
            {
                writer.WriteStartObject();
                writer.WritePropertyName("op");
                writer.WriteRawValue(CompactJson(op));
                writer.WriteString("hex", Convert.ToHexStringLower(Encode(op)));
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteStartArray("malformed");
            foreach ((string hex, string reason) in MalformedCases)
            {
                writer.WriteStartObject();
                writer.WriteString("hex", hex);
                writer.WriteString("reason", reason);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan) + "\n";
    }

    private static IEnumerable<TextOp> AllOps()
    {
        foreach (string json in ChosenOps)
        {
            yield return OpJson.Parse(json);
        }

        // Seeded System.Random is stable across .NET versions, so the file only changes when the codec does.
        var random = new Random(18);
        for (int i = 0; i < 40; i++)
        {
            yield return RandomOp(random);
        }
    }

    private static TextOp RandomOp(Random random)
    {
        var builder = new TextOpBuilder();
        int components = random.Next(1, 7);
        for (int i = 0; i < components; i++)
        {
            switch (random.Next(3))
            {
                case 0:
                    builder.Retain(RandomLength(random));
                    break;
                case 1:
                    builder.Insert(RandomText(random));
                    break;
                default:
                    builder.Delete(RandomLength(random));
                    break;
            }
        }

        return builder.ToOp();
    }

    /// <summary>Lengths on both sides of each varint byte boundary (tags of 1 to 5 bytes).</summary>
    private static int RandomLength(Random random) => random.Next(4) switch
    {
        0 => random.Next(1, 32),
        1 => random.Next(32, 4096),
        2 => random.Next(4096, 1 << 19),
        _ => random.Next(1 << 19, 1 << 24),
    };

    private static string RandomText(Random random)
    {
        var text = new StringBuilder();
        int count = random.Next(1, 12);
        for (int i = 0; i < count; i++)
        {
            int codePoint = random.Next(6) switch
            {
                0 or 1 => random.Next('a', 'z' + 1),
                2 => random.Next(0x0300, 0x0370),
                3 => random.Next(0x4E00, 0xA000),
                4 => random.Next(0x1F600, 0x1F650),
                _ => random.Next(0x10000, 0x110000), // astral: four UTF-8 bytes, a surrogate pair in UTF-16
            };
            text.Append(char.ConvertFromUtf32(codePoint));
        }

        return text.ToString();
    }

    /// <summary>The op on one line (the file stays readable: one vector per three lines).</summary>
    private static string CompactJson(TextOp op)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            WriteOp(writer, op);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void WriteOp(Utf8JsonWriter writer, TextOp op)
    {
        writer.WriteStartArray();
        foreach (TextComponent component in op)
        {
            if (component.IsRetain)
            {
                writer.WriteNumberValue(component.Length);
            }
            else if (component.IsInsert)
            {
                writer.WriteStringValue(component.Text);
            }
            else
            {
                writer.WriteStartObject();
                writer.WriteNumber("d", component.Length);
                writer.WriteEndObject();
            }
        }

        writer.WriteEndArray();
    }

    private static byte[] Encode(TextOp op)
    {
        var buffer = new ArrayBufferWriter<byte>();
        TextOpCodec.Encode(op, buffer);
        return buffer.WrittenSpan.ToArray();
    }
}
