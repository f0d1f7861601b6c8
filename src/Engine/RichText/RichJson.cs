using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Collab.Engine.RichText;

/// <summary>
/// quill-delta's JSON notation for ops and documents, e.g.
/// <c>[{"insert":"Hello ","attributes":{"bold":true}},{"insert":{"image":"cat.png"}},{"retain":3},{"delete":2}]</c>:
/// what Quill's <c>getContents()</c> returns and <c>setContents()</c> takes, and the form of a rich-text snapshot in
/// storage and on the wire (<see cref="IOtType{TSnapshot, TOp}.ToText"/>). Reading and writing use System.Text.Json.
/// </summary>
public static class RichJson
{
    private static readonly JsonWriterOptions s_writerOptions = new()
    {
        // The JSON is data for editors, not markup: non-ASCII text stays readable (and compact) instead of \u-escaped.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private static readonly JsonReaderOptions s_readerOptions = new() { MaxDepth = RichValue.MaxDepth + 4 };

    // ---- Writing ---------------------------------------------------------------------------------------------------

    /// <summary>The op's JSON ops array.</summary>
    public static string Write(RichOp op) => Write(op, static (writer, op) => WriteOps(writer, op));

    /// <summary>The document's JSON ops array (inserts only, merged: what Quill's <c>getContents().ops</c> gives).</summary>
    public static string Write(RichDocument document)
    {
        ArgumentNullException.ThrowIfNull(document);
        return Write(document.ToOp());
    }

    /// <summary>One component's JSON object.</summary>
    public static string Write(RichComponent component) => Write(component, static (writer, c) => WriteComponent(writer, c));

    /// <summary>A value's JSON.</summary>
    public static string Write(RichValue value) => Write(value, static (writer, v) => WriteValue(writer, v));

    /// <summary>Writes the op's JSON ops array to <paramref name="writer"/>.</summary>
    public static void WriteOps(Utf8JsonWriter writer, RichOp op)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartArray();
        foreach (ref readonly RichComponent c in op.Components)
        {
            WriteComponent(writer, c);
        }

        writer.WriteEndArray();
    }

    private static void WriteComponent(Utf8JsonWriter writer, in RichComponent c)
    {
        writer.WriteStartObject();
        switch (c.Kind)
        {
            case RichComponentKind.Insert when c.IsText:
                writer.WriteString("insert", c.Text);
                break;
            case RichComponentKind.Insert:
                writer.WritePropertyName("insert");
                writer.WriteStartObject();
                writer.WritePropertyName(c.Embed!.Type);
                WriteValue(writer, c.Embed.Value);
                writer.WriteEndObject();
                break;
            case RichComponentKind.Retain:
                writer.WriteNumber("retain", c.Length);
                break;
            default:
                writer.WriteNumber("delete", c.Length);
                break;
        }

        if (c.Attributes is { } attributes)
        {
            writer.WritePropertyName("attributes");
            WriteMembers(writer, attributes.Entries);
        }

        writer.WriteEndObject();
    }

    private static void WriteValue(Utf8JsonWriter writer, RichValue value)
    {
        switch (value.Kind)
        {
            case RichValueKind.Null:
                writer.WriteNullValue();
                break;
            case RichValueKind.False:
                writer.WriteBooleanValue(false);
                break;
            case RichValueKind.True:
                writer.WriteBooleanValue(true);
                break;
            case RichValueKind.Number:
                writer.WriteNumberValue(value.Number);
                break;
            case RichValueKind.String:
                writer.WriteStringValue(value.String);
                break;
            case RichValueKind.Array:
                writer.WriteStartArray();
                foreach (RichValue item in value.Items)
                {
                    WriteValue(writer, item);
                }

                writer.WriteEndArray();
                break;
            default:
                WriteMembers(writer, value.Members);
                break;
        }
    }

    private static void WriteMembers(Utf8JsonWriter writer, ReadOnlySpan<KeyValuePair<string, RichValue>> members)
    {
        writer.WriteStartObject();
        foreach (KeyValuePair<string, RichValue> member in members)
        {
            writer.WritePropertyName(member.Key);
            WriteValue(writer, member.Value);
        }

        writer.WriteEndObject();
    }

