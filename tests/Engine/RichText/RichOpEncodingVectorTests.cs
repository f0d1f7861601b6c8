using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Collab.Engine.RichText;

namespace Collab.Engine.Tests.RichText;

/// <summary>
/// Holds every implementation of the rich-text op encoding (docs/OT.md section 20) to the same bytes: this test writes
/// (with <c>COLLAB_UPDATE_VECTORS=1</c>) and otherwise checks <c>tests/vectors/rich-op-encoding.json</c>, ops in
/// quill-delta JSON with their encodings in hex and the byte strings every decoder must reject. The browser SDK
/// (web/client, <c>rich.test</c>) replays the same file against its own codec.
/// </summary>
public sealed class RichOpEncodingVectorTests
{
    private const string FileName = "rich-op-encoding.json";

    /// <summary>The documented examples, every value type and varint boundary, the orders that normal form keeps.</summary>
    private static readonly string[] ChosenOps =
    [
        "[]",
        """[{"insert":"Hi"}]""",
        """[{"retain":5},{"retain":3,"attributes":{"bold":true}}]""",
        """[{"retain":2},{"delete":1}]""",
        """[{"insert":{"image":"a.png"}}]""",
        """[{"insert":"😀","attributes":{"bold":true}}]""",
        """[{"retain":1,"attributes":{"color":null,"header":2}}]""",
        """[{"retain":1,"attributes":{"size":1.5}}]""",
        """[{"insert":{"mention":{"id":-7,"tags":[true,"a"]}}}]""",
        """[{"insert":"x"},{"delete":1}]""",
        """[{"retain":2147483647,"attributes":{"italic":false}}]""",
        """[{"delete":2147483647}]""",
        """[{"retain":15},{"insert":"a"},{"retain":16},{"insert":"b"}]""",
        """[{"insert":"a","attributes":{"link":"https://example.com/?q=1&r=<x>"}},{"insert":"b"}]""",
        """[{"insert":{"image":"a.png"}},{"insert":{"image":"a.png"}}]""",
        """[{"insert":"\n","attributes":{"list":"bullet"}},{"insert":"\n","attributes":{"list":"ordered"}}]""",
        """[{"retain":1,"attributes":{"n":9007199254740991,"m":-9007199254740991,"f":-0.5,"big":1e300,"tiny":5e-324}}]""",
        """[{"retain":1,"attributes":{"o":{"":1,"a":[],"b":{},"é":[null,false,"z"]}}}]""",
        """[{"insert":"\u0000\u007f\u0080\u07ff\u0800\uffff\ud800\udc00\udbff\udfff"}]""",
        """[{"insert":{"formula":"e=mc^2"},"attributes":{"align":"center"}},{"delete":3}]""",
        """[{"retain":3,"attributes":{"Z":1,"a":1,"_":1}}]""",
    ];

