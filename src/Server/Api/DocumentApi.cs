using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Collab.Engine.RichText;
using Collab.Engine.Sequencing;
using Collab.Engine.Text;
using Collab.Protocol;
using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Storage;
using Microsoft.Net.Http.Headers;

namespace Collab.Server.Api;

/// <summary>
/// The HTTP API's handlers (docs/API.md). Reads come from the op store (<see cref="HistoryReader"/>); writes go through
/// the same document hub and sequencer as the socket's (create, server-side edit) or close the document there (delete).
/// Caching follows one rule: the head is never cached (<c>no-store</c>, ETag = its version, If-None-Match answered 304),
/// an explicit past version never changes (<c>private, max-age=31536000, immutable</c>).
/// </summary>
internal sealed class DocumentApi
{
    public const string NdjsonType = "application/x-ndjson";

    /// <summary>Cache-Control of a response that names an explicit past version: it never changes. Private: rights are per caller.</summary>
    public const string Immutable = "private, max-age=31536000, immutable";

    private const string NoStore = "no-store";

    /// <summary>Store pages a listing reads at most to fill one page of readable documents (bounds the work of one request).</summary>
    private const int ListScanPages = 8;

    private readonly HistoryReader _reader;
    private readonly ApiCaller _caller;
    private readonly DocumentRegistry _documents;
    private readonly ApiOptions _options;
    private readonly DocumentOptions _documentOptions;
    private readonly TimeProvider _time;

    public DocumentApi(HistoryReader reader, ApiCaller caller, DocumentRegistry documents, ApiOptions options, DocumentOptions documentOptions, TimeProvider time)
    {
        _reader = reader;
        _caller = caller;
        _documents = documents;
        _options = options;
        _documentOptions = documentOptions;
        _time = time;
    }

    private IDocumentHistory Catalog => _reader.Catalog;

    // ------------------------------------------------------------------ GET /v1/docs/{id}

    public async Task<IResult> GetAsync(HttpContext context, string id, long? version, string? at)
    {
        (string docId, DocumentInfo? info, IResult? refusal) = await AuthorizeAndFindAsync(context, id, write: false).ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        ReadTarget target = await ResolveAsync(docId, version, at, context.RequestAborted).ConfigureAwait(false);
        if (target.Problem is not null)
        {
            return target.Problem;
        }

        DocumentKind kind = KindOf(info!);
        (string? content, long readVersion, IResult? problem) = await ReadContentAsync(context, docId, kind, target).ConfigureAwait(false);
        if (problem is not null)
        {
            return problem;
        }

        return content is null
            ? TypedResults.StatusCode(StatusCodes.Status304NotModified)
            : TypedResults.Ok(new DocumentBody(docId, info!.Type, readVersion, ContentJson(kind, content)));
    }

    // ------------------------------------------------------------------ GET /v1/docs/{id}/export

    public async Task<IResult> ExportAsync(HttpContext context, string id, string? format, long? version, string? at)
    {
        (string docId, DocumentInfo? info, IResult? refusal) = await AuthorizeAndFindAsync(context, id, write: false).ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        DocumentKind kind = KindOf(info!);
        switch (format ?? "text")
        {
            case "text":
                break;
            case "html" when kind is RichDocumentKind:
                break;
            case "html":
                // Sanitised HTML comes with the rich-text type; a text-unicode document has no markup to export.
                return ApiProblem.Http(StatusCodes.Status400BadRequest, "UNSUPPORTED_FORMAT",
                    $"format=html exports rich-text documents; document '{docId}' is {info!.Type}: use format=text.");
            default:
                return ApiProblem.Http(StatusCodes.Status400BadRequest, "UNSUPPORTED_FORMAT", $"Unknown export format '{format}'; formats: text, html (rich-text documents).");
        }

        ReadTarget target = await ResolveAsync(docId, version, at, context.RequestAborted).ConfigureAwait(false);
        if (target.Problem is not null)
        {
            return target.Problem;
        }

        (string? content, _, IResult? problem) = await ReadContentAsync(context, docId, kind, target).ConfigureAwait(false);
        if (problem is not null)
        {
            return problem;
        }

        if (content is null)
        {
            return TypedResults.StatusCode(StatusCodes.Status304NotModified);
        }

        if (kind is not RichDocumentKind)
        {
            return TypedResults.Text(content, "text/plain; charset=utf-8", Encoding.UTF8);
        }

        RichDocument document = RichDocument.Parse(content);
        if (format == "html")
        {
            // Generated from an allow-list and escaped (RichHtml); the headers keep a browser from running or sniffing anything
            // even if it were opened directly.
            context.Response.Headers.ContentSecurityPolicy = "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; sandbox";
            context.Response.Headers.XContentTypeOptions = "nosniff";
            return TypedResults.Text(RichHtml.Render(document), "text/html; charset=utf-8", Encoding.UTF8);
        }

        // Quill's getText(): the text without its embeds.
        return TypedResults.Text(document.ToPlainText(), "text/plain; charset=utf-8", Encoding.UTF8);
    }

