using System.Text.Json;
using System.Text.Json.Serialization;
using Collab.Engine;
using Collab.Engine.Text;

namespace Collab.Server.Api;

/// <summary>
/// The JSON form of a <c>text-unicode</c> op, as ShareDB's ot-text-unicode writes it: an array whose components are a
/// number (retain that many code points), a string (insert it) or <c>{"d": n}</c> (delete n code points; ot-text-unicode
/// also accepts the deleted text itself, <c>{"d": "abc"}</c>, read here as its code-point count). Written in normal
/// form, with <c>{"d": n}</c>.
/// </summary>
internal sealed class TextOpJson : JsonConverter<JsonOp>
{
    /// <summary>Components accepted in one op (a bound on the work of parsing one).</summary>
    public const int MaxComponents = 100_000;

    public override JsonOp Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new JsonException("An op is a JSON array of components.");
        }

        var builder = new TextOpBuilder();
        try
        {
            int count = 0;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                if (++count > MaxComponents)
                {
                    throw new JsonException($"An op has at most {MaxComponents} components.");
                }

                switch (reader.TokenType)
                {
                    case JsonTokenType.Number when reader.TryGetInt32(out int retain) && retain > 0:
                        builder.Retain(retain);
                        break;
                    case JsonTokenType.String:
                        string insert = reader.GetString()!;
                        if (insert.Length == 0)
                        {
                            throw new JsonException("An insert must not be empty.");
                        }

                        builder.Insert(insert);
                        break;
                    case JsonTokenType.StartObject:
                        builder.Delete(ReadDelete(ref reader));
                        break;
                    default:
                        throw new JsonException("A component is a positive integer (retain), a string (insert) or {\"d\": n} (delete).");
                }
            }

            return new JsonOp(builder.ToOp());
        }
        catch (OtException ex)
        {
            throw new JsonException(ex.Message, ex);
        }
        finally
        {
            builder.Dispose();
        }
    }

    public override void Write(Utf8JsonWriter writer, JsonOp value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (TextComponent component in value.Value)
        {
            switch (component.Kind)
            {
                case TextComponentKind.Retain:
                    writer.WriteNumberValue(component.Length);
                    break;
                case TextComponentKind.Insert:
                    writer.WriteStringValue(component.Text);
                    break;
                default:
                    writer.WriteStartObject();
                    writer.WriteNumber("d", component.Length);
                    writer.WriteEndObject();
                    break;
            }
        }

        writer.WriteEndArray();
    }

    private static int ReadDelete(ref Utf8JsonReader reader)
    {
        int? length = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            string? name = reader.GetString();
            reader.Read();
            if (name != "d" || length is not null)
            {
                throw new JsonException("A delete is {\"d\": n} (or {\"d\": \"deleted text\"}).");
            }

            length = reader.TokenType switch
            {
                JsonTokenType.Number when reader.TryGetInt32(out int n) && n > 0 => n,
                JsonTokenType.String when reader.GetString() is { Length: > 0 } text => TextComponent.Insert(text).Length, // its code points
                _ => throw new JsonException("A delete's \"d\" is a positive integer or the deleted text."),
            };
        }

        return length ?? throw new JsonException("A delete is {\"d\": n}.");
    }
}
