using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Collab.Engine.RichText;
using Collab.Engine.Text;
using Collab.Protocol;

namespace Collab.Client;

/// <summary>
/// A typed client of the server's HTTP API (<c>/v1</c>, docs/API.md) for what is not a live editor: an export job, an
/// indexer that polls documents, an integration that edits on the server side, a support tool that reads history. Reads
/// at the head, at a version or at a time (with <c>ETag</c>/<c>If-None-Match</c> so an unchanged document costs a 304),
/// ops paged or streamed as NDJSON, text and sanitised HTML export, create, delete, and edits deduplicated by an
/// <c>Idempotency-Key</c> so a retry is applied once. Errors are <see cref="CollabApiException"/>s (typed for 401/403,
/// 404, 409, 410 and 429); network failures <see cref="CollabConnectionException"/>s.
/// </summary>
/// <remarks>
/// Thread-safe: one instance serves any number of concurrent calls (like the <see cref="HttpClient"/> under it). Give it
/// your own <see cref="HttpClient"/> (e.g. from <c>IHttpClientFactory</c>, or over your own handler) or let it make one.
/// </remarks>
public sealed class CollabHttpClient : IDisposable
{
    private const string NdjsonType = "application/x-ndjson";
    private const string IdempotencyKeyHeader = "Idempotency-Key";
    private static readonly MediaTypeWithQualityHeaderValue s_json = new("application/json");
    private static readonly MediaTypeWithQualityHeaderValue s_problem = new("application/problem+json");

    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly Uri _base;
    private readonly CollabHttpClientOptions _options;
    private readonly ReconnectPolicy _backoff;

    /// <summary>A client with its own <see cref="HttpClient"/> (disposed with it) and the default options.</summary>
    /// <param name="serverAddress">As for <see cref="CollabHttpClient(Uri, CollabHttpClientOptions?)"/>.</param>
    public CollabHttpClient(Uri serverAddress)
        : this(serverAddress, options: null)
    {
    }

