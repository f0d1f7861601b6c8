using System.Net;
using Collab.Integration.Tests.Infrastructure;

namespace Collab.Integration.Tests.Web;

/// <summary>The page's static files on the public port, from a fixture wwwroot (the real bundle is built by web/).</summary>
public sealed class WebHostingTests : IAsyncLifetime
{
    private string _root = null!;

    public Task InitializeAsync()
    {
        _root = Directory.CreateTempSubdirectory("collab-wwwroot-").FullName;
        Directory.CreateDirectory(Path.Combine(_root, "assets"));
        File.WriteAllText(Path.Combine(_root, "index.html"), "<!doctype html><title>Collab</title><script type=module src=/assets/app-3F2A9C1B.js></script>");
        File.WriteAllText(Path.Combine(_root, "assets", "app-3F2A9C1B.js"), "console.log('collab');");
        File.WriteAllText(Path.Combine(_root, "assets", "app-3F2A9C1B.js.map"), "{}");
        File.WriteAllText(Path.Combine(_root, "assets", "style-8D7E6F5A.css"), "body{}");
        File.WriteAllText(Path.Combine(_root, "assets", "worker-Q2W3E4R5.mjs"), "export {};");
        File.WriteAllBytes(Path.Combine(_root, "favicon.ico"), [0, 0, 1, 0]);
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_root, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Assets_are_immutable_html_is_no_store_and_everything_has_its_type_and_an_etag()
    {
        await using InProcessServer server = await StartAsync();
        using var http = new HttpClient { BaseAddress = server.HttpUri };

        foreach ((string path, string type) in new[]
        {
            ("/assets/app-3F2A9C1B.js", "text/javascript"),
            ("/assets/style-8D7E6F5A.css", "text/css"),
            ("/assets/worker-Q2W3E4R5.mjs", "text/javascript"),
            ("/assets/app-3F2A9C1B.js.map", "application/json"),
        })
        {
            using HttpResponseMessage asset = await http.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, asset.StatusCode);
            Assert.Equal(type, asset.Content.Headers.ContentType?.MediaType);
            Assert.Equal("public, max-age=31536000, immutable", asset.Headers.NonValidated["Cache-Control"].ToString());
            Assert.Equal("nosniff", asset.Headers.NonValidated["X-Content-Type-Options"].ToString());
            Assert.NotNull(asset.Headers.ETag);

            var again = new HttpRequestMessage(HttpMethod.Get, path);
            again.Headers.IfNoneMatch.Add(asset.Headers.ETag!);
            Assert.Equal(HttpStatusCode.NotModified, (await http.SendAsync(again)).StatusCode);
        }

        // The page itself, at /, at /d/<doc id> (slashes and all) and by name: HTML, never cached.
        foreach (string path in new[] { "/", "/d/notes/welcome", "/d/a", "/index.html" })
        {
            using HttpResponseMessage page = await http.GetAsync(path);
            Assert.True(page.StatusCode == HttpStatusCode.OK, path);
            Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
            Assert.Equal("no-store", page.Headers.NonValidated["Cache-Control"].ToString());
            Assert.NotNull(page.Headers.ETag);
            Assert.Contains("/assets/app-3F2A9C1B.js", await page.Content.ReadAsStringAsync());
        }

        using HttpResponseMessage icon = await http.GetAsync("/favicon.ico");
        Assert.Equal("image/x-icon", icon.Content.Headers.ContentType?.MediaType);
        Assert.Equal("no-cache", icon.Headers.NonValidated["Cache-Control"].ToString());

        // Nothing outside the root, and the page's routes do not shadow the API, the probes or the socket.
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/assets/nope-12345678.js")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/..%2f..%2fetc%2fpasswd")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/v1/docs/nope")).StatusCode);
        Assert.Equal(HttpStatusCode.UpgradeRequired, (await http.GetAsync("/ws")).StatusCode);
    }

    [Fact]
    public async Task The_page_is_on_by_default_when_anonymous_and_off_under_jwt_unless_enabled()
    {
        await using (InProcessServer anonymous = await StartAsync())
        {
            Assert.Equal(HttpStatusCode.OK, (await Get(anonymous, "/")).StatusCode);
        }

        var jwt = new Dictionary<string, string?>
        {
            ["Auth:Mode"] = "Jwt",
            ["Auth:Issuers:0"] = "https://idp.test/",
            ["Auth:Audiences:0"] = "collab-test",
            ["Auth:SigningKey"] = "a-test-secret-that-is-long-enough-for-hs256!",
        };
        await using (InProcessServer secured = await StartAsync(jwt))
        {
            Assert.Equal(HttpStatusCode.NotFound, (await Get(secured, "/")).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await Get(secured, "/assets/app-3F2A9C1B.js")).StatusCode);
        }

        jwt["Web:Enabled"] = "true";
        await using (InProcessServer enabled = await StartAsync(jwt))
        {
            Assert.Equal(HttpStatusCode.OK, (await Get(enabled, "/d/x")).StatusCode);
        }

        await using (InProcessServer off = await StartAsync(new Dictionary<string, string?> { ["Web:Enabled"] = "false" }))
        {
            Assert.Equal(HttpStatusCode.NotFound, (await Get(off, "/")).StatusCode);
        }
    }

    [Fact]
    public async Task A_missing_build_says_so_instead_of_an_empty_page()
    {
        await using InProcessServer server = await InProcessServer.StartAsync(settings: new Dictionary<string, string?> { ["Web:RootPath"] = Path.Combine(_root, "missing") });
        using HttpResponseMessage page = await Get(server, "/");
        Assert.Equal(HttpStatusCode.NotFound, page.StatusCode);
        Assert.Contains("not built", await page.Content.ReadAsStringAsync());
    }

    private Task<InProcessServer> StartAsync(Dictionary<string, string?>? settings = null)
    {
        var all = new Dictionary<string, string?>(settings ?? []) { ["Web:RootPath"] = _root };
        return InProcessServer.StartAsync(settings: all);
    }

    private static async Task<HttpResponseMessage> Get(InProcessServer server, string path)
    {
        using var http = new HttpClient { BaseAddress = server.HttpUri };
        return await http.GetAsync(path);
    }
}
