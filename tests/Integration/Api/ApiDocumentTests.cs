using System.Net;
using System.Text;
using System.Text.Json;
using Collab.Engine.Text;
using Collab.Integration.Tests.Infrastructure;
using Collab.Protocol.V1;
using Collab.Server.Storage;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Collab.Integration.Tests.Api;

/// <summary>The /v1 document API against the whole server (embedded store), with live WebSocket subscribers beside it.</summary>
public sealed class ApiDocumentTests : IAsyncLifetime
{
    private InProcessServer _server = null!;
    private ApiClient _api = null!;

    public async Task InitializeAsync()
    {
        _server = await InProcessServer.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Storage:DeletedDocumentRetention"] = "00:00:00",
        });
        _api = new ApiClient(_server.HttpUri);
    }

    public async Task DisposeAsync()
    {
        _api.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task Put_creates_with_type_and_content_and_a_second_put_is_409()
    {
        using HttpResponseMessage created = await _api.CreateAsync("notes/a", "hello");
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("/v1/docs/notes%2Fa", created.Headers.Location?.OriginalString);
        JsonElement body = await ApiClient.Json(created);
        Assert.Equal("notes/a", body.GetProperty("id").GetString());
        Assert.Equal("text-unicode", body.GetProperty("type").GetString());
        Assert.Equal(1, body.GetProperty("version").GetInt64());
        Assert.Equal("hello", body.GetProperty("content").GetString());

        await ApiClient.AssertProblemAsync(await _api.CreateAsync("notes/a", "again"), HttpStatusCode.Conflict, "DOC_EXISTS");
        await ApiClient.AssertProblemAsync(await _api.CreateAsync("notes/b", "x", type: "json0"), HttpStatusCode.UnprocessableEntity, "UNSUPPORTED_TYPE");
        await ApiClient.AssertProblemAsync(await _api.CreateAsync("notes/b", "x", type: "rich-text"), HttpStatusCode.BadRequest, "BAD_MESSAGE");

        using HttpResponseMessage empty = await _api.CreateAsync("notes/empty", "");
        Assert.Equal(0, (await ApiClient.Json(empty)).GetProperty("version").GetInt64());

        // The socket sees the created document like any other.
        await using RawProtocolClient client = await RawProtocolClient.ConnectAsync(_server.WebSocketUri);
        await client.SendAsync(new ClientMessage { RequestId = 2, Subscribe = new Subscribe { DocId = "notes/a", Snapshot = true } });
        Collab.Protocol.V1.Snapshot snapshot = (await client.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot)).Snapshot;
        Assert.Equal("hello", snapshot.Text);
        Assert.Equal(1, snapshot.Version);
    }

    [Fact]
    public async Task The_head_is_never_cached_and_its_etag_is_the_version()
    {
        await CreateAsync("cache/head", "abc");
        using HttpResponseMessage head = await _api.GetAsync("cache/head");
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal("\"1\"", head.Headers.ETag?.ToString());
        Assert.True(head.Headers.CacheControl?.NoStore);

        using HttpResponseMessage notModified = await _api.GetAsync("cache/head", ifNoneMatch: "\"1\"");
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        Assert.Equal("\"1\"", notModified.Headers.ETag?.ToString());
        Assert.True(notModified.Headers.CacheControl?.NoStore);

        Assert.Equal(HttpStatusCode.OK, (await _api.SubmitAsync("cache/head", 1, "[3, \"d\"]")).StatusCode);
        using HttpResponseMessage changed = await _api.GetAsync("cache/head", ifNoneMatch: "\"1\"");
        Assert.Equal(HttpStatusCode.OK, changed.StatusCode);
        Assert.Equal("\"2\"", changed.Headers.ETag?.ToString());
        Assert.Equal("abcd", (await ApiClient.Json(changed)).GetProperty("content").GetString());
        Assert.Equal(HttpStatusCode.NotModified, (await _api.GetAsync("cache/head", ifNoneMatch: "W/\"7\", \"2\"")).StatusCode);
    }

    [Fact]
    public async Task Explicit_versions_and_times_are_immutable_and_time_travel_works()
    {
        await CreateAsync("travel/a", "one");
        await Task.Delay(30);
        DateTimeOffset afterOne = DateTimeOffset.UtcNow;
        await Task.Delay(30);
        Assert.Equal(HttpStatusCode.OK, (await _api.SubmitAsync("travel/a", 1, "[3, \" two\"]")).StatusCode);
        await Task.Delay(30);
        DateTimeOffset afterTwo = DateTimeOffset.UtcNow;
        await Task.Delay(30);
        Assert.Equal(HttpStatusCode.OK, (await _api.SubmitAsync("travel/a", 2, "[{\"d\": 4}]")).StatusCode);

        using HttpResponseMessage v1 = await _api.GetAsync("travel/a", "?version=1");
        Assert.Equal("one", (await ApiClient.Json(v1)).GetProperty("content").GetString());
        Assert.Equal("private, max-age=31536000, immutable", v1.Headers.NonValidated["Cache-Control"].ToString());
        Assert.Equal("\"1\"", v1.Headers.ETag?.ToString());
        Assert.Equal(HttpStatusCode.NotModified, (await _api.GetAsync("travel/a", "?version=1", "\"1\"")).StatusCode);
        Assert.Equal("", (await _api.GetJsonAsync("travel/a", "?version=0")).GetProperty("content").GetString());
        Assert.Equal("two", (await _api.GetJsonAsync("travel/a")).GetProperty("content").GetString());

        // Times at least a second old: no op can still be committed at or before them.
        await Task.Delay(1100);
        JsonElement atOne = await _api.GetJsonAsync("travel/a", "?at=" + Uri.EscapeDataString(afterOne.ToString("O")));
        Assert.Equal(1, atOne.GetProperty("version").GetInt64());
        Assert.Equal("one", atOne.GetProperty("content").GetString());
        using HttpResponseMessage atTwo = await _api.GetAsync("travel/a", "?at=" + Uri.EscapeDataString(afterTwo.ToString("yyyy-MM-ddTHH:mm:ss.fffZ")));
        JsonElement two = await ApiClient.Json(atTwo);
        Assert.Equal("one two", two.GetProperty("content").GetString());
        Assert.Equal("private, max-age=31536000, immutable", atTwo.Headers.NonValidated["Cache-Control"].ToString());
        Assert.Equal("\"2\"", atTwo.Headers.ETag?.ToString());

        // A time not yet past can still gain ops: the head, not cached.
        using HttpResponseMessage future = await _api.GetAsync("travel/a", "?at=" + Uri.EscapeDataString(DateTimeOffset.UtcNow.AddMinutes(5).ToString("O")));
        Assert.Equal(3, (await ApiClient.Json(future)).GetProperty("version").GetInt64());
        Assert.True(future.Headers.CacheControl?.NoStore);

        await ApiClient.AssertProblemAsync(await _api.GetAsync("travel/a", "?version=4"), HttpStatusCode.Conflict, "VERSION_FROM_FUTURE");
        await ApiClient.AssertProblemAsync(await _api.GetAsync("travel/a", "?at=yesterday"), HttpStatusCode.BadRequest, "BAD_MESSAGE");
        await ApiClient.AssertProblemAsync(await _api.GetAsync("travel/a", "?version=1&at=2026-01-01T00:00:00Z"), HttpStatusCode.BadRequest, "BAD_MESSAGE");
    }

    [Fact]
    public async Task Ops_are_paged_and_stream_as_ndjson()
    {
        await CreateAsync("ops/a", "x");
        for (int i = 1; i <= 7; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await _api.SubmitAsync("ops/a", i, $"[{i}, \"{i}\"]")).StatusCode);
        }

        JsonElement page = await GetOpsAsync("ops/a", "?from=2&limit=3");
        Assert.Equal(new long[] { 3, 4, 5 }, page.GetProperty("ops").EnumerateArray().Select(op => op.GetProperty("version").GetInt64()));
        Assert.Equal(5, page.GetProperty("next").GetInt64());
        JsonElement first = page.GetProperty("ops")[0];
        Assert.Equal("[2,\"2\"]", first.GetProperty("op").GetRawText());
        Assert.Equal(1, first.GetProperty("clientSeq").GetInt64());
        Assert.False(string.IsNullOrEmpty(first.GetProperty("clientId").GetString()));
        Assert.True(DateTimeOffset.Parse(first.GetProperty("time").GetString()!, System.Globalization.CultureInfo.InvariantCulture) > DateTimeOffset.UtcNow.AddMinutes(-1));

        JsonElement last = await GetOpsAsync("ops/a", "?from=5&limit=3");
        Assert.Equal(new long[] { 6, 7, 8 }, last.GetProperty("ops").EnumerateArray().Select(op => op.GetProperty("version").GetInt64()));
        Assert.Equal(JsonValueKind.Null, last.GetProperty("next").ValueKind);

        var request = new HttpRequestMessage(HttpMethod.Get, ApiClient.Path("ops/a") + "/ops?from=0&to=6");
        request.Headers.Accept.ParseAdd("application/x-ndjson");
        using HttpResponseMessage stream = await _api.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("application/x-ndjson", stream.Content.Headers.ContentType?.MediaType);
        string[] lines = (await stream.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(Enumerable.Range(1, 6).Select(v => (long)v), lines.Select(line => JsonDocument.Parse(line).RootElement.GetProperty("version").GetInt64()));

        // Replaying the streamed ops rebuilds the document.
        string text = "";
        foreach (string line in (await (await _api.Http.GetAsync(ApiClient.Path("ops/a") + "/ops?format=ndjson")).Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            text = TextType.Apply(text, OpFromJson(JsonDocument.Parse(line).RootElement.GetProperty("op")));
        }

        Assert.Equal((await _api.GetJsonAsync("ops/a")).GetProperty("content").GetString(), text);
    }

    [Fact]
    public async Task Export_is_text_and_html_is_refused_clearly_for_text_documents()
    {
        await CreateAsync("export/a", "plain text\nline two");
        using HttpResponseMessage text = await _api.Http.GetAsync(ApiClient.Path("export/a") + "/export?format=text");
        Assert.Equal("text/plain", text.Content.Headers.ContentType?.MediaType);
        Assert.Equal("plain text\nline two", await text.Content.ReadAsStringAsync());
        Assert.True(text.Headers.CacheControl?.NoStore);
        using HttpResponseMessage old = await _api.Http.GetAsync(ApiClient.Path("export/a") + "/export?version=0");
        Assert.Equal("", await old.Content.ReadAsStringAsync());
        Assert.Equal("private, max-age=31536000, immutable", old.Headers.NonValidated["Cache-Control"].ToString());

        JsonElement html = await ApiClient.AssertProblemAsync(await _api.Http.GetAsync(ApiClient.Path("export/a") + "/export?format=html"), HttpStatusCode.BadRequest, "UNSUPPORTED_FORMAT");
        Assert.Contains("text-unicode", html.GetProperty("detail").GetString());
        await ApiClient.AssertProblemAsync(await _api.Http.GetAsync(ApiClient.Path("export/a") + "/export?format=pdf"), HttpStatusCode.BadRequest, "UNSUPPORTED_FORMAT");
    }

    [Fact]
    public async Task A_server_side_edit_is_transformed_seen_live_and_an_idempotent_retry_is_applied_once()
    {
        await CreateAsync("edit/a", "hello");
        await using RawProtocolClient subscriber = await RawProtocolClient.ConnectAsync(_server.WebSocketUri);
        await subscriber.SendAsync(new ClientMessage { RequestId = 2, Subscribe = new Subscribe { DocId = "edit/a", FromVersion = 1 } });
        await subscriber.ReceiveAsync(ServerMessage.BodyOneofCase.Subscribed);

        // A socket client edits first; the POST made against version 1 is transformed past it.
        await subscriber.SendAsync(new ClientMessage { RequestId = 3, Submit = new Submit { DocId = "edit/a", ClientSeq = 1, BaseVersion = 1, Op = ByteString.CopyFrom(Encode(TextOp.Insert(0, ">> "))) } });
        Assert.Equal(2, (await subscriber.ReceiveAsync(ServerMessage.BodyOneofCase.Ack)).Ack.Version);

        using HttpResponseMessage first = await _api.SubmitAsync("edit/a", 1, "[5, \" world\"]", idempotencyKey: "retry-1");
        JsonElement applied = await ApiClient.Json(first);
        Assert.Equal(3, applied.GetProperty("version").GetInt64());
        Assert.False(applied.GetProperty("duplicate").GetBoolean());

        using HttpResponseMessage retry = await _api.SubmitAsync("edit/a", 1, "[5, \" world\"]", idempotencyKey: "retry-1");
        JsonElement again = await ApiClient.Json(retry);
        Assert.Equal(HttpStatusCode.OK, retry.StatusCode);
        Assert.Equal(3, again.GetProperty("version").GetInt64());
        Assert.True(again.GetProperty("duplicate").GetBoolean());
        Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());

        // The live subscriber got the op once; the document holds it once.
        Ops ops = (await subscriber.ReceiveAsync(ServerMessage.BodyOneofCase.Ops)).Ops;
        Assert.Equal(3, Assert.Single(ops.Ops_).Version);
        Assert.Equal(">> hello world", (await _api.GetJsonAsync("edit/a")).GetProperty("content").GetString());
        Assert.Equal(3, (await _api.GetJsonAsync("edit/a")).GetProperty("version").GetInt64());

        // Another key is another edit.
        using HttpResponseMessage other = await _api.SubmitAsync("edit/a", 3, "[14, \"!\"]", idempotencyKey: "retry-2");
        Assert.Equal(4, (await ApiClient.Json(other)).GetProperty("version").GetInt64());
        await subscriber.SendAsync(new ClientMessage { RequestId = 4, Ping = new Ping { Nonce = 1 } });
        Assert.Equal(4, (await subscriber.ReceiveAsync(ServerMessage.BodyOneofCase.Ops)).Ops.Ops_.Single().Version);
    }

    [Fact]
    public async Task Bad_edits_get_the_wire_protocols_codes()
    {
        await CreateAsync("bad/a", "abc");
        await ApiClient.AssertProblemAsync(await _api.SubmitAsync("bad/a", 1, "[\"x\", {\"q\": 1}]"), HttpStatusCode.BadRequest, "INVALID_OP");
        await ApiClient.AssertProblemAsync(await _api.SubmitAsync("bad/a", 1, "[0, \"x\"]"), HttpStatusCode.BadRequest, "INVALID_OP");
        await ApiClient.AssertProblemAsync(await _api.SubmitAsync("bad/a", 1, "[10, \"x\"]"), HttpStatusCode.UnprocessableEntity, "OP_DOES_NOT_FIT");
        JsonElement future = await ApiClient.AssertProblemAsync(await _api.SubmitAsync("bad/a", 9, "[\"x\"]"), HttpStatusCode.Conflict, "VERSION_FROM_FUTURE");
        Assert.False(future.GetProperty("retryable").GetBoolean());
        await ApiClient.AssertProblemAsync(await _api.Http.PostAsync(ApiClient.Path("bad/a") + "/ops", new StringContent("{not json", Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest, "BAD_MESSAGE");
        await ApiClient.AssertProblemAsync(await _api.Http.PostAsync(ApiClient.Path("bad/a") + "/ops", new StringContent("{\"baseVersion\":1,\"op\":[\"x\"]}", Encoding.UTF8, "text/plain")), HttpStatusCode.UnsupportedMediaType, "BAD_MESSAGE");
        await ApiClient.AssertProblemAsync(await _api.SubmitAsync("missing/doc", 0, "[\"x\"]"), HttpStatusCode.NotFound, "DOC_NOT_FOUND");
        await ApiClient.AssertProblemAsync(await _api.GetAsync("..bad"), HttpStatusCode.BadRequest, "INVALID_DOC_ID");
        await ApiClient.AssertProblemAsync(await _api.GetAsync("missing/doc"), HttpStatusCode.NotFound, "DOC_NOT_FOUND");
        var badKey = new HttpRequestMessage(HttpMethod.Post, ApiClient.Path("bad/a") + "/ops") { Content = new StringContent("{\"baseVersion\":1,\"op\":[\"x\"]}", Encoding.UTF8, "application/json") };
        badKey.Headers.TryAddWithoutValidation("Idempotency-Key", new string('k', 300));
        await ApiClient.AssertProblemAsync(await _api.Http.SendAsync(badKey), HttpStatusCode.BadRequest, "BAD_MESSAGE");
        Assert.Equal("abc", (await _api.GetJsonAsync("bad/a")).GetProperty("content").GetString());
    }

    [Fact]
    public async Task Delete_tombstones_tells_live_subscribers_and_retention_frees_the_id_later()
    {
        await CreateAsync("gone/a", "bye");
        await using RawProtocolClient subscriber = await RawProtocolClient.ConnectAsync(_server.WebSocketUri);
        await subscriber.SendAsync(new ClientMessage { RequestId = 2, Subscribe = new Subscribe { DocId = "gone/a", Snapshot = true } });
        await subscriber.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot);

        Assert.Equal(HttpStatusCode.NoContent, (await _api.Http.DeleteAsync(ApiClient.Path("gone/a"))).StatusCode);
        Error error = (await subscriber.ReceiveAsync(ServerMessage.BodyOneofCase.Error)).Error;
        Assert.Equal(ErrorCode.DocDeleted, error.Code);
        Assert.Equal("gone/a", error.DocId);
        Assert.False(error.Retryable);

        // The connection stays usable; a new subscribe, the API and a re-create are refused while the tombstone stands.
        await subscriber.SendAsync(new ClientMessage { RequestId = 3, Subscribe = new Subscribe { DocId = "gone/a", Snapshot = true } });
        Assert.Equal(ErrorCode.DocDeleted, (await subscriber.ReceiveAsync(ServerMessage.BodyOneofCase.Error)).Error.Code);
        await ApiClient.AssertProblemAsync(await _api.GetAsync("gone/a"), HttpStatusCode.Gone, "DOC_DELETED");
        await ApiClient.AssertProblemAsync(await _api.GetAsync("gone/a", "?version=1"), HttpStatusCode.Gone, "DOC_DELETED");
        await ApiClient.AssertProblemAsync(await _api.SubmitAsync("gone/a", 1, "[\"x\"]"), HttpStatusCode.Gone, "DOC_DELETED");
        await ApiClient.AssertProblemAsync(await _api.Http.DeleteAsync(ApiClient.Path("gone/a")), HttpStatusCode.Gone, "DOC_DELETED");
        await ApiClient.AssertProblemAsync(await _api.CreateAsync("gone/a", "again"), HttpStatusCode.Conflict, "DOC_EXISTS");
        Assert.DoesNotContain("gone/a", await ListIdsAsync("gone/"));

        // Retention (Storage:DeletedDocumentRetention = 0 here) removes the data; the id is free again.
        await RunRetentionAsync();
        await ApiClient.AssertProblemAsync(await _api.GetAsync("gone/a"), HttpStatusCode.NotFound, "DOC_NOT_FOUND");
        using HttpResponseMessage recreated = await _api.CreateAsync("gone/a", "new life");
        Assert.Equal(HttpStatusCode.Created, recreated.StatusCode);
        Assert.Equal(1, (await ApiClient.Json(recreated)).GetProperty("version").GetInt64());
        Assert.Equal("new life", (await _api.GetJsonAsync("gone/a")).GetProperty("content").GetString());
    }

    [Fact]
    public async Task Listing_is_by_prefix_and_paged()
    {
        foreach (string id in new[] { "list/b", "list/a", "list/c", "other/x" })
        {
            await CreateAsync(id, id);
        }

        using HttpResponseMessage first = await _api.Http.GetAsync("/v1/docs?prefix=list/&limit=2");
        JsonElement page = await ApiClient.Json(first);
        Assert.Equal(["list/a", "list/b"], page.GetProperty("documents").EnumerateArray().Select(d => d.GetProperty("id").GetString()));
        Assert.Equal(1, page.GetProperty("documents")[0].GetProperty("version").GetInt64());
        Assert.True(first.Headers.CacheControl?.NoStore);
        string next = page.GetProperty("next").GetString()!;
        JsonElement second = await ApiClient.Json(await _api.Http.GetAsync($"/v1/docs?prefix=list/&limit=2&after={Uri.EscapeDataString(next)}"));
        Assert.Equal(["list/c"], second.GetProperty("documents").EnumerateArray().Select(d => d.GetProperty("id").GetString()));
        Assert.Equal(JsonValueKind.Null, second.GetProperty("next").ValueKind);
    }

    [Fact]
    public async Task Every_route_is_in_the_openapi_document()
    {
        JsonElement document = await ApiClient.Json(await _api.Http.GetAsync("/openapi/v1.json"));
        JsonElement paths = document.GetProperty("paths");
        var routes = _server.Services.GetRequiredService<Microsoft.AspNetCore.Routing.EndpointDataSource>().Endpoints
            .OfType<Microsoft.AspNetCore.Routing.RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText!.StartsWith("/v1", StringComparison.Ordinal))
            .ToList();
        Assert.Equal(7, routes.Count);
        foreach (Microsoft.AspNetCore.Routing.RouteEndpoint route in routes)
        {
            string path = route.RoutePattern.RawText!.TrimEnd('/');
            Assert.True(paths.TryGetProperty(path, out JsonElement operations), $"{path} is missing from /openapi/v1.json");
            foreach (string method in route.Metadata.OfType<Microsoft.AspNetCore.Routing.HttpMethodMetadata>().Single().HttpMethods)
            {
                Assert.True(operations.TryGetProperty(method.ToLowerInvariant(), out _), $"{method} {path} is missing from /openapi/v1.json");
            }
        }
    }

    internal static byte[] Encode(TextOp op)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        TextOpCodec.Encode(op, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    internal static TextOp OpFromJson(JsonElement op)
    {
        var builder = new TextOpBuilder();
        foreach (JsonElement component in op.EnumerateArray())
        {
            switch (component.ValueKind)
            {
                case JsonValueKind.Number:
                    builder.Retain(component.GetInt32());
                    break;
                case JsonValueKind.String:
                    builder.Insert(component.GetString()!);
                    break;
                default:
                    builder.Delete(component.GetProperty("d").GetInt32());
                    break;
            }
        }

        return builder.ToOp();
    }

    private async Task CreateAsync(string docId, string content)
    {
        using HttpResponseMessage response = await _api.CreateAsync(docId, content);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    private async Task<JsonElement> GetOpsAsync(string docId, string query)
    {
        using HttpResponseMessage response = await _api.Http.GetAsync(ApiClient.Path(docId) + "/ops" + query);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.CacheControl?.NoStore);
        return await ApiClient.Json(response);
    }

    private async Task<List<string>> ListIdsAsync(string prefix) =>
        (await ApiClient.Json(await _api.Http.GetAsync("/v1/docs?prefix=" + Uri.EscapeDataString(prefix))))
            .GetProperty("documents").EnumerateArray().Select(d => d.GetProperty("id").GetString()!).ToList();

    private Task RunRetentionAsync() =>
        _server.Services.GetServices<IHostedService>().OfType<RetentionService>().Single().RunOnceAsync(CancellationToken.None);
}