    /// <summary>A client with its own <see cref="HttpClient"/> (disposed with it).</summary>
    /// <param name="serverAddress">
    /// The server's address: its HTTP origin (<c>https://collab.example.com/</c>) or the socket's URL
    /// (<c>wss://collab.example.com/ws</c>, mapped to the same origin: the API and the socket share one port).
    /// </param>
    /// <param name="options">Settings; null for the defaults.</param>
    public CollabHttpClient(Uri serverAddress, CollabHttpClientOptions? options)
        : this(new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(2) }), serverAddress, options, ownsHttp: true)
    {
    }

    /// <summary>A client over the caller's <see cref="HttpClient"/> (not disposed with it).</summary>
    /// <param name="httpClient">The HttpClient to send with (its handler, timeout and default headers apply).</param>
    /// <param name="serverAddress">As for <see cref="CollabHttpClient(Uri, CollabHttpClientOptions?)"/>; null takes <paramref name="httpClient"/>'s <see cref="HttpClient.BaseAddress"/>.</param>
    /// <param name="options">Settings; null for the defaults.</param>
    public CollabHttpClient(HttpClient httpClient, Uri? serverAddress, CollabHttpClientOptions? options)
        : this(httpClient, serverAddress, options, ownsHttp: false)
    {
    }

    private CollabHttpClient(HttpClient httpClient, Uri? serverAddress, CollabHttpClientOptions? options, bool ownsHttp)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        options ??= new CollabHttpClientOptions();
        options.Validate();
        _http = httpClient;
        _ownsHttp = ownsHttp;
        _options = options;
        _base = ApiBase(serverAddress ?? httpClient.BaseAddress
            ?? throw new ArgumentException("Give the server's address, or an HttpClient with a BaseAddress.", nameof(serverAddress)));
        _backoff = new ReconnectPolicy { MinDelay = options.RetryDelay, MaxDelay = options.MaxRetryDelay };
    }

    /// <summary>The base the API's paths are resolved against (the server's origin, ending in <c>/</c>).</summary>
    public Uri BaseAddress => _base;

    // ------------------------------------------------------------------ reads

    /// <summary>The document at <paramref name="at"/> (the head by default): <c>GET /v1/docs/{id}</c>.</summary>
    /// <exception cref="CollabDocumentNotFoundException">No such document.</exception>
    /// <exception cref="CollabDocumentDeletedException">The document was deleted.</exception>
    /// <exception cref="CollabApiException">
    /// <c>VERSION_FROM_FUTURE</c> (409) for a version above the head, <c>VERSION_TOO_OLD</c> (410, with
    /// <see cref="CollabApiException.EarliestVersion"/>) for one no longer kept, and the other API errors.
    /// </exception>
    public async Task<ApiDocument> GetDocumentAsync(string docId, DocumentPoint at = default, CancellationToken cancellationToken = default) =>
        (await GetDocumentIfChangedAsync(docId, eTag: null, at, cancellationToken).ConfigureAwait(false))!;

    /// <summary>
    /// The document at <paramref name="at"/> unless it still has the entity tag <paramref name="eTag"/> (an earlier
    /// <see cref="ApiDocument.ETag"/>): then null, from a 304 without a body. What a poller calls: an unchanged document
    /// costs one small response.
    /// </summary>
    /// <returns>The document, or null when it is unchanged (304 Not Modified).</returns>
    public async Task<ApiDocument?> GetDocumentIfChangedAsync(string docId, string? eTag, DocumentPoint at = default, CancellationToken cancellationToken = default)
    {
        string path = DocPath(docId) + Query(at.Query);
        using HttpResponseMessage response = await SendAsync(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, path);
            if (eTag is not null)
            {
                request.Headers.TryAddWithoutValidation("If-None-Match", eTag);
            }

            return request;
        }, docId, Retry.Always, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotModified)
        {
            return null;
        }

        ApiDocument document = await ReadJsonAsync(response, ApiJson.Default.ApiDocument, cancellationToken).ConfigureAwait(false);
        return new ApiDocument
        {
            Id = document.Id,
            Type = document.Type,
            Version = document.Version,
            Content = document.Content,
            ETag = response.Headers.ETag?.ToString(),
        };
    }

    /// <summary>
    /// One page of committed ops after version <paramref name="from"/> up to <paramref name="to"/> (the head when null):
    /// <c>GET /v1/docs/{id}/ops</c>. Ask for the next page with <see cref="ApiOpsPage.Next"/> as <paramref name="from"/>.
    /// </summary>
    /// <param name="docId">The document.</param>
    /// <param name="from">The version the ops start after (0: from the first op).</param>
    /// <param name="to">The last version wanted; null for the head.</param>
    /// <param name="limit">Ops per page; null for the server's default (it caps it at <c>Api:MaxPageSize</c>).</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public async Task<ApiOpsPage> GetOpsAsync(string docId, long from = 0, long? to = null, int? limit = null, CancellationToken cancellationToken = default)
    {
        string path = DocPath(docId) + "/ops" + Query(OpsQuery(from, to), limit is { } l ? "limit=" + l.ToString(System.Globalization.CultureInfo.InvariantCulture) : null);
        using HttpResponseMessage response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, path), docId, Retry.Always, cancellationToken).ConfigureAwait(false);
        return await ReadJsonAsync(response, ApiJson.Default.ApiOpsPage, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Every committed op after version <paramref name="from"/> up to <paramref name="to"/> (the head when null), streamed
    /// as NDJSON (<c>Accept: application/x-ndjson</c>): one request, ops yielded as they arrive, for ranges too large for
    /// pages. The range's end is fixed when the request starts; ops committed later are not included.
    /// </summary>
    public async IAsyncEnumerable<ApiOp> StreamOpsAsync(string docId, long from = 0, long? to = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        // format=ndjson as well as the Accept header: the server streams only when every accepted type is NDJSON, and
        // the SDK also accepts problem+json for errors.
        string path = DocPath(docId) + "/ops" + Query(OpsQuery(from, to), "format=ndjson");
        using HttpResponseMessage response = await SendAsync(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(NdjsonType));
            return request;
        }, docId, Retry.Always, cancellationToken, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        if (response.Content.Headers.ContentType?.MediaType != NdjsonType)
        {
            throw new CollabApiException(response.StatusCode, null, $"Expected an NDJSON stream, got {response.Content.Headers.ContentType}.", retryable: false, docId);
        }

        Stream body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var lines = new StreamReader(body, Encoding.UTF8);
        // One op object per line, each parsed on its own: a line is complete JSON, and nothing is held but the current one.
        while (await lines.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (line.Length > 0)
            {
                yield return JsonSerializer.Deserialize(line, ApiJson.Default.ApiOp)
                    ?? throw new CollabApiException(response.StatusCode, null, "The server streamed a null op.", retryable: false, docId);
            }
        }
    }

    /// <summary>The plain text at <paramref name="at"/>: a <c>text-unicode</c> document's text, a <c>rich-text</c> one's without its embeds (<c>GET /v1/docs/{id}/export?format=text</c>).</summary>
    public Task<string> ExportTextAsync(string docId, DocumentPoint at = default, CancellationToken cancellationToken = default) =>
        ExportAsync(docId, "text", at, cancellationToken);

    /// <summary>
    /// A <c>rich-text</c> document at <paramref name="at"/> as sanitised HTML (<c>GET /v1/docs/{id}/export?format=html</c>):
    /// markup generated from an allow-list, text and attributes escaped, links only http/https/mailto (docs/API.md, "HTML
    /// export"). The same bytes the endpoint serves. A <c>text-unicode</c> document is refused with 400
    /// <c>UNSUPPORTED_FORMAT</c> (use <see cref="ExportTextAsync"/>).
    /// </summary>
    public Task<string> ExportHtmlAsync(string docId, DocumentPoint at = default, CancellationToken cancellationToken = default) =>
        ExportAsync(docId, "html", at, cancellationToken);

    /// <summary>
    /// One page of the documents the caller may read whose id starts with <paramref name="prefix"/>, in id order
    /// (<c>GET /v1/docs</c>); the next page starts after <see cref="ApiDocumentList.Next"/>.
    /// </summary>
    public async Task<ApiDocumentList> ListDocumentsAsync(string? prefix = null, string? after = null, int? limit = null, CancellationToken cancellationToken = default)
    {
        string path = "v1/docs" + Query(
            string.IsNullOrEmpty(prefix) ? null : "prefix=" + Uri.EscapeDataString(prefix),
            after is null ? null : "after=" + Uri.EscapeDataString(after),
            limit is { } l ? "limit=" + l.ToString(System.Globalization.CultureInfo.InvariantCulture) : null);
        using HttpResponseMessage response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, path), null, Retry.Always, cancellationToken).ConfigureAwait(false);
        return await ReadJsonAsync(response, ApiJson.Default.ApiDocumentList, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every document the caller may read whose id starts with <paramref name="prefix"/>, page after page.</summary>
    public async IAsyncEnumerable<ApiDocumentSummary> ListAllDocumentsAsync(string? prefix = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string? after = null;
        do
        {
            ApiDocumentList page = await ListDocumentsAsync(prefix, after, limit: null, cancellationToken).ConfigureAwait(false);
            foreach (ApiDocumentSummary document in page.Documents)
            {
                yield return document;
            }

            after = page.Next;
        }
        while (after is not null);
    }

    // ------------------------------------------------------------------ writes

    /// <summary>Creates a <c>text-unicode</c> document holding <paramref name="text"/> (<c>PUT /v1/docs/{id}</c>).</summary>
    /// <exception cref="CollabDocumentExistsException">The id is taken (or deleted and not yet purged).</exception>
    public Task<ApiDocument> CreateTextDocumentAsync(string docId, string text = "", CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        return CreateAsync(docId, CollabDocumentTypes.Text, JsonSerializer.SerializeToElement(text, ApiJson.Default.String), cancellationToken);
    }

    /// <summary>Creates a <c>rich-text</c> document holding <paramref name="content"/> (empty when null; <c>PUT /v1/docs/{id}</c>).</summary>
    /// <exception cref="CollabDocumentExistsException">The id is taken (or deleted and not yet purged).</exception>
    public Task<ApiDocument> CreateRichDocumentAsync(string docId, RichDocument? content = null, CancellationToken cancellationToken = default) =>
        CreateAsync(docId, CollabDocumentTypes.RichText, Parse(RichJson.Write(content ?? RichDocument.Empty)), cancellationToken);

    /// <summary>
    /// Deletes the document (<c>DELETE /v1/docs/{id}</c>): a tombstone; live subscribers get <c>DOC_DELETED</c>, later
    /// reads 410, and the id is free again once retention removed the data.
    /// </summary>
    /// <exception cref="CollabDocumentNotFoundException">No such document.</exception>
    /// <exception cref="CollabDocumentDeletedException">It was deleted already.</exception>
    public async Task DeleteDocumentAsync(string docId, CancellationToken cancellationToken = default)
    {
        string path = DocPath(docId);
        using HttpResponseMessage response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Delete, path), docId, Retry.RateLimitOnly, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A server-side edit of a <c>text-unicode</c> document; see <see cref="SubmitOpAsync"/>.</summary>
    public Task<ApiEditResult> SubmitTextOpAsync(string docId, long baseVersion, TextOp op, string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        SubmitOpAsync(docId, baseVersion, Parse(TextJson.Write(op)), idempotencyKey, cancellationToken);

    /// <summary>A server-side edit of a <c>rich-text</c> document; see <see cref="SubmitOpAsync"/>.</summary>
    public Task<ApiEditResult> SubmitRichOpAsync(string docId, long baseVersion, RichOp op, string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        SubmitOpAsync(docId, baseVersion, Parse(RichJson.Write(op)), idempotencyKey, cancellationToken);

    /// <summary>
    /// A server-side edit (<c>POST /v1/docs/{id}/ops</c>): <paramref name="op"/>, in its type's JSON form, made against
    /// <paramref name="baseVersion"/>; the server transforms it past later ops, commits it durably and returns its version.
    /// It travels with an <c>Idempotency-Key</c> (<paramref name="idempotencyKey"/>, or a random one the SDK makes up), so
    /// the SDK's own retries and yours with the same key are applied once and answered with the first version
    /// (<see cref="ApiEditResult.Duplicate"/>). To retry across processes, pass your own key (1–255 printable ASCII).
    /// </summary>
    /// <exception cref="CollabApiException">
    /// <c>INVALID_OP</c>, <c>OP_DOES_NOT_FIT</c>, <c>VERSION_FROM_FUTURE</c>, <c>VERSION_TOO_OLD</c>, <c>OP_TOO_LARGE</c>,
    /// <c>DOC_TOO_LARGE</c>, and retryable errors left after <see cref="CollabHttpClientOptions.MaxRetries"/>.
    /// </exception>
    public async Task<ApiEditResult> SubmitOpAsync(string docId, long baseVersion, JsonElement op, string? idempotencyKey = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(baseVersion);
        if (idempotencyKey is not null && (idempotencyKey.Length is 0 or > 255 || idempotencyKey.Any(c => c is < ' ' or > '~')))
        {
            throw new ArgumentException("An Idempotency-Key is 1-255 printable ASCII characters.", nameof(idempotencyKey));
        }

        string key = idempotencyKey ?? Guid.NewGuid().ToString("N");
        string path = DocPath(docId) + "/ops";
        byte[] body = JsonSerializer.SerializeToUtf8Bytes(new ApiEditRequest(baseVersion, op), ApiJson.Default.ApiEditRequest);
        using HttpResponseMessage response = await SendAsync(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonBody(body) };
            request.Headers.Add(IdempotencyKeyHeader, key);
            return request;
        }, docId, Retry.Always, cancellationToken).ConfigureAwait(false);
        ApiEditResult result = await ReadJsonAsync(response, ApiJson.Default.ApiEditResult, cancellationToken).ConfigureAwait(false);
        return new ApiEditResult { Id = result.Id, Version = result.Version, Duplicate = result.Duplicate, IdempotencyKey = key };
    }

    /// <summary>Disposes the HttpClient when this client made it.</summary>
    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
        }
    }

    // ------------------------------------------------------------------ internals

    /// <summary>Which failures a request may be retried after.</summary>
    private enum Retry
    {
        /// <summary>Reads, and edits (idempotent by their key): connection failures and every retryable answer.</summary>
        Always,

        /// <summary>Creates and deletes: only 429, which the server answers before doing anything.</summary>
        RateLimitOnly,
    }

    private async Task<ApiDocument> CreateAsync(string docId, string type, JsonElement content, CancellationToken cancellationToken)
    {
        string path = DocPath(docId);
        byte[] body = JsonSerializer.SerializeToUtf8Bytes(new ApiCreateRequest(type, content), ApiJson.Default.ApiCreateRequest);
        using HttpResponseMessage response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Put, path) { Content = JsonBody(body) }, docId, Retry.RateLimitOnly, cancellationToken).ConfigureAwait(false);
        ApiDocument document = await ReadJsonAsync(response, ApiJson.Default.ApiDocument, cancellationToken).ConfigureAwait(false);
        return new ApiDocument { Id = document.Id, Type = document.Type, Version = document.Version, Content = document.Content, ETag = response.Headers.ETag?.ToString() };
    }

    private async Task<string> ExportAsync(string docId, string format, DocumentPoint at, CancellationToken cancellationToken)
    {
        string path = DocPath(docId) + "/export" + Query("format=" + format, at.Query);
        using HttpResponseMessage response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, path), docId, Retry.Always, cancellationToken).ConfigureAwait(false);
        return await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends a request made by <paramref name="create"/> (a fresh message per attempt) with the token and the JSON Accept
    /// header; retries as <paramref name="retry"/> allows; returns a success or 304 response, or throws the typed error.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> create, string? docId, Retry retry, CancellationToken cancellationToken,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        for (int attempt = 1; ; attempt++)
        {
            bool mayRetry = attempt <= _options.MaxRetries;
            using HttpRequestMessage request = create();
            request.RequestUri = new Uri(_base, request.RequestUri!.OriginalString);
            if (request.Headers.Accept.Count == 0)
            {
                request.Headers.Accept.Add(s_json);
            }

            request.Headers.Accept.Add(s_problem);
            if (_options.AccessTokenProvider is { } provider && await provider(cancellationToken).ConfigureAwait(false) is { Length: > 0 } token)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }

            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, completion, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is HttpRequestException || (ex is TaskCanceledException && !cancellationToken.IsCancellationRequested))
            {
                // A connection failure (or HttpClient's own timeout): the request may or may not have reached the server.
                // Only requests that are safe to repeat are retried: reads, and edits under their idempotency key.
                if (retry == Retry.Always && mayRetry)
                {
                    await Task.Delay(_backoff.GetDelay(attempt), cancellationToken).ConfigureAwait(false);
                    continue;
                }

                throw new CollabConnectionException($"{request.Method} {request.RequestUri} failed: {ex.Message}", ex);
            }

            if (response.IsSuccessStatusCode || response.StatusCode == HttpStatusCode.NotModified)
            {
                return response;
            }

            CollabApiException error;
            using (response)
            {
                error = await ErrorOfAsync(response, docId, cancellationToken).ConfigureAwait(false);
            }

            bool retryable = error.Retryable && (retry == Retry.Always || error.StatusCode == HttpStatusCode.TooManyRequests);
            TimeSpan delay = error.RetryAfter ?? _backoff.GetDelay(attempt);
            if (!retryable || !mayRetry || delay > _options.MaxRetryDelay)
            {
                throw error;
            }

            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The typed exception for an error response: its problem body when it has one, else its status.</summary>
    private static async Task<CollabApiException> ErrorOfAsync(HttpResponseMessage response, string? docId, CancellationToken cancellationToken)
    {
        HttpStatusCode status = response.StatusCode;
        ApiProblemBody? problem = null;
        string text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        if (response.Content.Headers.ContentType?.MediaType is "application/problem+json" or "application/json")
        {
            try
            {
                problem = JsonSerializer.Deserialize(text, ApiJson.Default.ApiProblemBody);
            }
            catch (JsonException)
            {
                // Not the API's problem (something in between answered): reported by its status below.
            }
        }

        string? code = problem?.Code;
        string detail = problem?.Detail ?? problem?.Title
            ?? (text.Length is > 0 and <= 512 ? text : response.ReasonPhrase ?? status.ToString());
        TimeSpan? retryAfter = RetryAfterOf(response);

        // Without a problem body (a proxy's or load balancer's page), the gateway statuses are the ones worth retrying.
        bool retryable = problem?.Retryable ?? status is HttpStatusCode.TooManyRequests or HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout;
        return (status, code) switch
        {
            (HttpStatusCode.NotFound, ApiErrorCodes.DocNotFound) => new CollabDocumentNotFoundException(detail, docId),
            (HttpStatusCode.Conflict, ApiErrorCodes.DocExists) => new CollabDocumentExistsException(detail, docId),
            (HttpStatusCode.Gone, "DOC_DELETED") => new CollabDocumentDeletedException(detail, docId),
            (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden, _) => new CollabAccessDeniedException(status, code, detail, docId, response.Headers.WwwAuthenticate.ToString() is { Length: > 0 } challenge ? challenge : null),
            (HttpStatusCode.TooManyRequests, _) => new CollabRateLimitedException(detail, docId, retryAfter),
            _ => new CollabApiException(status, code, detail, retryable, docId, retryAfter, problem?.EarliestVersion, problem?.Version),
        };
    }

    private static TimeSpan? RetryAfterOf(HttpResponseMessage response) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - DateTimeOffset.UtcNow is { Ticks: > 0 } wait ? wait : TimeSpan.Zero,
        _ => null,
    };

    private static async Task<T> ReadJsonAsync<T>(HttpResponseMessage response, JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        Stream body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (body.ConfigureAwait(false))
        {
            return await JsonSerializer.DeserializeAsync(body, type, cancellationToken).ConfigureAwait(false)
                ?? throw new CollabApiException(response.StatusCode, null, "The server answered an empty body.", retryable: false, docId: null);
        }
    }

    private static ByteArrayContent JsonBody(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        return content;
    }

    private static JsonElement Parse(string json)
    {
        using JsonDocument document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    /// <summary>The path of a document: an id's <c>/</c> travels as <c>%2F</c> inside the one path segment (docs/API.md).</summary>
    private static string DocPath(string docId)
    {
        ArgumentNullException.ThrowIfNull(docId);
        if (!DocumentId.IsValid(docId))
        {
            // Checked here too: an id such as "a/../b" must never reach the URL, where it would name another path.
            throw new ArgumentException($"'{docId}' is not a document id ({DocumentId.Rule}).", nameof(docId));
        }

        return "v1/docs/" + Uri.EscapeDataString(docId);
    }

    private static string? OpsQuery(long from, long? to)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(from);
        string? range = from > 0 ? "from=" + from.ToString(System.Globalization.CultureInfo.InvariantCulture) : null;
        return to is { } end ? (range is null ? "" : range + "&") + "to=" + end.ToString(System.Globalization.CultureInfo.InvariantCulture) : range;
    }

    private static string Query(params string?[] parts)
    {
        var query = new StringBuilder();
        foreach (string? part in parts)
        {
            if (!string.IsNullOrEmpty(part))
            {
                query.Append(query.Length == 0 ? '?' : '&').Append(part);
            }
        }

        return query.ToString();
    }

    /// <summary>The API's base: the origin (and path prefix) of an http(s) address, or of a ws(s) socket URL without its last segment.</summary>
    private static Uri ApiBase(Uri address)
    {
        if (!address.IsAbsoluteUri)
        {
            throw new ArgumentException($"'{address}' is not an absolute URL.", nameof(address));
        }

        string scheme = address.Scheme switch
        {
            "http" or "ws" => "http",
            "https" or "wss" => "https",
            _ => throw new ArgumentException($"'{address}' is not an http(s) or ws(s) URL.", nameof(address)),
        };
        string path = address.AbsolutePath;
        if (address.Scheme is "ws" or "wss")
        {
            // The socket's URL names its endpoint (…/ws): the API lives beside it.
            path = path[..(path.TrimEnd('/').LastIndexOf('/') + 1)];
        }

        if (!path.EndsWith('/'))
        {
            path += "/";
        }

        return new UriBuilder(scheme, address.Host, address.Port, path).Uri;
    }
}
