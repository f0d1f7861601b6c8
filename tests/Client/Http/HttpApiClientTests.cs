using System.Collections.Concurrent;
using System.Net;
using Collab.Engine.RichText;
using Collab.Engine.Text;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Client.Tests.Http;

/// <summary>
/// The SDK's HTTP API client (<see cref="CollabHttpClient"/>) against the whole real server (CollabServerHost on a
/// loopback port, anonymous): reads at the head, a version and a time with ETag/304, ops paged and streamed, export, create,
/// delete, idempotent edits retried after a lost response, and the typed errors. A recording handler under the caller's
/// HttpClient shows what went over the wire.
/// </summary>
public sealed class HttpApiClientTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly CancellationTokenSource _cts = new(Timeout);
    private SecureServer _server = null!;
    private RecordingHandler _wire = null!;
    private HttpClient _http = null!;
    private CollabHttpClient _api = null!;

    private Uri Origin => new($"http://127.0.0.1:{_server.Port}/");

    private CancellationToken Ct => _cts.Token;

    public async Task InitializeAsync()
    {
        _server = await SecureServer.StartAsync(new Dictionary<string, string?>());
        _wire = new RecordingHandler(new SocketsHttpHandler());
        _http = new HttpClient(_wire);
        _api = new CollabHttpClient(_http, Origin, new CollabHttpClientOptions { RetryDelay = TimeSpan.FromMilliseconds(10) });
    }

    public async Task DisposeAsync()
    {
        _api.Dispose();
        _http.Dispose();
        await _server.DisposeAsync();
        _cts.Dispose();
    }

    [Fact]
    public async Task An_unchanged_document_is_a_304_and_a_changed_one_comes_back_with_its_new_etag()
    {
        ApiDocument created = await _api.CreateTextDocumentAsync("poll/a", "hello", Ct);
        Assert.Equal((CollabDocumentTypes.Text, 1L, "\"1\""), (created.Type, created.Version, created.ETag));

        ApiDocument head = await _api.GetDocumentAsync("poll/a", cancellationToken: Ct);
        Assert.Equal(("hello", 1L, "\"1\""), (head.GetText(), head.Version, head.ETag));

        _wire.Clear();
        Assert.Null(await _api.GetDocumentIfChangedAsync("poll/a", head.ETag, cancellationToken: Ct));
        (HttpRequestMessage request, HttpStatusCode status, long? length) = Assert.Single(_wire.Exchanges);
        Assert.Equal(HttpStatusCode.NotModified, status);
        Assert.Equal(0, length ?? 0);
        Assert.Equal("\"1\"", request.Headers.IfNoneMatch.Single().ToString());

        await _api.SubmitTextOpAsync("poll/a", 1, TextOp.Insert(5, "!"), cancellationToken: Ct);
        ApiDocument? changed = await _api.GetDocumentIfChangedAsync("poll/a", head.ETag, cancellationToken: Ct);
        Assert.NotNull(changed);
        Assert.Equal(("hello!", 2L, "\"2\""), (changed.GetText(), changed.Version, changed.ETag));
        Assert.Null(await _api.GetDocumentIfChangedAsync("poll/a", changed.ETag, cancellationToken: Ct));

        // A past version is immutable: its ETag matches for ever.
        ApiDocument first = await _api.GetDocumentAsync("poll/a", DocumentPoint.AtVersion(1), Ct);
        Assert.Equal(("hello", "\"1\""), (first.GetText(), first.ETag));
        Assert.Null(await _api.GetDocumentIfChangedAsync("poll/a", first.ETag, DocumentPoint.AtVersion(1), Ct));
    }

    [Fact]
    public async Task Time_travel_reads_a_version_and_a_time()
    {
        await _api.CreateTextDocumentAsync("travel/a", "one", Ct);
        await Task.Delay(50, Ct);
        DateTimeOffset between = DateTimeOffset.UtcNow;
        await Task.Delay(50, Ct);
        await _api.SubmitTextOpAsync("travel/a", 1, TextOp.Insert(3, " two"), cancellationToken: Ct);

        Assert.Equal("", (await _api.GetDocumentAsync("travel/a", DocumentPoint.AtVersion(0), Ct)).GetText());
        Assert.Equal("one", (await _api.GetDocumentAsync("travel/a", DocumentPoint.AtVersion(1), Ct)).GetText());
        ApiDocument then = await _api.GetDocumentAsync("travel/a", DocumentPoint.AtTime(between), Ct);
        Assert.Equal(("one", 1L), (then.GetText(), then.Version));
        Assert.Equal("one two", await _api.ExportTextAsync("travel/a", cancellationToken: Ct));
        Assert.Equal("one", await _api.ExportTextAsync("travel/a", DocumentPoint.AtTime(between), Ct));
    }

    [Fact]
    public async Task Ops_come_in_pages_and_as_one_ndjson_stream_with_the_same_content()
    {
        await _api.CreateTextDocumentAsync("ops/a", "", Ct);
        for (int i = 0; i < 25; i++)
        {
            await _api.SubmitTextOpAsync("ops/a", i, TextOp.Insert(i, ((char)('a' + i)).ToString()), cancellationToken: Ct);
        }

        var paged = new List<ApiOp>();
        long? from = 0;
        int pages = 0;
        while (from is { } start)
        {
            ApiOpsPage page = await _api.GetOpsAsync("ops/a", start, limit: 10, cancellationToken: Ct);
            paged.AddRange(page.Ops);
            from = page.Next;
            pages++;
        }

        Assert.Equal(3, pages);
        Assert.Equal(Enumerable.Range(1, 25).Select(v => (long)v), paged.Select(op => op.Version));
        Assert.Equal(TextOp.Insert(3, "d"), paged[3].ToTextOp());

        _wire.Clear();
        var streamed = new List<ApiOp>();
        await foreach (ApiOp op in _api.StreamOpsAsync("ops/a", from: 5, to: 20, Ct))
        {
            streamed.Add(op);
        }

        Assert.Equal("application/x-ndjson", _wire.Exchanges.Single().Request.Headers.Accept.First().MediaType);
        Assert.Equal(paged.Skip(5).Take(15).Select(op => (op.Version, op.Op.GetRawText(), op.ClientId, op.ClientSeq, op.Time)),
            streamed.Select(op => (op.Version, op.Op.GetRawText(), op.ClientId, op.ClientSeq, op.Time)));
    }

    [Fact]
    public async Task An_edit_whose_answer_was_lost_is_retried_with_the_same_key_and_applied_once()
    {
        await _api.CreateTextDocumentAsync("retry/a", "abc", Ct);

        // The first POST reaches the server and is committed; then the connection "drops" before the answer arrives.
        _wire.DropNextResponseOf(HttpMethod.Post);
        ApiEditResult result = await _api.SubmitTextOpAsync("retry/a", 1, TextOp.Insert(3, "d"), cancellationToken: Ct);

        Assert.Equal(2, result.Version);
        Assert.True(result.Duplicate);   // the SDK's retry found the edit committed under its key
        string[] keys = [.. _wire.Exchanges.Where(e => e.Request.Method == HttpMethod.Post).Select(e => e.Request.Headers.GetValues("Idempotency-Key").Single())];
        Assert.Equal(2, keys.Length);
        Assert.Equal(result.IdempotencyKey, keys[0]);
        Assert.Equal(keys[0], keys[1]);
        Assert.Equal("abcd", (await _api.GetDocumentAsync("retry/a", cancellationToken: Ct)).GetText());
        Assert.Single((await _api.GetOpsAsync("retry/a", from: 1, cancellationToken: Ct)).Ops);

        // The caller's own retry with the same key: the same version, not applied again.
        ApiEditResult mine = await _api.SubmitTextOpAsync("retry/a", 2, TextOp.Insert(0, ">"), "job-42", Ct);
        ApiEditResult again = await _api.SubmitTextOpAsync("retry/a", 2, TextOp.Insert(0, ">"), "job-42", Ct);
        Assert.Equal((3L, false), (mine.Version, mine.Duplicate));
        Assert.Equal((3L, true, "job-42"), (again.Version, again.Duplicate, again.IdempotencyKey));
        Assert.Equal(">abcd", await _api.ExportTextAsync("retry/a", cancellationToken: Ct));
    }

    [Fact]
    public async Task A_lost_create_is_not_retried_and_a_connection_failure_is_a_connection_exception()
    {
        _wire.DropNextResponseOf(HttpMethod.Put);
        await Assert.ThrowsAsync<CollabConnectionException>(() => _api.CreateTextDocumentAsync("lost/a", "x", Ct));
        Assert.Single(_wire.Exchanges, e => e.Request.Method == HttpMethod.Put);

        using var nowhere = new CollabHttpClient(new Uri("http://127.0.0.1:1/"), new CollabHttpClientOptions { MaxRetries = 2, RetryDelay = TimeSpan.FromMilliseconds(1) });
        CollabConnectionException refused = await Assert.ThrowsAsync<CollabConnectionException>(() => nowhere.GetDocumentAsync("any", cancellationToken: Ct));
        Assert.IsType<HttpRequestException>(refused.InnerException);
    }

    [Fact]
    public async Task Html_export_is_exactly_what_the_export_endpoint_serves()
    {
        var bold = AttributeMap.Of("bold", RichValue.True);
        RichDocument content = RichDocument.FromOp(RichOp.Create(
            RichComponent.Insert("Title", bold),
            RichComponent.Insert(" <script>alert(1)</script> ", AttributeMap.Of("link", RichValue.FromString("javascript:alert(1)"))),
            RichComponent.Insert("\n")));
        ApiDocument created = await _api.CreateRichDocumentAsync("html/a", content, Ct);
        Assert.True(created.IsRichText);
        Assert.Equal(content, created.GetRichDocument());
        ApiEditResult edit = await _api.SubmitRichOpAsync("html/a", created.Version, RichOp.Format(0, 5, AttributeMap.Of("italic", RichValue.True)), cancellationToken: Ct);

        using var plain = new HttpClient();
        foreach ((DocumentPoint at, string query) in new[] { (DocumentPoint.Head, ""), (DocumentPoint.AtVersion(created.Version), $"&version={created.Version}") })
        {
            string served = await plain.GetStringAsync(new Uri(Origin, "v1/docs/html%2Fa/export?format=html" + query), Ct);
            string html = await _api.ExportHtmlAsync("html/a", at, Ct);
            Assert.Equal(served, html);
            Assert.Contains("<strong>", html, StringComparison.Ordinal);
            Assert.DoesNotContain("<script", html, StringComparison.Ordinal);
            Assert.DoesNotContain("javascript:", html, StringComparison.Ordinal);
        }

        Assert.Contains("<em>", await _api.ExportHtmlAsync("html/a", cancellationToken: Ct), StringComparison.Ordinal);
        Assert.DoesNotContain("<em>", await _api.ExportHtmlAsync("html/a", DocumentPoint.AtVersion(created.Version), Ct), StringComparison.Ordinal);
        Assert.Equal("Title <script>alert(1)</script> \n", await _api.ExportTextAsync("html/a", cancellationToken: Ct));
        ApiDocument head = await _api.GetDocumentAsync("html/a", cancellationToken: Ct);
        Assert.Equal(edit.Version, head.Version);
        Assert.Equal("Title <script>alert(1)</script> \n", head.GetText());
        Assert.Equal(RichOp.Format(0, 5, AttributeMap.Of("italic", RichValue.True)), (await _api.GetOpsAsync("html/a", from: created.Version, cancellationToken: Ct)).Ops.Single().ToRichOp());
    }

    [Fact]
    public async Task Errors_are_typed_with_the_apis_codes()
    {
        await _api.CreateTextDocumentAsync("err/a", "abc", Ct);

        CollabDocumentExistsException exists = await Assert.ThrowsAsync<CollabDocumentExistsException>(() => _api.CreateTextDocumentAsync("err/a", "again", Ct));
        Assert.Equal((HttpStatusCode.Conflict, "DOC_EXISTS", "err/a", false), (exists.StatusCode, exists.Code, exists.DocId, exists.Retryable));

        CollabDocumentNotFoundException missing = await Assert.ThrowsAsync<CollabDocumentNotFoundException>(() => _api.GetDocumentAsync("err/none", cancellationToken: Ct));
        Assert.Equal((HttpStatusCode.NotFound, ApiErrorCodes.DocNotFound, CollabErrorCode.Unknown), (missing.StatusCode, missing.Code, missing.ErrorCode));
        await Assert.ThrowsAsync<CollabDocumentNotFoundException>(() => _api.SubmitTextOpAsync("err/none", 0, TextOp.Insert(0, "x"), cancellationToken: Ct));

        CollabApiException future = await Assert.ThrowsAsync<CollabApiException>(() => _api.GetDocumentAsync("err/a", DocumentPoint.AtVersion(9), Ct));
        Assert.Equal((HttpStatusCode.Conflict, "VERSION_FROM_FUTURE", CollabErrorCode.VersionFromFuture, 1L), (future.StatusCode, future.Code, future.ErrorCode, future.Version));

        CollabApiException doesNotFit = await Assert.ThrowsAsync<CollabApiException>(() => _api.SubmitTextOpAsync("err/a", 1, TextOp.Insert(10, "x"), cancellationToken: Ct));
        Assert.Equal((HttpStatusCode.UnprocessableEntity, CollabErrorCode.OpDoesNotFit), (doesNotFit.StatusCode, doesNotFit.ErrorCode));

        CollabApiException html = await Assert.ThrowsAsync<CollabApiException>(() => _api.ExportHtmlAsync("err/a", cancellationToken: Ct));
        Assert.Equal((HttpStatusCode.BadRequest, ApiErrorCodes.UnsupportedFormat), (html.StatusCode, html.Code));
        Assert.Contains("text-unicode", html.Detail, StringComparison.Ordinal);

        CollabApiException invalid = await Assert.ThrowsAsync<CollabApiException>(() => _api.SubmitOpAsync("err/a", 1, System.Text.Json.JsonDocument.Parse("[\"x\", {\"q\": 1}]").RootElement, cancellationToken: Ct));
        Assert.Equal(CollabErrorCode.InvalidOp, invalid.ErrorCode);

        await _api.DeleteDocumentAsync("err/a", Ct);
        CollabDocumentDeletedException deleted = await Assert.ThrowsAsync<CollabDocumentDeletedException>(() => _api.GetDocumentAsync("err/a", cancellationToken: Ct));
        Assert.Equal((HttpStatusCode.Gone, CollabErrorCode.DocDeleted), (deleted.StatusCode, deleted.ErrorCode));
        await Assert.ThrowsAsync<CollabDocumentDeletedException>(() => _api.DeleteDocumentAsync("err/a", Ct));
        await Assert.ThrowsAsync<CollabDocumentExistsException>(() => _api.CreateTextDocumentAsync("err/a", "", Ct));

        // An id that breaks the rule never reaches a URL (where "a/../b" would name another path).
        await Assert.ThrowsAsync<ArgumentException>(() => _api.GetDocumentAsync("a/../b", cancellationToken: Ct));
    }

    [Fact]
    public async Task Listing_pages_by_prefix_and_the_socket_url_is_accepted_as_the_address()
    {
        for (int i = 0; i < 5; i++)
        {
            await _api.CreateTextDocumentAsync($"list/{i}", "", Ct);
        }

        await _api.CreateRichDocumentAsync("other/x", cancellationToken: Ct);
        ApiDocumentList first = await _api.ListDocumentsAsync("list/", limit: 2, cancellationToken: Ct);
        Assert.Equal(["list/0", "list/1"], first.Documents.Select(d => d.Id));
        Assert.Equal("list/1", first.Next);

        using var fromSocketUrl = new CollabHttpClient(_server.WebSocketUri);
        Assert.Equal(Origin, fromSocketUrl.BaseAddress);
        var all = new List<string>();
        await foreach (ApiDocumentSummary document in fromSocketUrl.ListAllDocumentsAsync("list/", Ct))
        {
            all.Add(document.Id);
            Assert.Equal(CollabDocumentTypes.Text, document.Type);
        }

        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"list/{i}"), all);
    }

    [Fact]
    public async Task A_gateways_502_or_503_is_retried_for_reads_and_edits_but_not_for_creates_and_a_long_retry_after_is_not_waited()
    {
        await _api.CreateTextDocumentAsync("gateway/a", "abc", Ct);

        _wire.Clear();
        _wire.AnswerAsAGateway(HttpStatusCode.BadGateway, count: 2);
        Assert.Equal("abc", await _api.ExportTextAsync("gateway/a", cancellationToken: Ct));
        Assert.Equal([HttpStatusCode.BadGateway, HttpStatusCode.BadGateway, HttpStatusCode.OK], _wire.Exchanges.Select(e => e.Status));

        _wire.AnswerAsAGateway(HttpStatusCode.ServiceUnavailable, count: 1, retryAfter: TimeSpan.FromSeconds(1));
        Assert.Equal(2, (await _api.SubmitTextOpAsync("gateway/a", 1, TextOp.Insert(3, "d"), cancellationToken: Ct)).Version);

        // A create is not repeated after a 502: it may have happened behind the gateway.
        _wire.Clear();
        _wire.AnswerAsAGateway(HttpStatusCode.BadGateway, count: 1);
        CollabApiException gateway = await Assert.ThrowsAsync<CollabApiException>(() => _api.CreateTextDocumentAsync("gateway/b", "", Ct));
        Assert.Equal((HttpStatusCode.BadGateway, null, true), (gateway.StatusCode, gateway.Code, gateway.Retryable));
        Assert.Contains("upstream unavailable", gateway.Detail, StringComparison.Ordinal);
        Assert.Single(_wire.Exchanges);

        // More retries than allowed, or a wait beyond MaxRetryDelay: the error, with what the server asked for.
        _wire.AnswerAsAGateway(HttpStatusCode.ServiceUnavailable, count: 1, retryAfter: TimeSpan.FromMinutes(5));
        CollabApiException later = await Assert.ThrowsAsync<CollabApiException>(() => _api.GetDocumentAsync("gateway/a", cancellationToken: Ct));
        Assert.Equal(TimeSpan.FromMinutes(5), later.RetryAfter);
        _wire.AnswerAsAGateway(HttpStatusCode.BadGateway, count: 4);
        await Assert.ThrowsAsync<CollabApiException>(() => _api.GetDocumentAsync("gateway/a", cancellationToken: Ct));
        Assert.Equal("abcd", (await _api.GetDocumentAsync("gateway/a", cancellationToken: Ct)).GetText());
    }

    [Fact]
    public async Task A_live_subscriber_sees_a_server_side_edit()
    {
        await _api.CreateTextDocumentAsync("live/a", "socket", Ct);
        await using CollabClient client = await CollabClient.ConnectAsync(_server.WebSocketUri, new CollabClientOptions(), Ct);
        CollabDocument document = await client.OpenDocumentAsync("live/a", Ct);
        var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        document.Changed += (_, e) => seen.TrySetResult(e.Text);

        await _api.SubmitTextOpAsync("live/a", 1, TextOp.Insert(0, "http+"), cancellationToken: Ct);
        Assert.Equal("http+socket", await seen.Task.WaitAsync(Ct));
    }

    /// <summary>Records each exchange and can lose one response after the server has handled the request (a dropped connection).</summary>
    internal sealed class RecordingHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        private readonly ConcurrentQueue<(HttpRequestMessage Request, HttpStatusCode Status, long? Length)> _exchanges = new();
        private HttpMethod? _drop;
        private (HttpStatusCode Status, TimeSpan? RetryAfter, int Count) _gateway;

        public IReadOnlyList<(HttpRequestMessage Request, HttpStatusCode Status, long? Length)> Exchanges => [.. _exchanges];

        public void Clear() => _exchanges.Clear();

        public void DropNextResponseOf(HttpMethod method) => _drop = method;

        /// <summary>The next <paramref name="count"/> requests are answered by "a proxy" with <paramref name="status"/> and an HTML page, never reaching the server.</summary>
        public void AnswerAsAGateway(HttpStatusCode status, int count, TimeSpan? retryAfter = null) => _gateway = (status, retryAfter, count);

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (_gateway.Count > 0)
            {
                _gateway.Count--;
                var page = new HttpResponseMessage(_gateway.Status) { Content = new StringContent("<html><body>upstream unavailable</body></html>", System.Text.Encoding.UTF8, "text/html") };
                if (_gateway.RetryAfter is { } wait)
                {
                    page.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(wait);
                }

                _exchanges.Enqueue((request, page.StatusCode, null));
                return page;
            }

            HttpResponseMessage response = await base.SendAsync(request, cancellationToken);
            await response.Content.LoadIntoBufferAsync(cancellationToken);
            _exchanges.Enqueue((request, response.StatusCode, response.Content.Headers.ContentLength));
            if (_drop == request.Method)
            {
                _drop = null;
                response.Dispose();
                throw new HttpRequestException("The connection was reset (simulated after the server answered).");
            }

            return response;
        }
    }
}

/// <summary>The API's error names, as the server writes them, map to the SDK's wire codes.</summary>
public sealed class HttpApiErrorCodeTests
{
    [Fact]
    public void Every_wire_code_the_api_writes_maps_to_the_sdks_code_of_the_same_number()
    {
        foreach (Collab.Protocol.V1.ErrorCode wire in Enum.GetValues<Collab.Protocol.V1.ErrorCode>().Where(c => c != Collab.Protocol.V1.ErrorCode.Unspecified))
        {
            string name = Collab.Server.Api.ApiProblem.WireName(wire);
            Assert.Equal((int)wire, (int)ApiErrorCodes.ToWire(name));
        }

        Assert.Equal(CollabErrorCode.Unknown, ApiErrorCodes.ToWire(ApiErrorCodes.DocExists));
        Assert.Equal(CollabErrorCode.Unknown, ApiErrorCodes.ToWire("SOMETHING_NEWER"));
        Assert.Equal(CollabErrorCode.Unknown, ApiErrorCodes.ToWire(null));
        Assert.Equal(CollabErrorCode.Unknown, ApiErrorCodes.ToWire("7"));
    }
}
