using System.Text.Json;
using System.Text.Json.Serialization;
using Collab.Engine;
using Collab.Engine.Text;

namespace Collab.Server.Api;

/// <summary>
/// System.Text.Json's converter for a <c>text-unicode</c> op in ot-text-unicode's JSON form; the form itself (shared
/// with the C# SDK's HTTP client) is <see cref="TextJson"/>.
/// </summary>
internal sealed class TextOpJson : JsonConverter<JsonOp>
{
    public override JsonOp Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        try
        {
            return new JsonOp(TextJson.Read(ref reader));
        }
        catch (OtException ex)
        {
            throw new JsonException(ex.Message, ex);
        }
    }

    public override void Write(Utf8JsonWriter writer, JsonOp value, JsonSerializerOptions options) => TextJson.Write(writer, value.Value);
}
