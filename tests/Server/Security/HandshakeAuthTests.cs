using System.Net;
using System.Security.Cryptography;
using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Tests.Security.Infrastructure;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using Google.Protobuf;
using Microsoft.IdentityModel.Tokens;

namespace Collab.Server.Tests.Security;

/// <summary>
/// The whole server in JWT mode, driven over raw sockets: every refusal is a real HTTP response before the
/// upgrade (never a half-open session), tokens travel in each of the three documented places, and the admin
/// endpoint revokes open sessions.
/// </summary>
public sealed class HandshakeAuthTests : IAsyncLifetime
{
    private const string AdminToken = "admin-token-for-tests-0123456789abcdef";
    private readonly TokenFactory _tokens = new();
    private SecureServer _server = null!;

    public async Task InitializeAsync() => _server = await SecureServer.StartAsync(TokenFactory.Hs256Settings(new()
    {
        ["Auth:AdminToken"] = AdminToken,
    }));

    public async Task DisposeAsync() => await _server.DisposeAsync();

    public static TheoryData<string> BadTokens => new()
    {
        "expired", "not-yet-valid", "wrong-signature", "wrong-audience", "wrong-issuer", "alg-none", "garbage", "revoked-before",
    };

    [Fact]
    public async Task AMissingTokenIs401WithABearerChallenge()
    {
        RawHttpResponse response = await UpgradeAsync();
        Assert.Equal(401, response.StatusCode);
        Assert.True(response.HasHeader("WWW-Authenticate: Bearer realm=\"collab\""), response.Head);
        Assert.DoesNotContain("101", response.Head.Split("\r\n")[0], StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(BadTokens))]
    public async Task AnInvalidTokenIs401BeforeTheUpgrade(string kind)
    {
        string token = kind switch
        {
            "expired" => _tokens.Create(expires: DateTimeOffset.UtcNow.AddMinutes(-5)),
            "not-yet-valid" => _tokens.Create(notBefore: DateTimeOffset.UtcNow.AddMinutes(5), expires: DateTimeOffset.UtcNow.AddMinutes(15)),
            "wrong-signature" => _tokens.Create(credentials: new SigningCredentials(new SymmetricSecurityKey(RandomNumberGenerator.GetBytes(32)), SecurityAlgorithms.HmacSha256)),
            "wrong-audience" => _tokens.Create(audience: "not-collab"),
            "wrong-issuer" => _tokens.Create(issuer: "https://attacker/"),
            "alg-none" => TokenFactory.CreateUnsigned(),
            "garbage" => "not-a-jwt",
            _ => await RevokedTokenAsync(),
        };

        RawHttpResponse response = await UpgradeAsync($"Authorization: Bearer {token}\r\n");
        Assert.Equal(401, response.StatusCode);
        Assert.Contains("error=\"invalid_token\"", response.Head, StringComparison.Ordinal);
        Assert.DoesNotContain("Sec-WebSocket-Accept", response.Head, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ATokenWithoutRightsIs403()
    {
        RawHttpResponse response = await UpgradeAsync($"Authorization: Bearer {_tokens.Create(rights: null)}\r\n");
        Assert.Equal(403, response.StatusCode);
        Assert.Contains("error=\"insufficient_scope\"", response.Head, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheTokenIsAcceptedInTheHeaderTheSubprotocolAndTheQuery()
    {
        string token = _tokens.Create();
        await using (RawWebSocketClient viaHeader = await RawWebSocketClient.ConnectAsync(_server.Port, extraHeaders: $"Authorization: Bearer {token}\r\n"))
        {
            Assert.NotEmpty(await HelloAsync(viaHeader));
        }

        // Browsers: the token rides as a second offered subprotocol, which the server never selects.
        await using (RawWebSocketClient viaProtocol = await RawWebSocketClient.ConnectAsync(_server.Port, extraHeaders: $"Sec-WebSocket-Protocol: collab.v1, bearer.{token}\r\n"))
        {
            Assert.Contains("Sec-WebSocket-Protocol: collab.v1\r\n", viaProtocol.HandshakeResponse, StringComparison.Ordinal);
            Assert.DoesNotContain("bearer.", viaProtocol.HandshakeResponse, StringComparison.Ordinal);
            await HelloAsync(viaProtocol);
        }

        await using (RawWebSocketClient viaQuery = await RawWebSocketClient.ConnectAsync(_server.Port, path: "/ws?access_token=" + Uri.EscapeDataString(token)))
        {
            await HelloAsync(viaQuery);
        }
    }

    [Fact]
    public async Task TheAdminEndpointRevokesOpenSessionsAtOnce()
    {
        string token = _tokens.Create(sub: "victim", jti: "admin-revoke-1");
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(_server.Port, extraHeaders: $"Authorization: Bearer {token}\r\n");
        await HelloAsync(client);

        RawHttpResponse revoke = await AdminAsync("POST", "/admin/revoke?jti=admin-revoke-1&ttl=600", AdminToken);
        Assert.Equal(200, revoke.StatusCode);
        Assert.Contains("revoked jti admin-revoke-1", revoke.Body, StringComparison.Ordinal);

        RawFrame close = await client.ReceiveCloseAsync();
        Assert.Equal((ushort)CloseCode.AuthExpired, close.CloseCode);
        Assert.Equal(401, (await UpgradeAsync($"Authorization: Bearer {token}\r\n")).StatusCode);

        // A user revocation: 4003 for open sessions, 403 for new ones.
        string userToken = _tokens.Create(sub: "banned");
        await using RawWebSocketClient banned = await RawWebSocketClient.ConnectAsync(_server.Port, extraHeaders: $"Authorization: Bearer {userToken}\r\n");
        await HelloAsync(banned);
        Assert.Equal(200, (await AdminAsync("POST", "/admin/revoke?sub=banned", AdminToken)).StatusCode);
        Assert.Equal((ushort)CloseCode.Forbidden, (await banned.ReceiveCloseAsync()).CloseCode);
        Assert.Equal(403, (await UpgradeAsync($"Authorization: Bearer {userToken}\r\n")).StatusCode);
    }

    [Theory]
    [InlineData("POST", "/admin/revoke?jti=x", "wrong-admin-token-0123456789abcdefgh", 401)]
    [InlineData("POST", "/admin/revoke?jti=x", null, 401)]
    [InlineData("GET", "/admin/revoke?jti=x", AdminToken, 405)]
    [InlineData("POST", "/admin/revoke", AdminToken, 400)]
    [InlineData("POST", "/admin/revoke?jti=x&sub=y", AdminToken, 400)]
    [InlineData("POST", "/admin/revoke?jti=x&ttl=0", AdminToken, 400)]
    [InlineData("POST", "/admin/revoke?jti=x&ttl=abc", AdminToken, 400)]
    [InlineData("POST", "/admin/revoke?jti=x&ttl=99999999", AdminToken, 400)]
    public async Task TheAdminEndpointRefusesBadRequests(string method, string target, string? adminToken, int status)
    {
        RawHttpResponse response = await AdminAsync(method, target, adminToken);
        Assert.Equal(status, response.StatusCode);
        if (status == 405)
        {
            Assert.True(response.HasHeader("Allow: POST"), response.Head);
        }
    }

    [Fact]
    public async Task ProbesStayReadOnly()
    {
        RawHttpResponse response = await AdminAsync("POST", "/healthz", null);
        Assert.Equal(405, response.StatusCode);
        Assert.True(response.HasHeader("Allow: GET, HEAD"), response.Head);
    }

    private async Task<string> RevokedTokenAsync()
    {
        Assert.Equal(200, (await AdminAsync("POST", "/admin/revoke?jti=revoked-before-connect", AdminToken)).StatusCode);
        return _tokens.Create(jti: "revoked-before-connect");
    }

    /// <summary>An upgrade request with extra header lines; returns the server's HTTP answer (a refusal, or the 101).</summary>
    internal static Task<RawHttpResponse> UpgradeAsync(int port, string headers = "") =>
        RawWebSocketClient.SendHttpAsync(port,
            $"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Convert.ToBase64String(RandomNumberGenerator.GetBytes(16))}\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n");

    private Task<RawHttpResponse> UpgradeAsync(string headers = "") => UpgradeAsync(_server.Port, headers);

    private Task<RawHttpResponse> AdminAsync(string method, string target, string? adminToken) =>
        RawWebSocketClient.SendHttpAsync(_server.Port,
            $"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{(adminToken is null ? "" : $"Authorization: Bearer {adminToken}\r\n")}Content-Length: 0\r\nConnection: close\r\n\r\n");

    /// <summary>Sends Hello and returns the client id of the Welcome.</summary>
    internal static async Task<string> HelloAsync(RawWebSocketClient client)
    {
        await client.SendBinaryAsync(new ClientMessage { RequestId = 1, Hello = new Hello { ProtocolVersion = 1 } }.ToByteArray());
        RawFrame frame = await client.ReceiveFrameAsync();
        ServerMessage message = ServerMessage.Parser.ParseFrom(frame.Payload);
        Assert.Equal(ServerMessage.BodyOneofCase.Welcome, message.BodyCase);
        return message.Welcome.ClientId;
    }
}

/// <summary>Pieces of the handshake that need no server.</summary>
public sealed class HandshakeUnitTests
{
    private static HandshakeRequest Request(string? authorization = null, string query = "", params string[] protocols) => new()
    {
        Path = "/ws",
        Query = query,
        Authorization = authorization,
        SubProtocols = protocols,
        RemoteEndPoint = new IPEndPoint(IPAddress.Loopback, 1),
    };

    [Fact]
    public void TheHeaderWinsThenTheSubprotocolThenTheQuery()
    {
        Assert.Equal(("h", TokenSource.AuthorizationHeader), HandshakeAuthenticator.FindToken(Request("Bearer h", "?access_token=q", "bearer.p"), allowQuery: true));
        Assert.Equal(("p", TokenSource.SubProtocol), HandshakeAuthenticator.FindToken(Request(null, "?access_token=q", "collab.v1", "bearer.p"), allowQuery: true));
        Assert.Equal(("q r", TokenSource.QueryParameter), HandshakeAuthenticator.FindToken(Request(null, "?x=1&access_token=q%20r"), allowQuery: true));
        Assert.Equal((null, TokenSource.None), HandshakeAuthenticator.FindToken(Request(null, "?access_token=q"), allowQuery: false));
        Assert.Equal(("case", TokenSource.AuthorizationHeader), HandshakeAuthenticator.FindToken(Request("bearer   case  "), allowQuery: true));
    }

    [Theory]
    [InlineData("Basic dXNlcjpwYXNz")]
    [InlineData("Bearer")]
    [InlineData("Bearer ")]
    [InlineData("Token abc")]
    public void OtherSchemesAndEmptyBearersAreNoToken(string authorization)
    {
        Assert.Equal((null, TokenSource.None), HandshakeAuthenticator.FindToken(Request(authorization), allowQuery: true));
    }

    [Fact]
    public void DuplicatedQueryTokensAreIgnored()
    {
        Assert.Equal((null, TokenSource.None), HandshakeAuthenticator.FindToken(Request(null, "?access_token=a&access_token=b"), allowQuery: true));
    }

    [Fact]
    public void ChallengesStayPrintableAscii()
    {
        HandshakeDecision decision = HandshakeAuthenticator.Reject(AuthResult.Fail(AuthFailure.BadRights, "bad \"claim\" \u00e9\r\n"));
        Assert.Equal(401, decision.StatusCode);
        Assert.All(decision.Challenge!, c => Assert.InRange(c, ' ', '~'));
        Assert.Contains("error_description=\"bad ?claim? ???\"", decision.Challenge, StringComparison.Ordinal);
    }
}
