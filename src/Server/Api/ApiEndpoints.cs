using Microsoft.AspNetCore.Mvc;

namespace Collab.Server.Api;

/// <summary>Maps the <c>/v1</c> routes and their OpenAPI description (served at <c>/openapi/v1.json</c>).</summary>
internal static class ApiEndpoints
{
    public const string OpenApiDocument = "v1";

    public static void Map(IEndpointRouteBuilder endpoints)
    {
        RouteGroupBuilder v1 = endpoints.MapGroup("/v1/docs").WithTags("documents");

        // Nothing under /v1 may be cached unless its handler says so (only explicit past versions are immutable):
        // errors, edits, listings and the head included.
        v1.AddEndpointFilter(async (invocation, next) =>
        {
            HttpResponse response = invocation.HttpContext.Response;
            response.OnStarting(static state =>
            {
                var starting = (HttpResponse)state;
                if (!starting.Headers.ContainsKey(Microsoft.Net.Http.Headers.HeaderNames.CacheControl))
                {
                    starting.Headers.CacheControl = "no-store";
                }

                return Task.CompletedTask;
            }, response);
            return await next(invocation).ConfigureAwait(false);
        });

        v1.MapGet("", ([FromServices] DocumentApi api, HttpContext context, string? prefix, string? after, int? limit) => api.ListAsync(context, prefix, after, limit))
            .WithName("ListDocuments")
            .WithSummary("The documents the caller may read, by id prefix, paged")
            .WithDescription("Documents whose id starts with `prefix`, in id order, that the caller's token may read. Page with `after` = the previous page's `next`. Never cached.")
            .Produces<DocumentList>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status429TooManyRequests);

        v1.MapGet("/{id}", ([FromServices] DocumentApi api, HttpContext context, string id, long? version, string? at) => api.GetAsync(context, id, version, at))
            .WithName("GetDocument")
            .WithSummary("A document at its head, at a version, or as it was at a time")
            .WithDescription("Without `version` or `at`: the head, `Cache-Control: no-store`, `ETag` = its version (If-None-Match answers 304). With `version=N` or `at=<RFC 3339 time>`: that version, immutable (`Cache-Control: private, max-age=31536000, immutable`), rebuilt from the nearest stored snapshot plus at most Api:MaxReplayOps ops; 410 with `earliestVersion` once pruned. Write '/' in the id as %2F.")
            .Produces<DocumentBody>()
            .Produces(StatusCodes.Status304NotModified)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status410Gone)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity);

        v1.MapPut("/{id}", ([FromServices] DocumentApi api, HttpContext context, string id) => api.CreateAsync(context, id))
            .WithName("CreateDocument")
            .WithSummary("Create a document with a type and initial content")
            .WithDescription("409 when the id exists (or was deleted and not yet purged). Needs the write right.")
            .Accepts<CreateDocumentRequest>("application/json")
            .Produces<DocumentBody>(StatusCodes.Status201Created)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity);

        v1.MapDelete("/{id}", ([FromServices] DocumentApi api, HttpContext context, string id) => api.DeleteAsync(context, id))
            .WithName("DeleteDocument")
            .WithSummary("Delete a document (a tombstone)")
            .WithDescription("Subscribers get DOC_DELETED; later reads answer 410 and subscribes DOC_DELETED; retention removes the data after Storage:DeletedDocumentRetention. Needs the write right.")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status410Gone);

        v1.MapGet("/{id}/ops", ([FromServices] DocumentApi api, HttpContext context, string id, long? from, long? to, int? limit, string? format) => api.GetOpsAsync(context, id, from, to, limit, format))
            .WithName("GetOps")
            .WithSummary("Committed ops after version `from` up to `to`")
            .WithDescription("Versions from+1 .. to (default: the head), with author, client id and seq and time; paged by `limit` (`next` = the next page's `from`). With `Accept: application/x-ndjson` (or `format=ndjson`) the whole range streams as one op per line.")
            .Produces<OpsPage>()
            .Produces<OpEntry>(StatusCodes.Status200OK, DocumentApi.NdjsonType)
            .ProducesProblem(StatusCodes.Status410Gone);

        v1.MapPost("/{id}/ops", ([FromServices] DocumentApi api, HttpContext context, string id) => api.SubmitAsync(context, id))
            .WithName("SubmitOp")
            .WithSummary("A server-side edit")
            .WithDescription("`{baseVersion, op}` with the op in ot-text-unicode's JSON form; transformed past later ops, committed, seen by live subscribers like any other. With an `Idempotency-Key` header a retried POST is applied once and answered with the same version (`duplicate: true`, `Idempotent-Replayed: true`). Needs the write right.")
            .Accepts<SubmitRequest>("application/json")
            .Produces<SubmitResponse>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status410Gone)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        v1.MapGet("/{id}/export", ([FromServices] DocumentApi api, HttpContext context, string id, string? format, long? version, string? at) => api.ExportAsync(context, id, format, version, at))
            .WithName("ExportDocument")
            .WithSummary("The document as plain text (format=text); sanitised HTML comes with rich-text documents")
            .Produces<string>(StatusCodes.Status200OK, "text/plain")
            .ProducesProblem(StatusCodes.Status400BadRequest);
    }
}
