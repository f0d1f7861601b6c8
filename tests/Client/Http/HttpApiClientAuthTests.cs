using System.Net;
using Collab.Engine.Text;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Client.Tests.Http;

/// <summary>
/// <see cref="CollabHttpClient"/> against the real server in JWT mode: the token provider's bearer token on every
/// request, 401 and 403 as <see cref="CollabAccessDeniedException"/>, and 429's <c>Retry-After</c> waited out (or
/// reported when it may not be).
/// </summary>
public sealed class HttpApiClientAuthTests : IAsyncLifetime
{
    private readonly TokenFactory _tokens = new();
    private readonly CancellationTokenSource _cts = new(TimeSpan.FromSeconds(30));
    private SecureServer _server = null!;

    private Uri Origin => new($"http://127.0.0.1:{_server.Port}/");

    private CancellationToken Ct => _cts.Token;

    public async Task InitializeAsync()
    {
        // One edit per 5 s with a burst of 2 per user: the third edit in a row is over budget, however slow the machine.
        _server = await SecureServer.StartAsync(TokenFactory.Hs256Settings(new()
        {
            ["Limits:UserOpsPerSecond"] = "0.2",
            ["Limits:UserOpsBurst"] = "2",
        }));
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _cts.Dispose();
    }

    private CollabHttpClient Client(Func<string?> token, int maxRetries = 3) => new(Origin, new CollabHttpClientOptions
    {
        AccessTokenProvider = _ => ValueTask.FromResult(token()),
        MaxRetries = maxRetries,
        RetryDelay = TimeSpan.FromMilliseconds(10),
    });

    [Fact]
    public async Task The_providers_token_is_sent_on_every_request_and_refusals_are_typed()
    {
        int calls = 0;
        using CollabHttpClient admin = Client(() =>
        {
            calls++;
            return _tokens.Create(sub: "admin");
        });
        await admin.CreateTextDocumentAsync("team/plan", "plan", Ct);
        await admin.GetDocumentAsync("team/plan", cancellationToken: Ct);
        Assert.Equal(2, calls);

        using CollabHttpClient anonymous = Client(() => null);
        CollabAccessDeniedException missing = await Assert.ThrowsAsync<CollabAccessDeniedException>(() => anonymous.GetDocumentAsync("team/plan", cancellationToken: Ct));
        Assert.True(missing.IsAuthenticationFailure);
        Assert.Equal((HttpStatusCode.Unauthorized, "UNAUTHORIZED", CollabErrorCode.Unauthorized), (missing.StatusCode, missing.Code, missing.ErrorCode));
        Assert.StartsWith("Bearer", missing.Challenge, StringComparison.Ordinal);

        using CollabHttpClient expired = Client(() => _tokens.Create(expires: DateTimeOffset.UtcNow.AddMinutes(-5)));
        CollabAccessDeniedException invalid = await Assert.ThrowsAsync<CollabAccessDeniedException>(() => expired.ExportTextAsync("team/plan", cancellationToken: Ct));
        Assert.Contains("invalid_token", invalid.Challenge, StringComparison.Ordinal);

        using CollabHttpClient reader = Client(() => _tokens.Create(sub: "reader", rights: """{"read":["team/*"]}"""));
        Assert.Equal("plan", await reader.ExportTextAsync("team/plan", cancellationToken: Ct));
        CollabAccessDeniedException forbidden = await Assert.ThrowsAsync<CollabAccessDeniedException>(() => reader.SubmitTextOpAsync("team/plan", 1, TextOp.Insert(4, "!"), cancellationToken: Ct));
        Assert.False(forbidden.IsAuthenticationFailure);
        Assert.Equal((HttpStatusCode.Forbidden, CollabErrorCode.Forbidden, "team/plan"), (forbidden.StatusCode, forbidden.ErrorCode, forbidden.DocId));
    }