    // ------------------------------------------------------------------ GET /v1/docs/{id}/ops

    public async Task<IResult> GetOpsAsync(HttpContext context, string id, long? from, long? to, int? limit, string? format)
    {
        (string docId, DocumentInfo? info, IResult? refusal) = await AuthorizeAndFindAsync(context, id, write: false).ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        DocumentKind kind = KindOf(info!);
        HistoryBounds bounds = await Catalog.GetBoundsAsync(docId, context.RequestAborted).ConfigureAwait(false);
        long start = from ?? 0;
        long end = Math.Min(to ?? bounds.Head, bounds.Head);
        if (start < 0 || (to is { } requested && requested < start))
        {
            return ApiProblem.BadRequest("from must be at least 0 and to at least from.");
        }

        if (start < (bounds.FirstOp ?? bounds.Head + 1) - 1 && start < end)
        {
            return ApiProblem.Wire(ErrorCode.VersionTooOld, $"The ops after version {start} of '{docId}' are no longer kept; the log starts after version {(bounds.FirstOp ?? 1) - 1}.",
                new Dictionary<string, object?> { ["earliestVersion"] = (bounds.FirstOp ?? 1) - 1 });
        }

        bool stream = format == "ndjson" || AcceptsOnly(context.Request, NdjsonType);
        context.Response.Headers.CacheControl = NoStore;
        if (stream)
        {
            await StreamOpsAsync(context, docId, kind, start, end).ConfigureAwait(false);
            return TypedResults.Empty;
        }

        int pageSize = Math.Clamp(limit ?? _options.DefaultPageSize, 1, _options.MaxPageSize);
        IReadOnlyList<OpRecord> ops = await _reader.Store.ReadOpsAsync(docId, start, end, pageSize, context.RequestAborted).ConfigureAwait(false);
        var entries = new List<OpEntry>(ops.Count);
        foreach (OpRecord op in ops)
        {
            entries.Add(ToEntry(kind, op));
        }

        long last = ops.Count > 0 ? ops[^1].Version : start;
        return TypedResults.Ok(new OpsPage(docId, start, end, entries, last < end && ops.Count == pageSize ? last : null));
    }

    private async Task StreamOpsAsync(HttpContext context, string docId, DocumentKind kind, long start, long end)
    {
        HttpResponse response = context.Response;
        response.ContentType = NdjsonType;
        await response.StartAsync(context.RequestAborted).ConfigureAwait(false);
        var writer = new Utf8JsonWriter(response.BodyWriter);
        long at = start;
        while (at < end)
        {
            IReadOnlyList<OpRecord> page = await _reader.Store.ReadOpsAsync(docId, at, end, _options.MaxPageSize, context.RequestAborted).ConfigureAwait(false);
            if (page.Count == 0)
            {
                break;
            }

            foreach (OpRecord op in page)
            {
                JsonSerializer.Serialize(writer, ToEntry(kind, op), ApiJsonContext.Default.OpEntry);
                writer.Flush();
                writer.Reset();
                response.BodyWriter.Write("\n"u8);
                at = op.Version;
            }

            // One flush per page: the client sees ops while later pages are still being read.
            await response.BodyWriter.FlushAsync(context.RequestAborted).ConfigureAwait(false);
        }
    }

    // ------------------------------------------------------------------ GET /v1/docs?prefix=