    private static string Write<T>(T state, Action<Utf8JsonWriter, T> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, s_writerOptions))
        {
            write(writer, state);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    // ---- Reading ---------------------------------------------------------------------------------------------------

    /// <summary>
    /// Parses an op (<c>[...]</c> or <c>{"ops":[...]}</c>) and brings it to normal form as quill-delta's <c>push</c> and
    /// <c>chop</c> would. Each element has exactly one of <c>insert</c> (non-empty text, or an object with one member:
    /// the embed), <c>retain</c> or <c>delete</c> (positive integers), and optionally <c>attributes</c> (an object;
    /// empty or null means none; not on a delete). Throws <see cref="OtException"/>: <see cref="OtErrorCode.Malformed"/>
    /// for anything else, <see cref="OtErrorCode.InvalidText"/> for a lone surrogate.
    /// </summary>
    public static RichOp ParseOp(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        byte[] utf8 = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(json.Length));
        try
        {
            int length;
            try
            {
                length = new UTF8Encoding(false, throwOnInvalidBytes: true).GetBytes(json, utf8);
            }
            catch (EncoderFallbackException)
            {
                throw new OtException(OtErrorCode.InvalidText, "The JSON holds a lone surrogate.");
            }

            return ParseOp(utf8.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(utf8);
        }
    }

    /// <summary><see cref="ParseOp(string)"/> over UTF-8 JSON.</summary>
    public static RichOp ParseOp(ReadOnlySpan<byte> utf8Json)
    {
        var reader = new Utf8JsonReader(utf8Json, s_readerOptions);
        var builder = new RichOpBuilder();
        try
        {
            Read(ref reader);
            if (reader.TokenType == JsonTokenType.StartObject)
            {
                Read(ref reader);
                if (reader.TokenType != JsonTokenType.PropertyName || !reader.ValueTextEquals("ops"u8))
                {
                    Throw("an object must have one member, \"ops\"");
                }

                Read(ref reader);
                ReadComponents(ref reader, ref builder);
                Expect(ref reader, JsonTokenType.EndObject, "nothing may follow \"ops\"");
            }
            else
            {
                ReadComponents(ref reader, ref builder);
            }

            if (reader.Read())
            {
                Throw("text follows the ops");
            }

            return builder.ToOp();
        }
        catch (JsonException ex)
        {
            throw new OtException(OtErrorCode.Malformed, $"Malformed rich-text JSON: {ex.Message}");
        }
        catch (InvalidOperationException ex)
        {
            throw new OtException(OtErrorCode.Malformed, $"Malformed rich-text JSON: {ex.Message}");
        }
        finally
        {
            builder.Dispose();
        }
    }

    /// <summary>Parses a document: <see cref="ParseOp(string)"/> of inserts only (<see cref="OtErrorCode.Malformed"/> otherwise).</summary>
    public static RichDocument ParseDocument(string json) => RichDocument.FromOp(ParseOp(json));

    /// <summary>Parses one JSON value.</summary>
    public static RichValue ParseValue(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(json), s_readerOptions);
        try
        {
            Read(ref reader);
            RichValue value = ReadValue(ref reader, 0);
            if (reader.Read())
            {
                Throw("text follows the value");
            }

            return value;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            throw new OtException(OtErrorCode.Malformed, $"Malformed JSON value: {ex.Message}");
        }
    }

    private static void ReadComponents(ref Utf8JsonReader reader, ref RichOpBuilder builder)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            Throw("ops must be an array");
        }

        while (true)
        {
            Read(ref reader);
            if (reader.TokenType == JsonTokenType.EndArray)
            {
                return;
            }

            builder.Append(ReadComponent(ref reader));
        }
    }

    private static RichComponent ReadComponent(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            Throw("each op must be an object");
        }

        RichComponentKind kind = 0;
        int length = 0;
        object? content = null;
        AttributeMap? attributes = null;
        bool sawAttributes = false;
        while (true)
        {
            Read(ref reader);
            if (reader.TokenType == JsonTokenType.EndObject)
            {
                break;
            }

            if (reader.ValueTextEquals("attributes"u8))
            {
                if (sawAttributes)
                {
                    Throw("\"attributes\" is given twice");
                }

                sawAttributes = true;
                Read(ref reader);
                attributes = reader.TokenType == JsonTokenType.Null ? null : ReadAttributes(ref reader);
                continue;
            }

            if (kind != 0)
            {
                Throw("an op has more than one of insert, retain and delete");
            }

            if (reader.ValueTextEquals("insert"u8))
            {
                kind = RichComponentKind.Insert;
                Read(ref reader);
                content = reader.TokenType switch
                {
                    JsonTokenType.String => reader.GetString()!,
                    JsonTokenType.StartObject => ReadEmbed(ref reader),
                    _ => Throw<object>("an insert must be a string or an embed object"),
                };
            }
            else if (reader.ValueTextEquals("retain"u8) || reader.ValueTextEquals("delete"u8))
            {
                kind = reader.ValueTextEquals("retain"u8) ? RichComponentKind.Retain : RichComponentKind.Delete;
                Read(ref reader);
                double number = reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out double value) ? value : 0;
                if (number < 1 || number > int.MaxValue || Math.Floor(number) != number)
                {
                    Throw("a retain or delete length must be a positive integer");
                }

                length = (int)number;
            }
            else
            {
                Throw($"unknown member \"{reader.GetString()}\"");
            }
        }

        switch (kind)
        {
            case RichComponentKind.Insert when content is string text:
                if (text.Length == 0)
                {
                    Throw("an insert of empty text");
                }

                return RichComponent.Insert(text, attributes);
            case RichComponentKind.Insert:
                return RichComponent.Insert((RichEmbed)content!, attributes);
            case RichComponentKind.Retain:
                return RichComponent.Retain(length, attributes);
            case RichComponentKind.Delete when attributes is null:
                return RichComponent.Delete(length);
            case RichComponentKind.Delete:
                return Throw<RichComponent>("a delete carries attributes");
            default:
                return Throw<RichComponent>("an op has none of insert, retain and delete");
        }
    }

    private static RichEmbed ReadEmbed(ref Utf8JsonReader reader)
    {
        Read(ref reader);
        if (reader.TokenType != JsonTokenType.PropertyName)
        {
            Throw("an embed must have exactly one member (its type)");
        }

        string type = reader.GetString()!;
        Read(ref reader);
        RichValue value = ReadValue(ref reader, 0);
        Expect(ref reader, JsonTokenType.EndObject, "an embed must have exactly one member (its type)");
        if (type.Length == 0)
        {
            Throw("an embed type is empty");
        }

        return new RichEmbed(type, value);
    }

    private static AttributeMap? ReadAttributes(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            Throw("attributes must be an object");
        }

        KeyValuePair<string, RichValue>[] members = ReadMembers(ref reader, 0);
        foreach (KeyValuePair<string, RichValue> member in members)
        {
            if (member.Key.Length == 0)
            {
                Throw("an attribute name is empty");
            }
        }

        return members.Length == 0 ? null : AttributeMap.CreateTrusted(members);
    }

    private static RichValue ReadValue(ref Utf8JsonReader reader, int depth)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return RichValue.Null;
            case JsonTokenType.True:
                return RichValue.True;
            case JsonTokenType.False:
                return RichValue.False;
            case JsonTokenType.Number:
                double number = reader.GetDouble();
                return double.IsFinite(number) ? RichValue.NumberTrusted(number) : Throw<RichValue>("a number out of range");
            case JsonTokenType.String:
                return RichValue.FromString(reader.GetString()!);
            case JsonTokenType.StartArray:
                CheckDepth(depth);
                var items = new List<RichValue>();
                while (true)
                {
                    Read(ref reader);
                    if (reader.TokenType == JsonTokenType.EndArray)
                    {
                        return RichValue.ArrayTrusted([.. items]);
                    }

                    items.Add(ReadValue(ref reader, depth + 1));
                }

            case JsonTokenType.StartObject:
                CheckDepth(depth);
                return RichValue.ObjectTrusted(ReadMembers(ref reader, depth + 1));
            default:
                return Throw<RichValue>($"unexpected {reader.TokenType}");
        }
    }

    /// <summary>An object's members (the reader is on its start), sorted by name; a repeated name is rejected.</summary>
    private static KeyValuePair<string, RichValue>[] ReadMembers(ref Utf8JsonReader reader, int depth)
    {
        var members = new List<KeyValuePair<string, RichValue>>();
        while (true)
        {
            Read(ref reader);
            if (reader.TokenType == JsonTokenType.EndObject)
            {
                break;
            }

            string name = reader.GetString()!;
            if (Text.CodePoints.CountOrInvalid(name) < 0)
            {
                throw new OtException(OtErrorCode.InvalidText, "A member name holds a lone surrogate.");
            }

            Read(ref reader);
            members.Add(new(name, ReadValue(ref reader, depth)));
        }

        members.Sort(static (a, b) => string.CompareOrdinal(a.Key, b.Key));
        for (int i = 1; i < members.Count; i++)
        {
            if (members[i - 1].Key == members[i].Key)
            {
                Throw($"the member \"{members[i].Key}\" is given twice");
            }
        }

        return [.. members];
    }

    private static void CheckDepth(int depth)
    {
        if (depth >= RichValue.MaxDepth)
        {
            Throw($"values nest deeper than {RichValue.MaxDepth} levels");
        }
    }

    private static void Read(ref Utf8JsonReader reader)
    {
        if (!reader.Read())
        {
            Throw("the JSON ends early");
        }
    }

    private static void Expect(ref Utf8JsonReader reader, JsonTokenType type, string why)
    {
        Read(ref reader);
        if (reader.TokenType != type)
        {
            Throw(why);
        }
    }

    [DoesNotReturn]
    private static void Throw(string why) => throw new OtException(OtErrorCode.Malformed, $"Malformed rich-text JSON: {why}.");

    [DoesNotReturn]
    private static T Throw<T>(string why) => throw new OtException(OtErrorCode.Malformed, $"Malformed rich-text JSON: {why}.");
}