    [Fact]
    public async Task A_429_is_waited_out_as_retry_after_says_or_reported_with_it()
    {
        using CollabHttpClient writer = Client(() => _tokens.Create(sub: "writer"));
        await writer.CreateTextDocumentAsync("rate/a", "", Ct);   // takes one edit token (a PUT is a write)

        using CollabHttpClient impatient = Client(() => _tokens.Create(sub: "writer"), maxRetries: 0);
        await impatient.SubmitTextOpAsync("rate/a", 0, TextOp.Insert(0, "a"), cancellationToken: Ct);
        CollabRateLimitedException limited = await Assert.ThrowsAsync<CollabRateLimitedException>(() => impatient.SubmitTextOpAsync("rate/a", 1, TextOp.Insert(1, "b"), cancellationToken: Ct));
        Assert.Equal((HttpStatusCode.TooManyRequests, "RATE_LIMITED", CollabErrorCode.RateLimited, true), (limited.StatusCode, limited.Code, limited.ErrorCode, limited.Retryable));
        Assert.NotNull(limited.RetryAfter);
        Assert.InRange(limited.RetryAfter.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5));

        // With retries the SDK waits as told and the edit goes through, once.
        ApiEditResult edit = await writer.SubmitTextOpAsync("rate/a", 1, TextOp.Insert(1, "b"), cancellationToken: Ct);
        Assert.Equal((2L, false), (edit.Version, edit.Duplicate));
        Assert.Equal("ab", await writer.ExportTextAsync("rate/a", cancellationToken: Ct));
    }

    [Fact]
    public async Task The_token_cookie_is_honoured_from_an_allowed_origin_or_a_same_origin_page_only()
    {
        const string page = "https://app.example";
        await using SecureServer server = await SecureServer.StartAsync(TokenFactory.Hs256Settings(new()
        {
            ["Auth:CookieName"] = "collab_token",
            ["Transport:AllowedOrigins:0"] = page,
        }));
        var origin = new Uri($"http://127.0.0.1:{server.Port}/");
        using (var admin = new CollabHttpClient(origin, new CollabHttpClientOptions { AccessTokenProvider = _ => ValueTask.FromResult<string?>(_tokens.Create()) }))
        {
            await admin.CreateTextDocumentAsync("cookie/a", "from a cookie", Ct);
        }

        // What a browser sends: the HttpOnly cookie, plus Origin (cross-origin, or any POST) or Sec-Fetch-Site (a same-origin GET).
        var owned = new List<HttpClient>();
        CollabHttpClient Browser(params (string Header, string Value)[] headers)
        {
            var cookies = new CookieContainer();
            cookies.Add(origin, new Cookie("collab_token", _tokens.Create()));
            var http = new HttpClient(new SocketsHttpHandler { CookieContainer = cookies });
            foreach ((string header, string value) in headers)
            {
                http.DefaultRequestHeaders.Add(header, value);
            }

            owned.Add(http);
            return new CollabHttpClient(http, origin, new CollabHttpClientOptions { MaxRetries = 0 });
        }

        using CollabHttpClient allowed = Browser(("Origin", page));
        Assert.Equal("from a cookie", await allowed.ExportTextAsync("cookie/a", cancellationToken: Ct));
        Assert.Equal(2, (await allowed.SubmitTextOpAsync("cookie/a", 1, TextOp.Insert(0, ">"), cancellationToken: Ct)).Version);

        using CollabHttpClient sameOrigin = Browser(("Sec-Fetch-Site", "same-origin"));
        Assert.Equal(">from a cookie", await sameOrigin.ExportTextAsync("cookie/a", cancellationToken: Ct));

        // Another site's page: its Origin is not allowed, and without Origin a cross-site request says so in Sec-Fetch-Site.
        using CollabHttpClient foreign = Browser(("Origin", "https://evil.example"));
        Assert.True((await Assert.ThrowsAsync<CollabAccessDeniedException>(() => foreign.ExportTextAsync("cookie/a", cancellationToken: Ct))).IsAuthenticationFailure);
        using CollabHttpClient crossSite = Browser(("Sec-Fetch-Site", "cross-site"));
        await Assert.ThrowsAsync<CollabAccessDeniedException>(() => crossSite.ExportTextAsync("cookie/a", cancellationToken: Ct));
        using CollabHttpClient bare = Browser();
        await Assert.ThrowsAsync<CollabAccessDeniedException>(() => bare.ExportTextAsync("cookie/a", cancellationToken: Ct));
        owned.ForEach(http => http.Dispose());
    }
}