    public async Task<IResult> ListAsync(HttpContext context, string? prefix, string? after, int? limit)
    {
        (SessionPrincipal? principal, IResult? refusal) = await _caller.AuthorizeAsync(context, docId: null, write: false).ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        prefix ??= "";
        if (prefix.Length > DocumentId.MaxLength || (prefix.Length > 0 && !DocumentId.IsValid(prefix + "x") && !DocumentId.IsValid(prefix)))
        {
            return ApiProblem.Wire(ErrorCode.InvalidDocId, "prefix must be the start of a valid document id.");
        }

        int pageSize = Math.Clamp(limit ?? _options.DefaultPageSize, 1, _options.MaxPageSize);
        var readable = new List<DocumentListEntry>(pageSize);
        string? cursor = after;
        bool exhausted = false;
        for (int scanned = 0; scanned < ListScanPages && readable.Count < pageSize; scanned++)
        {
            IReadOnlyList<DocumentSummary> page = await Catalog.ListDocumentsAsync(prefix, cursor, pageSize, context.RequestAborted).ConfigureAwait(false);
            foreach (DocumentSummary document in page)
            {
                cursor = document.Id;
                if (principal!.Rights.CanRead(document.Id))
                {
                    readable.Add(new DocumentListEntry(document.Id, document.Type, document.Version, DateTimeOffset.FromUnixTimeMilliseconds(document.CreatedMs)));
                    if (readable.Count == pageSize)
                    {
                        break;
                    }
                }
            }

            if (page.Count < pageSize)
            {
                exhausted = true;
                break;
            }
        }

        context.Response.Headers.CacheControl = NoStore;
        return TypedResults.Ok(new DocumentList(readable, exhausted ? null : cursor));
    }

    // ------------------------------------------------------------------ PUT /v1/docs/{id}

    public async Task<IResult> CreateAsync(HttpContext context, string id)
    {
        (string docId, IResult? refusal) = await AuthorizeAsync(context, id, write: true).ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        (CreateDocumentRequest? body, IResult? bad) = await ReadBodyAsync(context, ApiJsonContext.Default.CreateDocumentRequest).ConfigureAwait(false);
        if (bad is not null)
        {
            return bad;
        }

        string type = body?.Type ?? DocumentTypes.TextUnicode;
        DocumentKind? kind = _documents.Kinds.Find(type);
        if (kind is null)
        {
            return ApiProblem.Http(StatusCodes.Status422UnprocessableEntity, "UNSUPPORTED_TYPE", $"Unknown document type '{type}'; types: {DocumentTypes.TextUnicode}, {DocumentTypes.RichText}.");
        }

        JsonElement? content = body?.Content is { ValueKind: not JsonValueKind.Null } given ? given : null;
        return kind is RichDocumentKind rich
            ? await CreateRichAsync(context, docId, rich, content).ConfigureAwait(false)
            : await CreateTextAsync(context, docId, content).ConfigureAwait(false);
    }

    private async Task<IResult> CreateTextAsync(HttpContext context, string docId, JsonElement? body)
    {
        if (body is { ValueKind: not JsonValueKind.String })
        {
            return ApiProblem.BadRequest("The content of a text-unicode document is a string.");
        }

        string content = body?.GetString() ?? "";
        TextOp initial = TextOp.Empty;
        if (content.Length > 0)
        {
            try
            {
                initial = TextOp.Insert(0, content);
            }
            catch (Engine.OtException ex)
            {
                return ApiProblem.Wire(ErrorCode.InvalidOp, $"The content is not valid Unicode text: {ex.Message}");
            }

            if (initial.Count > 0 && TextComponent.Insert(content).Length > _documentOptions.MaxDocumentLength)
            {
                return ApiProblem.Wire(ErrorCode.DocTooLarge, $"Documents hold at most {_documentOptions.MaxDocumentLength} code points.");
            }
        }

        return await CreateWithAsync(context, docId, DocumentKinds.Text, initial, initial.IsNoop, content).ConfigureAwait(false);
    }