    /// <summary>Byte strings (hex) every decoder must reject as malformed, with the rule each breaks.</summary>
    private static readonly (string Hex, string Reason)[] MalformedCases =
    [
        ("12", "an insert cut short"),
        ("1248", "an insert cut short"),
        ("80", "a truncated varint"),
        ("8000", "a non-minimal varint"),
        ("FFFFFFFFFFFFFFFFFF7F", "a varint past 64 bits"),
        ("FFFFFFFFFFFFFFFFFFFF01", "an eleven-byte varint"),
        ("808080804000", "a retain of 2^31 units"),
        ("06", "a delete of length zero"),
        ("00", "a retain of length zero"),
        ("02", "an insert of zero bytes"),
        ("04", "an embed whose type is empty"),
        ("0F0104626F6C6410", "a delete with attributes"),
        ("0E0E", "two adjacent deletes"),
        ("0E0A61", "an insert after a delete"),
        ("0A610A62", "two text inserts that merge"),
        ("10", "a trailing plain retain"),
        ("0810", "two plain retains that merge"),
        ("0B6100", "an empty attribute map"),
        ("0B6102016910016210", "attribute names out of order"),
        ("0B6102016110016110", "a repeated attribute name"),
        ("0B61010010", "an empty attribute name"),
        ("0B6101016106", "a reserved value type"),
        ("0B6101016107", "a reserved value type 7"),
        ("0B6101016118", "an unknown literal"),
        ("0B610101610A000000000000F83F", "a float with a payload"),
        ("0B610101610200000000000000F03F", "an integral float (1.0 must be an integer)"),
        ("0B610101610200000000000000F07F", "an infinite float"),
        ("0B61010161020000000000F8FF7F", "a NaN"),
        ("0B610101610200000000", "a float cut short"),
        ("0B61010161818080808080808002", "an integer past 2^53"),
        ("0AFF", "invalid UTF-8 text"),
        ("1AEDA080", "an encoded surrogate"),
        ("12C080", "an overlong UTF-8 form"),
        ("0B610101610BFF", "a string value that is not UTF-8"),
        ("0B61010161A406", "a count past the end of the input"),
        ("2C696D616765", "an embed without its payload"),
        ("0B610101610D", "an object value cut short"),
        ("0B610101610D0161", "an object member without its value"),
        ("0B6101016115016110016110", "an object with a repeated member"),
        ("0B6101016115016210016110", "object members out of order"),
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
            RichOp op = RichJson.ParseOp(vector.GetProperty("op").GetRawText());
            byte[] bytes = Convert.FromHexString(vector.GetProperty("hex").GetString()!);
            Assert.Equal(bytes, RichOpCodec.Encode(op));
            Assert.Equal(RichJson.Write(op), RichJson.Write(RichOpCodec.Decode(bytes)));
        }
    }

    [Fact]
    public void EveryMalformedVectorInTheFileIsRejected()
    {
        using JsonDocument file = VectorFiles.Load(FileName);
        JsonElement malformed = file.RootElement.GetProperty("malformed");
        Assert.Equal(MalformedCases.Length, malformed.GetArrayLength());
        var accepted = new List<string>();
        foreach (JsonElement vector in malformed.EnumerateArray())
        {
            byte[] bytes = Convert.FromHexString(vector.GetProperty("hex").GetString()!);
            try
            {
                RichOpCodec.Decode(bytes);
                accepted.Add(vector.GetProperty("reason").GetString()!);
            }
            catch (OtException e)
            {
                Assert.True(e.Code == OtErrorCode.Malformed, vector.GetProperty("reason").GetString());
            }
        }

        Assert.Empty(accepted);
    }

    private static string Render()
    {
        var options = new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, options))
        {
            writer.WriteStartObject();
            writer.WriteString("description", "docs/OT.md section 20: rich-text ops (quill-delta JSON) and their binary encoding (hex), written by "
                + "tests/Engine/RichText/RichOpEncodingVectorTests.cs (COLLAB_UPDATE_VECTORS=1) and replayed by every codec.");
            writer.WriteStartArray("valid");
            foreach (RichOp op in AllOps())
            {
                writer.WriteStartObject();
                writer.WritePropertyName("op");
                writer.WriteRawValue(RichJson.Write(op));
                writer.WriteString("hex", Convert.ToHexStringLower(RichOpCodec.Encode(op)));
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteStartArray("malformed");
            foreach ((string hex, string reason) in MalformedCases)
            {
                writer.WriteStartObject();
                writer.WriteString("hex", hex.ToLowerInvariant());
                writer.WriteString("reason", reason);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan) + "\n";
    }

    private static IEnumerable<RichOp> AllOps()
    {
        foreach (string json in ChosenOps)
        {
            yield return RichJson.ParseOp(json);
        }

        // Seeded System.Random is stable across .NET versions, so the file only changes when the codec does.
        var random = new Random(20);
        for (int i = 0; i < 60; i++)
        {
            yield return RichJson.ParseOp(RandomOpJson(random));
        }
    }

    /// <summary>A random op as JSON (RichJson.ParseOp puts it in normal form).</summary>
    private static string RandomOpJson(Random random)
    {
        var json = new StringBuilder("[");
        int components = random.Next(1, 7);
        for (int i = 0; i < components; i++)
        {
            if (i > 0)
            {
                json.Append(',');
            }

            switch (random.Next(4))
            {
                case 0:
                    json.Append(CultureInfo.InvariantCulture, $"{{\"retain\":{RandomLength(random)}");
                    AppendAttributes(json, random, allowNull: true);
                    break;
                case 1:
                    json.Append("{\"insert\":").Append(JsonSerializer.Serialize(RandomText(random)));
                    AppendAttributes(json, random, allowNull: false);
                    break;
                case 2:
                    json.Append("{\"insert\":{\"").Append(random.Next(3) switch { 0 => "image", 1 => "video", _ => "formula" }).Append("\":");
                    json.Append(RandomValue(random, 2)).Append('}');
                    AppendAttributes(json, random, allowNull: false);
                    break;
                default:
                    json.Append(CultureInfo.InvariantCulture, $"{{\"delete\":{RandomLength(random)}");
                    break;
            }

            json.Append('}');
        }

        return json.Append(']').ToString();
    }

    private static readonly string[] AttributeNames = ["bold", "italic", "underline", "link", "header", "list", "color", "size", "align", "x-custom"];

    private static void AppendAttributes(StringBuilder json, Random random, bool allowNull)
    {
        int count = random.Next(-1, 4);
        if (count <= 0)
        {
            return;
        }

        json.Append(",\"attributes\":{");
        var used = new HashSet<string>();
        for (int i = 0; i < count; i++)
        {
            string name = AttributeNames[random.Next(AttributeNames.Length)];
            if (!used.Add(name))
            {
                continue;
            }

            if (used.Count > 1)
            {
                json.Append(',');
            }

            json.Append('"').Append(name).Append("\":").Append(allowNull && random.Next(4) == 0 ? "null" : RandomValue(random, 1));
        }

        json.Append('}');
    }

    private static string RandomValue(Random random, int depth) => random.Next(depth > 0 ? 8 : 6) switch
    {
        0 => "true",
        1 => "false",
        2 => random.Next(-100000, 100000).ToString(CultureInfo.InvariantCulture),
        3 => (random.NextDouble() * 1000).ToString("R", CultureInfo.InvariantCulture),
        4 or 5 => JsonSerializer.Serialize(RandomText(random)),
        6 => "[" + string.Join(',', Enumerable.Range(0, random.Next(3)).Select(_ => RandomValue(random, depth - 1))) + "]",
        _ => "{" + string.Join(',', Enumerable.Range(0, random.Next(3)).Select(i => $"\"k{i}\":" + RandomValue(random, depth - 1))) + "}",
    };

    /// <summary>Lengths on both sides of varint byte boundaries.</summary>
    private static int RandomLength(Random random) => random.Next(4) switch
    {
        0 => random.Next(1, 16),
        1 => random.Next(16, 2048),
        2 => random.Next(2048, 1 << 18),
        _ => random.Next(1 << 18, 1 << 28),
    };

    private static string RandomText(Random random)
    {
        var text = new StringBuilder();
        int count = random.Next(1, 10);
        for (int i = 0; i < count; i++)
        {
            int codePoint = random.Next(6) switch
            {
                0 or 1 => random.Next('a', 'z' + 1),
                2 => '\n',
                3 => random.Next(0x4E00, 0xA000),
                4 => random.Next(0x1F600, 0x1F650),
                _ => random.Next(0x10000, 0x110000),
            };
            text.Append(char.ConvertFromUtf32(codePoint));
        }

        return text.ToString();
    }
}
