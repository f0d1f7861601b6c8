using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Server.Tests.Security;

/// <summary>The HTTP API under JWT: the socket's tokens, rights (read for GET, write for PUT/POST/DELETE) and rate budgets.</summary>
public sealed class ApiAuthorizationTests : IAsyncLifetime
{
    private readonly TokenFactory _tokens = new();
    private SecureServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _server = await SecureServer.StartAsync(TokenFactory.Hs256Settings(new()
        {
            ["Limits:UserOpsPerSecond"] = "1",
            ["Limits:UserOpsBurst"] = "3",
        }));
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_server.Port}/") };
        using HttpResponseMessage created = await SendAsync(HttpMethod.Put, "/v1/docs/team%2Fplan", Admin(), JsonContent.Create(new { content = "plan" }));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        using HttpResponseMessage other = await SendAsync(HttpMethod.Put, "/v1/docs/secret%2Fx", Admin(), JsonContent.Create(new { content = "s" }));
        Assert.Equal(HttpStatusCode.Created, other.StatusCode);
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task Without_a_valid_token_every_route_is_401_with_a_bearer_challenge()
    {
        foreach ((HttpMethod method, string path) in new[] { (HttpMethod.Get, "/v1/docs/team%2Fplan"), (HttpMethod.Get, "/v1/docs?prefix=team"), (HttpMethod.Post, "/v1/docs/team%2Fplan/ops"), (HttpMethod.Delete, "/v1/docs/team%2Fplan") })
        {
            using HttpResponseMessage missing = await SendAsync(method, path, token: null);
            JsonElement problem = await ProblemAsync(missing, HttpStatusCode.Unauthorized, "UNAUTHORIZED");
            Assert.StartsWith("Bearer", missing.Headers.WwwAuthenticate.ToString());
            Assert.False(problem.GetProperty("retryable").GetBoolean());
        }

        using HttpResponseMessage expired = await SendAsync(HttpMethod.Get, "/v1/docs/team%2Fplan", _tokens.Create(expires: DateTimeOffset.UtcNow.AddMinutes(-5)));
        await ProblemAsync(expired, HttpStatusCode.Unauthorized, "UNAUTHORIZED");
        Assert.Contains("invalid_token", expired.Headers.WwwAuthenticate.ToString());
    }

    [Fact]
    public async Task Rights_decide_read_and_write_per_document()
    {
        string reader = _tokens.Create(sub: "reader", rights: """{"read":["team/*"]}""");
        using (HttpResponseMessage read = await SendAsync(HttpMethod.Get, "/v1/docs/team%2Fplan", reader))
        {
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        }

        await ProblemAsync(await SendAsync(HttpMethod.Get, "/v1/docs/secret%2Fx", reader), HttpStatusCode.Forbidden, "FORBIDDEN");
        await ProblemAsync(await SendAsync(HttpMethod.Get, "/v1/docs/secret%2Fx/ops", reader), HttpStatusCode.Forbidden, "FORBIDDEN");
        await ProblemAsync(await SendAsync(HttpMethod.Post, "/v1/docs/team%2Fplan/ops", reader, Op(1, "[\"x\"]")), HttpStatusCode.Forbidden, "FORBIDDEN");
        await ProblemAsync(await SendAsync(HttpMethod.Delete, "/v1/docs/team%2Fplan", reader), HttpStatusCode.Forbidden, "FORBIDDEN");
        await ProblemAsync(await SendAsync(HttpMethod.Put, "/v1/docs/team%2Fnew", reader, JsonContent.Create(new { content = "x" })), HttpStatusCode.Forbidden, "FORBIDDEN");

        // The listing holds only what the token may read.
        JsonElement listing = JsonDocument.Parse(await (await SendAsync(HttpMethod.Get, "/v1/docs", reader)).Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(["team/plan"], listing.GetProperty("documents").EnumerateArray().Select(d => d.GetProperty("id").GetString()));

        // A writer's server-side edit records its user as the author.
        string writer = _tokens.Create(sub: "writer", rights: """{"write":["team/*"]}""");
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Post, "/v1/docs/team%2Fplan/ops", writer, Op(1, "[4, \"!\"]"))).StatusCode);
        JsonElement ops = JsonDocument.Parse(await (await SendAsync(HttpMethod.Get, "/v1/docs/team%2Fplan/ops?from=1", reader)).Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("writer", ops.GetProperty("ops")[0].GetProperty("author").GetString());
        string clientId = ops.GetProperty("ops")[0].GetProperty("clientId").GetString()!;
        Assert.Equal('h', clientId[0]); // a server-side edit's own client id, never one a socket Hello can claim (32 characters)
        Assert.NotEqual(32, clientId.Length);
    }

    [Fact]
    public async Task Edits_share_the_users_op_budget_and_get_429_with_retry_after()
    {
        string token = _tokens.Create(sub: "busy", rights: """{"write":["team/*"]}""");
        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? limited = null;
        for (int i = 0; i < 6 && limited is null; i++)
        {
            HttpResponseMessage response = await SendAsync(HttpMethod.Post, "/v1/docs/team%2Fplan/ops", token, Op(1, "[\"x\"]"));
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                limited = response;
            }
        }

        Assert.True(limited is not null, "no 429 after a burst of 6 edits: " + string.Join(", ", statuses));
        JsonElement problem = await ProblemAsync(limited, HttpStatusCode.TooManyRequests, "RATE_LIMITED");
        Assert.True(problem.GetProperty("retryable").GetBoolean());
        Assert.True(limited.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));

        // Reads take from the request budget, not the edit budget.
        string readerToo = _tokens.Create(sub: "busy", rights: """{"read":["team/*"]}""");
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Get, "/v1/docs/team%2Fplan", readerToo)).StatusCode);
    }

    private string Admin() => _tokens.Create(sub: "admin");

    private static StringContent Op(long baseVersion, string op) =>
        new($"{{\"baseVersion\":{baseVersion},\"op\":{op}}}", Encoding.UTF8, "application/json");

    private Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string? token, HttpContent? content = null)
    {
        var request = new HttpRequestMessage(method, path) { Content = content };
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return _http.SendAsync(request);
    }

    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        JsonElement problem = JsonDocument.Parse(body).RootElement.Clone();
        Assert.Equal(code, problem.GetProperty("code").GetString());
        return problem;
    }
}