    private async Task<IResult> CreateRichAsync(HttpContext context, string docId, RichDocumentKind kind, JsonElement? body)
    {
        RichOp initial = RichOp.Empty;
        if (body is { } delta)
        {
            if (delta.ValueKind is not (JsonValueKind.Array or JsonValueKind.Object))
            {
                return ApiProblem.BadRequest("The content of a rich-text document is a Quill Delta: an array of inserts, or {\"ops\": [...]}.");
            }

            try
            {
                initial = RichJson.ParseOp(delta.GetRawText());
                if (!initial.IsDocument)
                {
                    return ApiProblem.Wire(ErrorCode.InvalidOp, "The initial content of a rich-text document holds inserts only (no retain or delete).");
                }

                kind.ValidateLimits(initial);
            }
            catch (Engine.OtException ex)
            {
                return ApiProblem.Wire(ErrorCode.InvalidOp, $"The content is not a valid rich-text document: {ex.Message}");
            }

            if (initial.TargetLength > _documentOptions.MaxDocumentLength)
            {
                return ApiProblem.Wire(ErrorCode.DocTooLarge, $"Documents hold at most {_documentOptions.MaxDocumentLength} units.");
            }
        }

        return await CreateWithAsync(context, docId, kind, initial, initial.IsNoop, RichDocument.FromOp(initial).ToString()).ConfigureAwait(false);
    }

    /// <summary>Creates the catalogue row with the kind's type, then commits the initial content as the first op (if any).</summary>
    private async Task<IResult> CreateWithAsync<TSnapshot, TOp>(HttpContext context, string docId, DocumentKind<TSnapshot, TOp> kind, TOp initial, bool empty, string stored)
        where TSnapshot : notnull
        where TOp : notnull
    {
        if (!await Catalog.CreateDocumentAsync(docId, kind.Name, _time.GetUtcNow().ToUnixTimeMilliseconds(), context.RequestAborted).ConfigureAwait(false))
        {
            DocumentInfo? existing = await Catalog.GetDocumentAsync(docId, context.RequestAborted).ConfigureAwait(false);
            return ApiProblem.Http(StatusCodes.Status409Conflict, "DOC_EXISTS", existing is { IsDeleted: true }
                ? $"Document '{docId}' was deleted; its id can be created again once retention has removed its data."
                : $"Document '{docId}' exists already.");
        }

        long version = 0;
        if (!empty)
        {
            SubmitOutcome outcome = await SubmitAsync(docId, kind, new Submission<TOp>(FreshClientId(), 1, 0, initial, null), context.RequestAborted).ConfigureAwait(false);
            if (outcome.Status is not (SubmitStatus.Acked or SubmitStatus.Duplicate))
            {
                return ApiProblem.Wire(ErrorCodes.FromSubmit(outcome.Status),
                    $"Document '{docId}' was created, but its initial content was not applied ({outcome.Message ?? outcome.Status.ToString()}); POST it as an op on version 0.");
            }

            version = outcome.Version;
        }

        context.Response.Headers.ETag = ETag(version);
        context.Response.Headers.CacheControl = NoStore;
        return TypedResults.Created($"/v1/docs/{Uri.EscapeDataString(docId)}", new DocumentBody(docId, kind.Name, version, ContentJson(kind, stored)));
    }

    // ------------------------------------------------------------------ DELETE /v1/docs/{id}

    public async Task<IResult> DeleteAsync(HttpContext context, string id)
    {
        (string docId, _, IResult? refusal) = await AuthorizeAndFindAsync(context, id, write: true).ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        if (!await Catalog.DeleteDocumentAsync(docId, _time.GetUtcNow().ToUnixTimeMilliseconds(), context.RequestAborted).ConfigureAwait(false))
        {
            return ApiProblem.Deleted(docId); // deleted meanwhile
        }

        // The tombstone is stored: this node's subscribers are told and the document closes; a later load is refused.
        await _documents.CloseDeletedAsync(docId).ConfigureAwait(false);
        return TypedResults.NoContent();
    }

    // ------------------------------------------------------------------ POST /v1/docs/{id}/ops

