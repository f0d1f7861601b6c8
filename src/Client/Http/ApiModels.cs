using System.Text.Json;
using System.Text.Json.Serialization;
using Collab.Engine.RichText;
using Collab.Engine.Text;

namespace Collab.Client;

/// <summary>The names of the OT types a document can have (fixed when it is created; docs/PROTOCOL.md).</summary>
public static class CollabDocumentTypes
{
    /// <summary>Plain text, ShareDB's <c>text-unicode</c> (lengths in code points).</summary>
    public const string Text = TextType.TypeName;

    /// <summary>Formatted text, Quill Delta (<c>rich-text</c>; lengths in UTF-16 code units, an embed counts 1).</summary>
    public const string RichText = RichTextType.TypeName;
}

/// <summary>A document at one version, as <c>GET /v1/docs/{id}</c> answers it.</summary>
public sealed class ApiDocument
{
    /// <summary>The document id.</summary>
    public string Id { get; init; } = "";

    /// <summary>Its OT type (<see cref="CollabDocumentTypes"/>).</summary>
    public string Type { get; init; } = "";

    /// <summary>The version the content is at (0 before the first op).</summary>
    public long Version { get; init; }

    /// <summary>The content in its type's JSON form: a string for <c>text-unicode</c>, the Quill Delta's ops array for <c>rich-text</c>.</summary>
    public JsonElement Content { get; init; }

    /// <summary>
    /// The response's entity tag (<c>"&lt;version&gt;"</c>): pass it to <see cref="CollabHttpClient.GetDocumentIfChangedAsync"/>
    /// so a poller gets a 304 (no body) while the document is unchanged. Null when the server sent none.
    /// </summary>
    [JsonIgnore]
    public string? ETag { get; init; }

    /// <summary>True for a <c>rich-text</c> document.</summary>
    [JsonIgnore]
    public bool IsRichText => Type == CollabDocumentTypes.RichText;

    /// <summary>
    /// The plain text: a <c>text-unicode</c> document's text, or a <c>rich-text</c> document's text without its embeds
    /// (Quill's <c>getText()</c>, what <see cref="CollabHttpClient.ExportTextAsync"/> returns).
    /// </summary>
    public string GetText() => IsRichText ? GetRichDocument().ToPlainText() : Content.GetString() ?? "";

    /// <summary>The content of a <c>rich-text</c> document; <see cref="InvalidOperationException"/> for another type.</summary>
    public RichDocument GetRichDocument() => IsRichText
        ? RichJson.ParseDocument(Content.GetRawText())
        : throw new InvalidOperationException($"Document '{Id}' is {Type}, not {CollabDocumentTypes.RichText}.");
}

/// <summary>One committed op, as <c>GET /v1/docs/{id}/ops</c> lists it.</summary>
public sealed class ApiOp
{
    /// <summary>The document version after the op.</summary>
    public long Version { get; init; }

    /// <summary>The op as committed (transformed), in its type's JSON form (ot-text-unicode's array, or a Quill Delta).</summary>
    public JsonElement Op { get; init; }

    /// <summary>The authenticated user who made it; null on an anonymous server.</summary>
    public string? Author { get; init; }

    /// <summary>The client id it was submitted under.</summary>
    public string ClientId { get; init; } = "";

    /// <summary>Its client sequence number.</summary>
    public long ClientSeq { get; init; }

    /// <summary>When it was sequenced (the sequencing node's clock).</summary>
    public DateTimeOffset Time { get; init; }

    /// <summary>The op of a <c>text-unicode</c> document.</summary>
    public TextOp ToTextOp() => TextJson.Parse(Op.GetRawText());

    /// <summary>The op of a <c>rich-text</c> document.</summary>
    public RichOp ToRichOp() => RichJson.ParseOp(Op.GetRawText());
}

/// <summary>A page of committed ops: versions <see cref="From"/> + 1 up to at most <see cref="To"/>.</summary>
public sealed class ApiOpsPage
{
    /// <summary>The document id.</summary>
    public string Id { get; init; } = "";

    /// <summary>The version the ops start after.</summary>
    public long From { get; init; }

    /// <summary>The last version asked for (the head when none was).</summary>
    public long To { get; init; }

    /// <summary>The ops, in version order.</summary>
    public IReadOnlyList<ApiOp> Ops { get; init; } = [];

    /// <summary>The <c>from</c> of the next page, or null when this page reached <see cref="To"/>.</summary>
    public long? Next { get; init; }
}

/// <summary>The outcome of a server-side edit (<c>POST /v1/docs/{id}/ops</c>).</summary>
public sealed class ApiEditResult
{
    /// <summary>The document id.</summary>
    public string Id { get; init; } = "";

    /// <summary>The version the op was committed as.</summary>
    public long Version { get; init; }

    /// <summary>True when this idempotency key's edit had been committed before: it was not applied again, and <see cref="Version"/> is the one it got then.</summary>
    public bool Duplicate { get; init; }

    /// <summary>The <c>Idempotency-Key</c> the edit was sent with (the caller's, or the one the SDK made up): resend with it to retry safely.</summary>
    [JsonIgnore]
    public string IdempotencyKey { get; init; } = "";
}

/// <summary>One document of a listing.</summary>
public sealed class ApiDocumentSummary
{
    /// <summary>The document id.</summary>
    public string Id { get; init; } = "";

    /// <summary>Its OT type.</summary>
    public string Type { get; init; } = "";

    /// <summary>Its head version.</summary>
    public long Version { get; init; }

    /// <summary>When it was created.</summary>
    public DateTimeOffset Created { get; init; }
}

/// <summary>A page of the documents the caller may read, in id order.</summary>
public sealed class ApiDocumentList
{
    /// <summary>The documents.</summary>
    public IReadOnlyList<ApiDocumentSummary> Documents { get; init; } = [];

    /// <summary>The <c>after</c> of the next page, or null at the end.</summary>
    public string? Next { get; init; }
}

/// <summary>The problem+json body of an API error (RFC 9457), as far as the SDK reads it.</summary>
internal sealed class ApiProblemBody
{
    public string? Code { get; init; }

    public string? Title { get; init; }

    public string? Detail { get; init; }

    public int? Status { get; init; }

    public bool? Retryable { get; init; }

    public long? EarliestVersion { get; init; }

    public long? Version { get; init; }
}

/// <summary>Request bodies the SDK writes.</summary>
internal sealed record ApiCreateRequest(string Type, JsonElement Content);

internal sealed record ApiEditRequest(long BaseVersion, JsonElement Op);

/// <summary>Source-generated JSON for the API's bodies (no reflection at run time; trimming-safe).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ApiDocument))]
[JsonSerializable(typeof(ApiOp))]
[JsonSerializable(typeof(ApiOpsPage))]
[JsonSerializable(typeof(ApiEditResult))]
[JsonSerializable(typeof(ApiDocumentList))]
[JsonSerializable(typeof(ApiProblemBody))]
[JsonSerializable(typeof(ApiCreateRequest))]
[JsonSerializable(typeof(ApiEditRequest))]
[JsonSerializable(typeof(string))]
internal sealed partial class ApiJson : JsonSerializerContext;
