using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using AngleSharp.Html.Parser;
using Collab.Engine.RichText;
using Collab.Integration.Tests.Infrastructure;
using Collab.Protocol.V1;

namespace Collab.Integration.Tests.Api;

/// <summary>
/// The /v1 document API for rich-text documents (issue 17, docs/API.md) against the whole server: created with a Quill
/// Delta, read as a Delta at the head and at past versions, edited with Delta ops (deduplicated by Idempotency-Key) beside a
/// live socket subscriber, ops listed as Deltas, exported as plain text and as sanitised HTML.
/// </summary>
public sealed class ApiRichTextTests : IAsyncLifetime
{
    private InProcessServer _server = null!;
    private ApiClient _api = null!;

    public async Task InitializeAsync()
    {
        _server = await InProcessServer.StartAsync();
        _api = new ApiClient(_server.HttpUri);
    }

    public async Task DisposeAsync()
    {
        _api.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task A_rich_document_is_created_read_edited_listed_and_time_travelled_as_deltas()
    {
        const string Doc = "rich/api";
        using HttpResponseMessage created = await _api.Http.PutAsync(ApiClient.Path(Doc), JsonContent.Create(new
        {
            type = "rich-text",
            content = JsonDocument.Parse("""[{"insert":"Hello","attributes":{"bold":true}},{"insert":"\n"}]""").RootElement,
        }));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        JsonElement body = await ApiClient.Json(created);
        Assert.Equal(("rich-text", 1L), (body.GetProperty("type").GetString(), body.GetProperty("version").GetInt64()));
        Assert.Equal("""[{"insert":"Hello","attributes":{"bold":true}},{"insert":"\n"}]""", body.GetProperty("content").GetRawText());

        // A socket subscriber sees the same document (in Snapshot.content) and the API's edits as ops.
        await using RawProtocolClient socket = await RawProtocolClient.ConnectAsync(_server.WebSocketUri);
        await socket.SendAsync(new ClientMessage { RequestId = 1, Subscribe = new Subscribe { DocId = Doc, Snapshot = true, Type = "rich-text" } });
        Snapshot snapshot = (await socket.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot)).Snapshot;
        Assert.Equal((1L, "rich-text"), (snapshot.Version, snapshot.Type));
        Assert.Equal(body.GetProperty("content").GetRawText(), RichJson.Write(RichOpCodec.Decode(snapshot.Content.Span)));

        // An edit as a Delta with an Idempotency-Key; the retry is answered as a duplicate with the same version.
        const string Italic = """[{"retain":5,"attributes":{"italic":true}},{"insert":" world","attributes":{"link":"https://example.com"}}]""";
        using HttpResponseMessage posted = await _api.SubmitAsync(Doc, 1, Italic, idempotencyKey: "k-1");
        Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
        Assert.Equal(2, (await ApiClient.Json(posted)).GetProperty("version").GetInt64());
        using HttpResponseMessage retried = await _api.SubmitAsync(Doc, 1, Italic, idempotencyKey: "k-1");
        JsonElement replay = await ApiClient.Json(retried);
        Assert.Equal((2L, true), (replay.GetProperty("version").GetInt64(), replay.GetProperty("duplicate").GetBoolean()));
        Assert.Equal("true", retried.Headers.GetValues("Idempotent-Replayed").Single());
        SequencedOp seen = (await socket.ReceiveAsync(ServerMessage.BodyOneofCase.Ops)).Ops.Ops_.Single();
        Assert.Equal(2, seen.Version);
        Assert.Equal(Italic, RichJson.Write(RichOpCodec.Decode(seen.Op.Span)));

        // A stale edit (base 1) is transformed past version 2.
        using HttpResponseMessage stale = await _api.SubmitAsync(Doc, 1, """[{"insert":"> "}]""");
        Assert.Equal(3, (await ApiClient.Json(stale)).GetProperty("version").GetInt64());

        const string Head = """[{"insert":"> "},{"insert":"Hello","attributes":{"bold":true,"italic":true}},{"insert":" world","attributes":{"link":"https://example.com"}},{"insert":"\n"}]""";
        JsonElement head = await _api.GetJsonAsync(Doc);
        Assert.Equal((3L, Head), (head.GetProperty("version").GetInt64(), head.GetProperty("content").GetRawText()));
        JsonElement past = await _api.GetJsonAsync(Doc, "?version=1");
        Assert.Equal("""[{"insert":"Hello","attributes":{"bold":true}},{"insert":"\n"}]""", past.GetProperty("content").GetRawText());
        JsonElement atNow = await _api.GetJsonAsync(Doc, "?at=" + Uri.EscapeDataString(DateTimeOffset.UtcNow.AddMinutes(1).ToString("O")));
        Assert.Equal(Head, atNow.GetProperty("content").GetRawText());

        // The ops, as Deltas, in version order.
        using HttpResponseMessage listed = await _api.Http.GetAsync(ApiClient.Path(Doc) + "/ops?from=1");
        JsonElement ops = (await ApiClient.Json(listed)).GetProperty("ops");
        Assert.Equal([Italic, """[{"insert":"> "}]"""], ops.EnumerateArray().Select(o => o.GetProperty("op").GetRawText()));

        // Exports: the plain text (embeds omitted, Quill's getText) and sanitised HTML.
        Assert.Equal("> Hello world\n", await _api.Http.GetStringAsync(ApiClient.Path(Doc) + "/export?format=text"));
        using HttpResponseMessage html = await _api.Http.GetAsync(ApiClient.Path(Doc) + "/export?format=html&version=2");
        Assert.Equal("text/html", html.Content.Headers.ContentType?.MediaType);
        Assert.Contains("default-src 'none'", html.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        Assert.Equal(
            "<p><strong><em>Hello</em></strong><a href=\"https://example.com/\" rel=\"noopener noreferrer nofollow\"> world</a></p>",
            await html.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Rich_input_is_validated_and_html_export_of_crafted_content_stays_inert()
    {
        const string Doc = "rich/xss";
        using HttpResponseMessage created = await _api.Http.PutAsync(ApiClient.Path(Doc), JsonContent.Create(new { type = "rich-text" }));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("[]", (await ApiClient.Json(created)).GetProperty("content").GetRawText());

        // Not a Delta, an unknown embed type, an initial content that is not inserts only: INVALID_OP / BAD_MESSAGE.
        await ApiClient.AssertProblemAsync(await _api.SubmitAsync(Doc, 0, """[{"insert":{"iframe":"https://evil.example"}}]"""), HttpStatusCode.BadRequest, "INVALID_OP");
        await ApiClient.AssertProblemAsync(await _api.SubmitAsync(Doc, 0, """[{"bogus":1}]"""), HttpStatusCode.BadRequest, "INVALID_OP");
        await ApiClient.AssertProblemAsync(await _api.Http.PutAsync(ApiClient.Path("rich/bad"), JsonContent.Create(new
        {
            type = "rich-text",
            content = JsonDocument.Parse("""[{"retain":1,"attributes":{"bold":true}}]""").RootElement,
        })), HttpStatusCode.BadRequest, "INVALID_OP");
        await ApiClient.AssertProblemAsync(await _api.Http.PutAsync(ApiClient.Path("rich/bad2"), JsonContent.Create(new { type = "rich-text", content = "plain" })), HttpStatusCode.BadRequest, "BAD_MESSAGE");

        const string Crafted = """
            [{"insert":"<script>alert(1)</script>","attributes":{"link":"javascript:alert(1)","color":"expression(alert(1))"}},
             {"insert":{"image":"x\" onerror=\"alert(1)"}},{"insert":"\n","attributes":{"align":"center\" onclick=\"alert(1)"}}]
            """;
        using HttpResponseMessage posted = await _api.SubmitAsync(Doc, 0, Crafted);
        Assert.Equal(HttpStatusCode.OK, posted.StatusCode);

        string html = await _api.Http.GetStringAsync(ApiClient.Path(Doc) + "/export?format=html");
        Assert.Equal("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>", html);
        var parsed = new HtmlParser().ParseDocument(html);
        Assert.Equal(["P"], parsed.Body!.QuerySelectorAll("*").Select(e => e.TagName));

        // A text document has no HTML export.
        using HttpResponseMessage text = await _api.CreateAsync("rich/plain", "x");
        await ApiClient.AssertProblemAsync(await _api.Http.GetAsync(ApiClient.Path("rich/plain") + "/export?format=html"), HttpStatusCode.BadRequest, "UNSUPPORTED_FORMAT");
        Assert.Equal("x", await _api.Http.GetStringAsync(ApiClient.Path("rich/plain") + "/export?format=text"));
    }
}