    public async Task<IResult> SubmitAsync(HttpContext context, string id)
    {
        (string docId, IResult? refusal) = await AuthorizeAsync(context, id, write: true).ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        (SubmitRequest? body, IResult? bad) = await ReadBodyAsync(context, ApiJsonContext.Default.SubmitRequest).ConfigureAwait(false);
        if (bad is not null)
        {
            return bad;
        }

        if (body is null || body.Op.ValueKind is not (JsonValueKind.Array or JsonValueKind.Object) || body.BaseVersion < 0)
        {
            return ApiProblem.BadRequest("The body is {\"baseVersion\": n, \"op\": [...]}, baseVersion at least 0.");
        }

        (SessionPrincipal principal, string clientId, IResult? badKey) = ClientFor(context);
        if (badKey is not null)
        {
            return badKey;
        }

        (DocumentInfo? info, IResult? missing) = await FindAsync(docId, context.RequestAborted).ConfigureAwait(false);
        if (missing is not null)
        {
            return missing;
        }

        SubmitOutcome outcome;
        if (KindOf(info!) is RichDocumentKind rich)
        {
            RichOp op;
            try
            {
                op = RichJson.ParseOp(body.Op.GetRawText());
                rich.ValidateLimits(op);
            }
            catch (Engine.OtException ex)
            {
                return ApiProblem.Wire(ErrorCode.InvalidOp, $"The op is not a valid rich-text op (a Quill Delta): {ex.Message}");
            }

            if (RichOpCodec.GetEncodedLength(op) > _documentOptions.MaxOpBytes)
            {
                return ApiProblem.Wire(ErrorCode.OpTooLarge, $"An op encodes to at most {_documentOptions.MaxOpBytes} bytes.");
            }

            outcome = await SubmitAsync(docId, rich, new Submission<RichOp>(clientId, 1, body.BaseVersion, op, principal.UserId), context.RequestAborted).ConfigureAwait(false);
        }
        else
        {
            TextOp op;
            try
            {
                op = body.Op.Deserialize(ApiJsonContext.Default.JsonOp).Value;
            }
            catch (JsonException ex)
            {
                return ApiProblem.Wire(ErrorCode.InvalidOp, $"The op is not a text-unicode op: {ex.Message}");
            }

            if (TextOpCodec.GetEncodedLength(op) > _documentOptions.MaxOpBytes)
            {
                return ApiProblem.Wire(ErrorCode.OpTooLarge, $"An op encodes to at most {_documentOptions.MaxOpBytes} bytes.");
            }

            outcome = await SubmitAsync(docId, DocumentKinds.Text, new Submission<TextOp>(clientId, 1, body.BaseVersion, op, principal.UserId), context.RequestAborted).ConfigureAwait(false);
        }

        switch (outcome.Status)
        {
            case SubmitStatus.Acked:
                return TypedResults.Ok(new SubmitResponse(docId, outcome.Version, Duplicate: false));
            case SubmitStatus.Duplicate:
                context.Response.Headers["Idempotent-Replayed"] = "true";
                return TypedResults.Ok(new SubmitResponse(docId, outcome.Version, Duplicate: true));
            case SubmitStatus.Unavailable when outcome.Message == DeletedMessage:
                return ApiProblem.Deleted(docId);
            default:
                ErrorCode code = ErrorCodes.FromSubmit(outcome.Status);
                if (ErrorCodes.IsRetryable(code))
                {
                    context.Response.Headers.RetryAfter = "1";
                }

                return ApiProblem.Wire(code, outcome.Message ?? outcome.Status.ToString(), new Dictionary<string, object?> { ["version"] = outcome.Version });
        }
    }

    private const string DeletedMessage = "deleted";

    /// <summary>Runs one submission through the document's hub (sequenced here, or forwarded to its owner in a cluster).</summary>
    private async Task<SubmitOutcome> SubmitAsync<TSnapshot, TOp>(string docId, DocumentKind<TSnapshot, TOp> kind, Submission<TOp> submission, CancellationToken cancellationToken)
        where TSnapshot : notnull
        where TOp : notnull
    {
        DocumentHub hub;
        try
        {
            hub = await _documents.AcquireAsync(docId, cancellationToken, kind).ConfigureAwait(false);
        }
        catch (DocumentDeletedException)
        {
            return SubmitOutcome.Unavailable(DeletedMessage);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            _documents.Log.DocumentLoadFailed(docId, ex);
            return SubmitOutcome.Unavailable($"Document '{docId}' could not be opened right now; retry.");
        }

        try
        {
            return hub is DocumentHub<TSnapshot, TOp> typed
                ? await typed.SubmitOrForwardAsync(submission).ConfigureAwait(false)
                : new SubmitOutcome(SubmitStatus.InvalidOp, 0, $"Document '{docId}' is a {hub.Kind.Name} document, not {kind.Name}.");
        }
        catch (ObjectDisposedException)
        {
            return SubmitOutcome.Unavailable($"Document '{docId}' was closing; retry.");
        }
        finally
        {
            hub.ReleaseRef();
        }
    }

