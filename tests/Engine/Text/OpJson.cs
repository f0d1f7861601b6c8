using System.Text.Json;
using Collab.Engine.Text;

namespace Collab.Engine.Tests.Text;

/// <summary>
/// Reads ops in ShareDB's text-unicode JSON notation: a number retains, a string or <c>{"i": s}</c>
/// inserts, <c>{"d": n}</c> or <c>{"d": "text"}</c> deletes (the text's code points). The result is normalized.
/// </summary>
internal static class OpJson
{
    public static TextOp Parse(string json)
    {
        using JsonDocument document = JsonDocument.Parse(json);
        if (document.RootElement.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException($"An op must be a JSON array: {json}");
        }

        var builder = new TextOpBuilder();
        foreach (JsonElement element in document.RootElement.EnumerateArray())
        {
            switch (element.ValueKind)
            {
                case JsonValueKind.Number:
                    builder.Retain(element.GetInt32());
                    break;
                case JsonValueKind.String:
                    builder.Insert(element.GetString()!);
                    break;
                case JsonValueKind.Object when element.TryGetProperty("i", out JsonElement insert):
                    builder.Insert(insert.GetString()!);
                    break;
                case JsonValueKind.Object when element.TryGetProperty("d", out JsonElement delete):
                    builder.Delete(delete.ValueKind == JsonValueKind.Number ? delete.GetInt32() : TextGen.CodePointCount(delete.GetString()!));
                    break;
                default:
                    throw new FormatException($"Unknown component {element} in {json}");
            }
        }

        return builder.ToOp();
    }
}
