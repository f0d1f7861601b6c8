using System.Net;
using Collab.Server.Security;
using Collab.Server.Tests.Security.Infrastructure;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using Microsoft.Extensions.Options;

namespace Collab.Server.Tests.Security;

/// <summary>
/// The access token in an HttpOnly cookie (Auth:CookieName), over real sockets against the whole server: accepted from
/// the application's own origins, refused from any other origin even with a valid cookie (cross-site WebSocket
/// hijacking), and never a substitute for a missing token.
/// </summary>
public sealed class CookieAuthTests : IAsyncLifetime
{
    private const string AppOrigin = "https://app.example";
    private const string CookieName = "collab_at";
    private readonly TokenFactory _tokens = new();
    private SecureServer _server = null!;

    public async Task InitializeAsync() => _server = await SecureServer.StartAsync(TokenFactory.Hs256Settings(new()
    {
        ["Auth:CookieName"] = CookieName,
        ["Transport:AllowedOrigins:0"] = AppOrigin,
    }));

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task AForeignOriginWithAValidCookieIs403()
    {
        RawHttpResponse response = await UpgradeAsync($"Origin: https://evil.example\r\nCookie: {CookieName}={_tokens.Create()}\r\n");
        Assert.Equal(403, response.StatusCode);
        Assert.DoesNotContain("Sec-WebSocket-Accept", response.Head, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnAllowedOriginWithTheCookieConnects()
    {
        string token = _tokens.Create(sub: "cookie-user");
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(_server.Port,
            extraHeaders: $"Origin: {AppOrigin}\r\nCookie: theme=dark; {CookieName}={token}; other=\"x\"\r\nSec-WebSocket-Protocol: collab.v1\r\n");
        Assert.Contains("101", client.HandshakeResponse.Split("\r\n")[0], StringComparison.Ordinal);
        Assert.NotEmpty(await HelloAsync(client));
    }

    [Fact]
    public async Task NoCookieIs401()
    {
        RawHttpResponse response = await UpgradeAsync($"Origin: {AppOrigin}\r\nCookie: theme=dark\r\n");
        Assert.Equal(401, response.StatusCode);
        Assert.Contains($"the {CookieName} cookie from an allowed origin", response.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheCookieIsIgnoredWithoutAnOrigin()
    {
        // Not a browser, so not the application's page: ambient credentials do not count.
        RawHttpResponse response = await UpgradeAsync($"Cookie: {CookieName}={_tokens.Create()}\r\n");
        Assert.Equal(401, response.StatusCode);
    }

    [Fact]
    public async Task AnInvalidTokenInTheCookieIs401()
    {
        RawHttpResponse response = await UpgradeAsync($"Origin: {AppOrigin}\r\nCookie: {CookieName}={_tokens.Create(expires: DateTimeOffset.UtcNow.AddMinutes(-5))}\r\n");
        Assert.Equal(401, response.StatusCode);
        Assert.Contains("error=\"invalid_token\"", response.Head, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnExplicitTokenWinsOverTheCookie()
    {
        // The cookie holds a token without rights (403 if used); the subprotocol's valid token is used instead.
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(_server.Port,
            extraHeaders: $"Origin: {AppOrigin}\r\nCookie: {CookieName}={_tokens.Create(rights: null)}\r\nSec-WebSocket-Protocol: collab.v1, bearer.{_tokens.Create()}\r\n");
        Assert.NotEmpty(await HelloAsync(client));
    }

    private Task<RawHttpResponse> UpgradeAsync(string headers) => HandshakeAuthTests.UpgradeAsync(_server.Port, headers);

    private static Task<string> HelloAsync(RawWebSocketClient client) => HandshakeAuthTests.HelloAsync(client);
}

/// <summary>Cookie parsing, precedence and configuration rules that need no server.</summary>
public sealed class CookieAuthUnitTests
{
    private static HandshakeRequest Request(string? cookie, bool listed, string? authorization = null) => new()
    {
        Path = "/ws",
        Query = "",
        Authorization = authorization,
        Cookie = cookie,
        OriginAllowListed = listed,
        RemoteEndPoint = new IPEndPoint(IPAddress.Loopback, 1),
    };

    [Fact]
    public void TheCookieComesLastAndOnlyFromAnAllowListedOrigin()
    {
        Assert.Equal(("c", TokenSource.Cookie), HandshakeAuthenticator.FindToken(Request("a=1; tok=c", listed: true), allowQuery: true, "tok"));
        Assert.Equal((null, TokenSource.None), HandshakeAuthenticator.FindToken(Request("tok=c", listed: false), allowQuery: true, "tok"));
        Assert.Equal((null, TokenSource.None), HandshakeAuthenticator.FindToken(Request("tok=c", listed: true), allowQuery: true, cookieName: null));
        Assert.Equal(("h", TokenSource.AuthorizationHeader), HandshakeAuthenticator.FindToken(Request("tok=c", listed: true, "Bearer h"), allowQuery: true, "tok"));
    }

    [Theory]
    [InlineData("tok=abc.def-ghi_j", "abc.def-ghi_j")]
    [InlineData("x=1;tok=\"quoted\"", "quoted")]
    [InlineData("tok=first; tok=second", "first")]
    [InlineData("TOK=upper; other=1", null)]
    [InlineData("tok=", null)]
    [InlineData("not a cookie header", null)]
    public void CookiesAreParsedByTheRfc6265Rules(string header, string? expected)
    {
        Assert.Equal(expected, HandshakeAuthenticator.FindCookie(header, "tok"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("bad name")]
    [InlineData("semi;colon")]
    [InlineData("eq=uals")]
    public void ACookieNameMustBeAToken(string name)
    {
        var options = new AuthOptions { CookieName = name };
        OptionsValidationException e = Assert.Throws<OptionsValidationException>(options.Validate);
        Assert.Contains("CookieName", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ACookieInJwtModeNeedsAnOriginAllowList()
    {
        var options = new AuthOptions
        {
            Mode = AuthMode.Jwt,
            Issuers = ["https://idp/"],
            Audiences = ["collab"],
            SigningKey = new string('k', 32),
            CookieName = "collab_at",
        };
        OptionsValidationException e = Assert.Throws<OptionsValidationException>(() => options.ValidateWithOrigins([]));
        Assert.Contains("AllowedOrigins", e.Message, StringComparison.Ordinal);
        options.ValidateWithOrigins(["https://app.example"]);
    }

    [Fact]
    public void TheServerRefusesToStartWithACookieAndNoOrigins()
    {
        Assert.Throws<OptionsValidationException>(() => CollabServerHost.Build(
            ["--port", "0"],
            config => Microsoft.Extensions.Configuration.MemoryConfigurationBuilderExtensions.AddInMemoryCollection(config, TokenFactory.Hs256Settings(new()
            {
                ["Auth:CookieName"] = "collab_at",
            }))));
    }
}