    /// <summary>
    /// The (client id, seq) a server-side edit is deduplicated under: with an <c>Idempotency-Key</c>, a client id derived
    /// from the caller and the key (seq 1), so a retry of the same POST is the same op to the sequencer and is answered with
    /// the version it got the first time; without one, a fresh client id.
    /// </summary>
    private static (SessionPrincipal Principal, string ClientId, IResult? Problem) ClientFor(HttpContext context)
    {
        var principal = (SessionPrincipal)context.Items[typeof(SessionPrincipal)]!;
        string? key = context.Request.Headers["Idempotency-Key"].Count switch
        {
            0 => null,
            1 => context.Request.Headers["Idempotency-Key"][0],
            _ => "",
        };
        if (key is null)
        {
            return (principal, FreshClientId(), null);
        }

        if (key.Length is 0 or > 255 || key.Any(c => c is < ' ' or > '~'))
        {
            return (principal, "", ApiProblem.BadRequest("Idempotency-Key must be one header of 1-255 printable ASCII characters."));
        }

        // Scoped by user so two users' keys never meet. 'k' + 22 characters is never an id the socket's Hello accepts (those
        // are the server-signed 32-character ids of ClientIdIssuer), so no socket client can claim or poison this dedupe state.
        byte[] hash = SHA256.HashData(Encoding.UTF8.GetBytes((principal.UserId ?? "") + "\n" + key));
        return (principal, "k" + System.Buffers.Text.Base64Url.EncodeToString(hash.AsSpan(0, 16)), null);
    }

