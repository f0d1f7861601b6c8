using System.Text.Json;
using System.Text.Json.Serialization;
using Collab.Engine.Text;

namespace Collab.Server.Api;

/// <summary>A document at one version.</summary>
/// <param name="Id">The document id.</param>
/// <param name="Type">Its OT type: <c>text-unicode</c> or <c>rich-text</c>.</param>
/// <param name="Version">The version the content is at (0 before the first op).</param>
/// <param name="Content">The content: the text (a JSON string) of a text-unicode document, the Quill Delta ops (a JSON array) of a rich-text one.</param>
public sealed record DocumentBody(string Id, string Type, long Version, JsonElement Content);

/// <summary>Body of <c>PUT /v1/docs/{id}</c>.</summary>
/// <param name="Type">The OT type: <c>text-unicode</c> (the default) or <c>rich-text</c>.</param>
/// <param name="Content">Initial content (empty when omitted): a string for text-unicode, a Quill Delta of inserts (an array of ops, or <c>{"ops": [...]}</c>) for rich-text.</param>
public sealed record CreateDocumentRequest(string? Type, JsonElement? Content);

/// <summary>Body of <c>POST /v1/docs/{id}/ops</c>: one op made against <paramref name="BaseVersion"/>.</summary>
/// <param name="BaseVersion">The version the op was made against; the server transforms it past later ops.</param>
/// <param name="Op">
/// The op in its type's JSON form. text-unicode (ot-text-unicode): <c>[3, "abc", {"d": 2}]</c> retains 3, inserts "abc",
/// deletes 2 code points. rich-text: a Quill Delta, <c>[{"retain": 3}, {"insert": "abc", "attributes": {"bold": true}}]</c>.
/// </param>
public sealed record SubmitRequest(long BaseVersion, JsonElement Op);

/// <summary>The outcome of a server-side edit.</summary>
/// <param name="Id">The document id.</param>
/// <param name="Version">The version the op was committed as.</param>
/// <param name="Duplicate">True when this Idempotency-Key's op had been committed before: not applied again.</param>
public sealed record SubmitResponse(string Id, long Version, bool Duplicate);

/// <summary>One committed op.</summary>
/// <param name="Version">The document version after the op.</param>
/// <param name="Op">The op in its type's JSON form (as <see cref="SubmitRequest.Op"/>), as committed (transformed).</param>
/// <param name="Author">The authenticated user who made it (null on an anonymous server).</param>
/// <param name="ClientId">The client id it was submitted under.</param>
/// <param name="ClientSeq">Its client sequence number.</param>
/// <param name="Time">When it was sequenced (the sequencing node's clock).</param>
public sealed record OpEntry(
    long Version,
    JsonElement Op,
    string? Author,
    string ClientId,
    long ClientSeq,
    DateTimeOffset Time);

/// <summary>A page of committed ops, versions <c>from + 1</c> to at most <c>to</c>.</summary>
/// <param name="Id">The document id.</param>
/// <param name="From">The version the ops start after.</param>
/// <param name="To">The last version asked for.</param>
/// <param name="Ops">The ops, in version order.</param>
/// <param name="Next">The <c>from</c> of the next page, or null when this page reached <c>to</c>.</param>
public sealed record OpsPage(string Id, long From, long To, IReadOnlyList<OpEntry> Ops, long? Next);

/// <summary>One document of a listing.</summary>
/// <param name="Id">The document id.</param>
/// <param name="Type">Its OT type.</param>
/// <param name="Version">Its head version.</param>
/// <param name="Created">When it was created.</param>
public sealed record DocumentListEntry(string Id, string Type, long Version, DateTimeOffset Created);

/// <summary>A page of the documents the caller may read.</summary>
/// <param name="Documents">Documents in id order.</param>
/// <param name="Next">The <c>after</c> of the next page, or null at the end.</param>
public sealed record DocumentList(IReadOnlyList<DocumentListEntry> Documents, string? Next);

/// <summary>A text-unicode op as the API writes and reads it (<see cref="TextOpJson"/>).</summary>
/// <param name="Value">The op.</param>
[JsonConverter(typeof(TextOpJson))]
public readonly record struct JsonOp(TextOp Value);

/// <summary>Source-generated JSON for every API body (no reflection at run time).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(DocumentBody))]
[JsonSerializable(typeof(CreateDocumentRequest))]
[JsonSerializable(typeof(SubmitRequest))]
[JsonSerializable(typeof(SubmitResponse))]
[JsonSerializable(typeof(OpEntry))]
[JsonSerializable(typeof(OpsPage))]
[JsonSerializable(typeof(DocumentList))]
[JsonSerializable(typeof(JsonOp))]
[JsonSerializable(typeof(string))]
internal sealed partial class ApiJsonContext : JsonSerializerContext;
