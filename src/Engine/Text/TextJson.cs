using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Collab.Engine.Text;

/// <summary>
/// The JSON form of a <c>text-unicode</c> op, as ShareDB's ot-text-unicode writes it: an array whose components are a
/// number (retain that many code points), a string (insert it) or <c>{"d": n}</c> (delete n code points; ot-text-unicode
/// also accepts the deleted text itself, <c>{"d": "abc"}</c>, read here as its code-point count). Written in normal
/// form, with <c>{"d": n}</c>. The HTTP API's op form (docs/API.md), shared by the server and the C# SDK.
/// </summary>
public static class TextJson
{
    /// <summary>Components accepted in one op (a bound on the work of parsing one).</summary>
    public const int MaxComponents = 100_000;

    private static readonly JsonWriterOptions s_writerOptions = new()
    {
        // Data for editors, not markup: non-ASCII text stays readable instead of \u-escaped.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The op's JSON array.</summary>
    public static string Write(TextOp op)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, s_writerOptions))
        {
            Write(writer, op);
        }

        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>Writes the op's JSON array to <paramref name="writer"/>.</summary>
    public static void Write(Utf8JsonWriter writer, TextOp op)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartArray();
        foreach (TextComponent component in op)
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

    /// <summary>Parses an op's JSON array. Throws <see cref="OtException"/> (<see cref="OtErrorCode.Malformed"/>) for anything else.</summary>
    public static TextOp Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        byte[] utf8;
        try
        {
            utf8 = new UTF8Encoding(false, throwOnInvalidBytes: true).GetBytes(json);
        }
        catch (EncoderFallbackException)
        {
            throw new OtException(OtErrorCode.InvalidText, "The JSON holds a lone surrogate.");
        }

        return Parse(utf8);
    }

    /// <summary><see cref="Parse(string)"/> over UTF-8 JSON.</summary>
    public static TextOp Parse(ReadOnlySpan<byte> utf8Json)
    {
        var reader = new Utf8JsonReader(utf8Json);
        try
        {
            if (!reader.Read())
            {
                throw new OtException(OtErrorCode.Malformed, "An op is a JSON array of components.");
            }

            TextOp op = Read(ref reader);
            if (reader.Read())
            {
                throw new OtException(OtErrorCode.Malformed, "Text follows the op.");
            }

            return op;
        }
        catch (JsonException ex)
        {
            throw new OtException(OtErrorCode.Malformed, $"Malformed text op JSON: {ex.Message}");
        }
    }

    /// <summary>
    /// Reads one op with <paramref name="reader"/> positioned on its <c>[</c>, leaving it on the matching <c>]</c>.
    /// Throws <see cref="OtException"/> (<see cref="OtErrorCode.Malformed"/>, or the builder's own codes such as a lone
    /// surrogate) for a value that is not an op.
    /// </summary>
    public static TextOp Read(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            Malformed("An op is a JSON array of components.");
        }

        var builder = new TextOpBuilder();
        try
        {
            int count = 0;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                if (++count > MaxComponents)
                {
                    Malformed($"An op has at most {MaxComponents} components.");
                }

                switch (reader.TokenType)
                {
                    case JsonTokenType.Number when reader.TryGetInt32(out int retain) && retain > 0:
                        builder.Retain(retain);
                        break;
                    case JsonTokenType.String:
                        string insert = StringOf(ref reader);
                        if (insert.Length == 0)
                        {
                            Malformed("An insert must not be empty.");
                        }

                        builder.Insert(insert);
                        break;
                    case JsonTokenType.StartObject:
                        builder.Delete(ReadDelete(ref reader));
                        break;
                    default:
                        Malformed("A component is a positive integer (retain), a string (insert) or {\"d\": n} (delete).");
                        break;
                }
            }

            return builder.ToOp();
        }
        finally
        {
            builder.Dispose();
        }
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
                Malformed("A delete is {\"d\": n} (or {\"d\": \"deleted text\"}).");
            }

            length = reader.TokenType switch
            {
                JsonTokenType.Number when reader.TryGetInt32(out int n) && n > 0 => n,
                JsonTokenType.String when StringOf(ref reader) is { Length: > 0 } text => TextComponent.Insert(text).Length, // its code points
                _ => throw new OtException(OtErrorCode.Malformed, "A delete's \"d\" is a positive integer or the deleted text."),
            };
        }

        return length ?? throw new OtException(OtErrorCode.Malformed, "A delete is {\"d\": n}.");
    }

    /// <summary>A string token's value; an escape that is no text (a lone <c>\ud800</c>) is malformed, not a crash.</summary>
    private static string StringOf(ref Utf8JsonReader reader)
    {
        try
        {
            return reader.GetString()!;
        }
        catch (InvalidOperationException ex)
        {
            throw new OtException(OtErrorCode.Malformed, $"A string is not valid text: {ex.Message}");
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void Malformed(string message) => throw new OtException(OtErrorCode.Malformed, message);
}