    /// <summary>A client id for one server-side edit without a key: random, and outside the ids a socket client can hold.</summary>
    private static string FreshClientId() => "h" + System.Buffers.Text.Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(16));

    // ------------------------------------------------------------------ shared steps

    private async ValueTask<(string DocId, IResult? Refusal)> AuthorizeAsync(HttpContext context, string id, bool write)
    {
        // A document id may hold '/': in a path segment it is written %2F, which the server leaves encoded.
        string docId = id.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
        if (!DocumentId.IsValid(docId))
        {
            return (docId, ApiProblem.Wire(ErrorCode.InvalidDocId, "A document id is 1-128 characters of [A-Za-z0-9._:/-], not starting with '/' or '.', without '..'; write '/' as %2F in the path."));
        }

        (SessionPrincipal? principal, IResult? refusal) = await _caller.AuthorizeAsync(context, docId, write).ConfigureAwait(false);
        context.Items[typeof(SessionPrincipal)] = principal;
        return (docId, refusal);
    }

    /// <summary>The prologue of every request on one existing document: the id checked, the caller authorized, the document found (not deleted).</summary>
    private async ValueTask<(string DocId, DocumentInfo? Info, IResult? Problem)> AuthorizeAndFindAsync(HttpContext context, string id, bool write)
    {
        (string docId, IResult? refusal) = await AuthorizeAsync(context, id, write).ConfigureAwait(false);
        if (refusal is not null)
        {
            return (docId, null, refusal);
        }

        (DocumentInfo? info, IResult? missing) = await FindAsync(docId, context.RequestAborted).ConfigureAwait(false);
        return (docId, info, missing);
    }

    private async ValueTask<(DocumentInfo? Info, IResult? Problem)> FindAsync(string docId, CancellationToken cancellationToken)
    {
        DocumentInfo? info = await Catalog.GetDocumentAsync(docId, cancellationToken).ConfigureAwait(false);
        return info switch
        {
            null => (null, ApiProblem.NotFound(docId)),
            { IsDeleted: true } => (info, ApiProblem.Deleted(docId)),
            _ => (info, null),
        };
    }

    /// <summary>Which version a read asks for: the head (neither parameter), an explicit version, or the version at a time.</summary>
    private async ValueTask<ReadTarget> ResolveAsync(string docId, long? version, string? at, CancellationToken cancellationToken)
    {
        if (version is not null && at is not null)
        {
            return ReadTarget.Fail(ApiProblem.BadRequest("Give version or at, not both."));
        }

        HistoryBounds bounds = await Catalog.GetBoundsAsync(docId, cancellationToken).ConfigureAwait(false);
        if (version is { } explicitVersion)
        {
            if (explicitVersion < 0)
            {
                return ReadTarget.Fail(ApiProblem.BadRequest("version must be at least 0."));
            }

            if (explicitVersion > bounds.Head)
            {
                return ReadTarget.Fail(ApiProblem.Wire(ErrorCode.VersionFromFuture, $"Document '{docId}' is at version {bounds.Head}; version {explicitVersion} does not exist yet.",
                    new Dictionary<string, object?> { ["version"] = bounds.Head }));
            }

            return new ReadTarget(explicitVersion, bounds, Past: true, null);
        }

        if (at is not null)
        {
            if (!DateTimeOffset.TryParse(at, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out DateTimeOffset time)
                || !at.Contains('T', StringComparison.OrdinalIgnoreCase))
            {
                return ReadTarget.Fail(ApiProblem.BadRequest($"at must be an RFC 3339 time such as 2026-01-31T12:00:00Z (was '{at}')."));
            }

            // A time not yet in the past can still gain ops: answered like the head, never cached.
            bool past = time < _time.GetUtcNow().AddSeconds(-1);
            long atVersion = await Catalog.VersionAtAsync(docId, time.ToUnixTimeMilliseconds(), cancellationToken).ConfigureAwait(false);
            return new ReadTarget(atVersion, bounds, past, null);
        }

        return new ReadTarget(bounds.Head, bounds, Past: false, null);
    }

    /// <summary>The content at the target with the caching headers set; null content when If-None-Match matched (304).</summary>
    private async ValueTask<(string? Content, long Version, IResult? Problem)> ReadContentAsync(HttpContext context, string docId, DocumentKind kind, ReadTarget target)
    {
        HttpResponse response = context.Response;
        if (target.Past)
        {
            response.Headers.ETag = ETag(target.Version);
            response.Headers.CacheControl = Immutable;
            if (NoneMatch(context.Request, target.Version))
            {
                return (null, target.Version, null);
            }

            PastRead read = await _reader.ReadVersionAsync(docId, kind, target.Version, target.Bounds, context.RequestAborted).ConfigureAwait(false);
            if (read.Content is not null)
            {
                return (read.Content, target.Version, null);
            }

            response.Headers.CacheControl = NoStore;
            response.Headers.Remove(HeaderNames.ETag);
            return (null, target.Version, read.IsTooFar
                ? ApiProblem.Http(StatusCodes.Status422UnprocessableEntity, "VERSION_TOO_OLD",
                    $"Version {target.Version} of '{docId}' is {read.Replayed} ops past the nearest kept snapshot (version {read.NearestSnapshot}); reads replay at most Api:MaxReplayOps={_options.ReplayBound}. Keep every snapshot (Storage:SnapshotsToKeep=0) or raise the bound.")
                : ApiProblem.Wire(ErrorCode.VersionTooOld, $"Version {target.Version} of '{docId}' is no longer kept; the earliest available is {read.EarliestAvailable}.",
                    new Dictionary<string, object?> { ["earliestVersion"] = read.EarliestAvailable }));
        }

        response.Headers.CacheControl = NoStore;
        if (target.Version == target.Bounds.Head && NoneMatch(context.Request, target.Version))
        {
            response.Headers.ETag = ETag(target.Version);
            return (null, target.Version, null);
        }

        (long version, string content) = target.Version == target.Bounds.Head
            ? await _reader.ReadHeadAsync(docId, kind, context.RequestAborted).ConfigureAwait(false)
            : await ReadNotYetPastAsync(docId, kind, target).ConfigureAwait(false);
        response.Headers.ETag = ETag(version);
        return (content, version, null);
    }

    private async ValueTask<(long, string)> ReadNotYetPastAsync(string docId, DocumentKind kind, ReadTarget target)
    {
        PastRead read = await _reader.ReadVersionAsync(docId, kind, target.Version, target.Bounds, CancellationToken.None).ConfigureAwait(false);
        return read.Content is not null ? (target.Version, read.Content) : await _reader.ReadHeadAsync(docId, kind, CancellationToken.None).ConfigureAwait(false);
    }

    private static OpEntry ToEntry(DocumentKind kind, in OpRecord op) =>
        new(op.Version, OpJson(kind, op.Op.Span), op.Author, op.ClientId, op.ClientSeq, DateTimeOffset.FromUnixTimeMilliseconds(op.TimestampMs));

    /// <summary>A stored op in its type's JSON form: ot-text-unicode's array, or a Quill Delta.</summary>
    private static JsonElement OpJson(DocumentKind kind, ReadOnlySpan<byte> op) => kind is RichDocumentKind
        ? ParseJson(RichJson.Write(RichOpCodec.Decode(op)))
        : JsonSerializer.SerializeToElement(new JsonOp(TextOpCodec.Decode(op)), ApiJsonContext.Default.JsonOp);

    /// <summary>A document's content (the type's stored form) as the API shows it: a JSON string of the text, or the Delta's ops array.</summary>
    private static JsonElement ContentJson(DocumentKind kind, string content) =>
        kind is RichDocumentKind ? ParseJson(content) : JsonSerializer.SerializeToElement(content, ApiJsonContext.Default.String);

    private static JsonElement ParseJson(string json)
    {
        using JsonDocument parsed = JsonDocument.Parse(json);
        return parsed.RootElement.Clone();
    }

    /// <summary>The kind of a catalogued document; a type this server does not host reads as text (it cannot be opened for writing).</summary>
    private DocumentKind KindOf(DocumentInfo info) => _documents.Kinds.Find(info.Type) ?? DocumentKinds.Text;

    private static string ETag(long version) => "\"" + version.ToString(CultureInfo.InvariantCulture) + "\"";

    private static bool NoneMatch(HttpRequest request, long version)
    {
        if (request.Headers.IfNoneMatch.Count == 0 || !EntityTagHeaderValue.TryParseList(request.Headers.IfNoneMatch, out IList<EntityTagHeaderValue>? tags))
        {
            return false;
        }

        var current = new EntityTagHeaderValue(ETag(version));
        return tags.Any(tag => tag.Equals(EntityTagHeaderValue.Any) || tag.Compare(current, useStrongComparison: false));
    }

    private static bool AcceptsOnly(HttpRequest request, string mediaType) =>
        request.GetTypedHeaders().Accept is { Count: > 0 } accept && accept.All(a => a.MediaType.Equals(mediaType, StringComparison.OrdinalIgnoreCase));

    private async ValueTask<(T? Body, IResult? Problem)> ReadBodyAsync<T>(HttpContext context, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
        where T : class
    {
        HttpRequest request = context.Request;
        if (request.ContentLength is > 0 && request.ContentLength > _options.MaxRequestBodyBytes)
        {
            return (null, ApiProblem.Http(StatusCodes.Status413PayloadTooLarge, "OP_TOO_LARGE", $"Request bodies are at most {_options.MaxRequestBodyBytes} bytes."));
        }

        if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = _options.MaxRequestBodyBytes;
        }

        if (request.ContentLength == 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count == 0))
        {
            return (null, null);
        }

        if (!request.HasJsonContentType())
        {
            return (null, ApiProblem.Http(StatusCodes.Status415UnsupportedMediaType, "BAD_MESSAGE", "Send the body as application/json."));
        }

        try
        {
            return (await JsonSerializer.DeserializeAsync(request.Body, type, context.RequestAborted).ConfigureAwait(false), null);
        }
        catch (JsonException ex)
        {
            return (null, ApiProblem.BadRequest($"The body is not valid JSON for this request: {ex.Message}"));
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, ApiProblem.Http(StatusCodes.Status413PayloadTooLarge, "OP_TOO_LARGE", $"Request bodies are at most {_options.MaxRequestBodyBytes} bytes."));
        }
    }

    private readonly record struct ReadTarget(long Version, HistoryBounds Bounds, bool Past, IResult? Problem)
    {
        public static ReadTarget Fail(IResult problem) => new(0, default, false, problem);
    }
}
