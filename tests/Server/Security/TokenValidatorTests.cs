using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Collab.Server.Hosting;
using Collab.Server.Security;
using Collab.Server.Tests.Security.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.IdentityModel.Tokens;

namespace Collab.Server.Tests.Security;

/// <summary>Every way a token can be wrong, checked by the validator alone (the handshake tests check the HTTP answers).</summary>
public sealed class TokenValidatorTests : IDisposable
{
    private readonly TokenFactory _tokens = new();
    private readonly List<IDisposable> _disposables = [];
    private readonly string _directory = Directory.CreateTempSubdirectory("collab-jwks-").FullName;

    public void Dispose()
    {
        foreach (IDisposable disposable in _disposables)
        {
            disposable.Dispose();
        }

        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task AValidTokenYieldsItsSubjectIdExpiryAndRights()
    {
        TokenValidator validator = await CreateAsync();
        DateTimeOffset exp = DateTimeOffset.UtcNow.AddMinutes(5);
        AuthResult result = await validator.ValidateAsync(_tokens.Create(sub: "alice", rights: """{"read":["org1/*"],"write":["org1/a"]}""", expires: exp, jti: "t-1"), default);

        Assert.True(result.Succeeded, result.Description);
        SessionPrincipal principal = result.Principal!;
        Assert.Equal("alice", principal.UserId);
        Assert.Equal("t-1", principal.TokenId);
        Assert.Equal(exp.ToUnixTimeSeconds(), principal.ExpiresAt!.Value.ToUnixTimeSeconds());
        Assert.True(principal.Rights.CanRead("org1/b"));
        Assert.True(principal.Rights.CanWrite("org1/a"));
        Assert.False(principal.Rights.CanWrite("org1/b"));
    }

    [Fact]
    public async Task RightsSentAsAJsonStringClaimAreAccepted()
    {
        TokenValidator validator = await CreateAsync();
        AuthResult result = await validator.ValidateAsync(_tokens.Create(rights: """{"write":["x"]}""", rightsAsString: true), default);
        Assert.True(result.Succeeded, result.Description);
        Assert.True(result.Principal!.Rights.CanWrite("x"));
    }

    [Fact]
    public async Task ExpiredTokensAreRefusedBeyondTheClockSkew()
    {
        TokenValidator validator = await CreateAsync(o => o.ClockSkew = TimeSpan.FromSeconds(30));
        await AssertRefused(validator, _tokens.Create(expires: DateTimeOffset.UtcNow.AddMinutes(-2)), AuthFailure.Expired, 401);

        // Within the skew the token still passes: clocks of issuer and server never agree exactly.
        AuthResult withinSkew = await validator.ValidateAsync(_tokens.Create(expires: DateTimeOffset.UtcNow.AddSeconds(-10)), default);
        Assert.True(withinSkew.Succeeded, withinSkew.Description);
    }

    [Fact]
    public async Task NotYetValidTokensAreRefused()
    {
        TokenValidator validator = await CreateAsync();
        DateTimeOffset nbf = DateTimeOffset.UtcNow.AddMinutes(5);
        await AssertRefused(validator, _tokens.Create(notBefore: nbf, expires: nbf.AddMinutes(10)), AuthFailure.NotYetValid, 401);
    }

    [Fact]
    public async Task TokensWithoutExpiryAreRefused()
    {
        TokenValidator validator = await CreateAsync();
        await AssertRefused(validator, _tokens.Create(includeExpiry: false), AuthFailure.Expired, 401);
    }

    [Fact]
    public async Task WronglySignedTokensAreRefused()
    {
        TokenValidator validator = await CreateAsync();
        var otherKey = new SymmetricSecurityKey(Encoding.UTF8.GetBytes("another-secret-that-is-also-long-enough!!"));
        await AssertRefused(validator, _tokens.Create(credentials: new SigningCredentials(otherKey, SecurityAlgorithms.HmacSha256)), AuthFailure.BadSignature, 401);

        // A valid token with one payload character changed: the signature no longer covers it.
        string token = _tokens.Create();
        string[] parts = token.Split('.');
        char[] payload = parts[1].ToCharArray();
        payload[10] = payload[10] == 'A' ? 'B' : 'A';
        await AssertRefused(validator, $"{parts[0]}.{new string(payload)}.{parts[2]}", null, 401);
    }

    [Fact]
    public async Task WrongAudienceAndIssuerAreRefused()
    {
        TokenValidator validator = await CreateAsync();
        await AssertRefused(validator, _tokens.Create(audience: "some-other-api"), AuthFailure.BadAudience, 401);
        await AssertRefused(validator, _tokens.Create(issuer: "https://evil.test/"), AuthFailure.BadIssuer, 401);
    }

    [Theory]
    [InlineData("none")]
    [InlineData("None")]
    [InlineData("HS256")]
    public async Task UnsignedTokensAreRefusedWhateverTheirHeaderSays(string alg)
    {
        TokenValidator validator = await CreateAsync();
        await AssertRefused(validator, TokenFactory.CreateUnsigned(alg: alg), null, 401);
    }

    [Fact]
    public async Task AlgorithmsOutsideTheAllowListAreRefused()
    {
        // HS512 with the right secret: only HS256 is allowed.
        TokenValidator validator = await CreateAsync();
        var key = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(TokenFactory.SecretText + TokenFactory.SecretText));
        TokenValidator wide = await CreateAsync(o => o.SigningKey = TokenFactory.SecretText + TokenFactory.SecretText);
        string hs512 = _tokens.Create(credentials: new SigningCredentials(key, SecurityAlgorithms.HmacSha512));
        await AssertRefused(wide, hs512, AuthFailure.BadAlgorithm, 401);
        Assert.False((await validator.ValidateAsync(hs512, default)).Succeeded);
    }

    [Fact]
    public async Task AnHmacTokenKeyedWithThePublicKeyIsRefused()
    {
        // The classic algorithm-confusion attack: sign HS256 with the RSA public key's bytes.
        WriteJwks(_tokens.PublicJwks());
        TokenValidator validator = await CreateAsync(JwksFile);
        byte[] publicKey = _tokens.Rsa.ExportSubjectPublicKeyInfo();
        string forged = _tokens.Create(credentials: new SigningCredentials(new SymmetricSecurityKey(publicKey) { KeyId = "rsa-1" }, SecurityAlgorithms.HmacSha256));
        await AssertRefused(validator, forged, null, 401);
    }

    [Fact]
    public async Task SubjectAndRightsAreRequired()
    {
        TokenValidator validator = await CreateAsync();
        await AssertRefused(validator, _tokens.Create(sub: ""), AuthFailure.NoSubject, 401);
        await AssertRefused(validator, _tokens.Create(sub: new string('u', 300)), AuthFailure.NoSubject, 401);
        await AssertRefused(validator, _tokens.Create(rights: null), AuthFailure.NoRights, 403);
        await AssertRefused(validator, _tokens.Create(rights: """{"read":[]}"""), AuthFailure.NoRights, 403);
        await AssertRefused(validator, _tokens.Create(rights: """{"read":["bad pattern"]}"""), AuthFailure.BadRights, 401);
    }

    [Fact]
    public async Task GarbageIsRefusedWithoutThrowing()
    {
        TokenValidator validator = await CreateAsync();
        foreach (string garbage in new[] { "x", "a.b", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.e30.", new string('a', TokenValidator.MaxTokenLength + 1), "\u0000\u0001" })
        {
            AuthResult result = await validator.ValidateAsync(garbage, default);
            Assert.False(result.Succeeded);
            Assert.Equal(401, result.HttpStatus);
        }

        await AssertRefused(validator, null, AuthFailure.Missing, 401);
    }

    [Fact]
    public async Task RevokedTokensAndUsersAreRefusedUntilTheEntryExpires()
    {
        var time = new ManualTimeProvider();
        SecurityServices security = await CreateServicesAsync(time: time);
        TokenValidator validator = security.Validator!;
        string token = _tokens.Create(sub: "bob", jti: "jti-1");
        Assert.True((await validator.ValidateAsync(token, default)).Succeeded);

        await security.Revocations.RevokeAsync(new RevocationEntry(RevocationKind.TokenId, "jti-1", time.GetUtcNow().AddMinutes(1)), default);
        await AssertRefused(validator, token, AuthFailure.TokenRevoked, 401);
        Assert.True((await validator.ValidateAsync(_tokens.Create(sub: "bob", jti: "jti-2"), default)).Succeeded);

        await security.Revocations.RevokeAsync(new RevocationEntry(RevocationKind.User, "bob", time.GetUtcNow().AddMinutes(5)), default);
        await AssertRefused(validator, _tokens.Create(sub: "bob", jti: "jti-2"), AuthFailure.UserRevoked, 403);
        Assert.True((await validator.ValidateAsync(_tokens.Create(sub: "carol"), default)).Succeeded);

        // Each entry lapses on its own expiry.
        time.Advance(TimeSpan.FromMinutes(2));
        await AssertRefused(validator, token, AuthFailure.UserRevoked, 403);
        time.Advance(TimeSpan.FromMinutes(4));
        Assert.True((await validator.ValidateAsync(token, default)).Succeeded);
        Assert.Equal(0, security.Revocations.Count);
    }

    [Fact]
    public async Task Rs256AndEs256TokensVerifyAgainstAJwksFile()
    {
        WriteJwks(_tokens.PublicJwks());
        TokenValidator validator = await CreateAsync(JwksFile);
        Assert.True((await validator.ValidateAsync(_tokens.CreateRs256(), default)).Succeeded);
        Assert.True((await validator.ValidateAsync(_tokens.CreateEs256(), default)).Succeeded);

        // The HS256 secret is not configured here: HS256 tokens are outside the allow-list.
        await AssertRefused(validator, _tokens.Create(), AuthFailure.BadAlgorithm, 401);
    }

    [Fact]
    public async Task SymmetricKeysInAKeySetAreIgnored()
    {
        string oct = Base64UrlEncoder.Encode(Encoding.UTF8.GetBytes(TokenFactory.SecretText));
        WriteJwks($$"""{"keys":[{"kty":"oct","kid":"o1","k":"{{oct}}"}]}""");
        TokenValidator validator = await CreateAsync(o =>
        {
            JwksFile(o);
            o.AllowedAlgorithms = ["HS256", "RS256"];
            o.SigningKey = new string('z', 40); // HS256 allowed, but with another secret than the "oct" key's
        });
        string token = _tokens.Create(credentials: new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(TokenFactory.SecretText)) { KeyId = "o1" }, SecurityAlgorithms.HmacSha256));
        Assert.False((await validator.ValidateAsync(token, default)).Succeeded);
    }

    [Fact]
    public async Task AnUnknownKeyIdReloadsTheKeySetAtMostOncePerInterval()
    {
        var time = new ManualTimeProvider();
        WriteJwks(OnlyEcJwks());
        SecurityServices security = await CreateServicesAsync(o =>
        {
            JwksFile(o);
            o.JwksMinRefreshInterval = TimeSpan.FromSeconds(30);
        }, time);
        string rsaToken = _tokens.CreateRs256();

        // Rotation: the issuer starts signing with a key the server has not loaded. The start-up load
        // was just now, so the first unknown kid cannot reload yet.
        WriteJwks(_tokens.PublicJwks());
        await AssertRefused(security.Validator!, rsaToken, AuthFailure.BadSignature, 401);
        time.Advance(TimeSpan.FromSeconds(31));
        AuthResult result = await security.Validator!.ValidateAsync(rsaToken, default);
        Assert.True(result.Succeeded, result.Description);
    }

    [Fact]
    public async Task KeysAreFetchedFromAJwksUrlOnLoopbackAndRefreshedPeriodically()
    {
        int port = FreePort();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        int requests = 0;
        string body = OnlyEcJwks();
        using var stop = new CancellationTokenSource();
        Task server = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                HttpListenerContext context;
                try
                {
                    context = await listener.GetContextAsync().WaitAsync(stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                Interlocked.Increment(ref requests);
                byte[] bytes = Encoding.UTF8.GetBytes(Volatile.Read(ref body));
                context.Response.ContentType = "application/json";
                context.Response.ContentLength64 = bytes.Length;
                await context.Response.OutputStream.WriteAsync(bytes);
                context.Response.Close();
            }
        });

        var time = new ManualTimeProvider();
        SecurityServices security = await CreateServicesAsync(o =>
        {
            o.SigningKey = null;
            o.JwksUrl = $"http://127.0.0.1:{port}/.well-known/jwks.json";
            o.JwksRefreshInterval = TimeSpan.FromMinutes(5);
            o.JwksMinRefreshInterval = TimeSpan.FromHours(1);
        }, time);
        Assert.True(security.Keys!.IsReady);
        Assert.Equal(1, Volatile.Read(ref requests));
        Assert.True((await security.Validator!.ValidateAsync(_tokens.CreateEs256(), default)).Succeeded);
        await AssertRefused(security.Validator!, _tokens.CreateRs256(), AuthFailure.BadSignature, 401);

        // The periodic refresh picks up the rotated set without any unknown-kid trigger.
        Volatile.Write(ref body, _tokens.PublicJwks());
        time.Advance(TimeSpan.FromMinutes(5));
        await WaitUntilAsync(() => Volatile.Read(ref requests) >= 2);
        await WaitUntilAsync(() => security.Keys.Current.Contains("rsa-1"));
        Assert.True((await security.Validator!.ValidateAsync(_tokens.CreateRs256(), default)).Succeeded);

        await stop.CancelAsync();
        listener.Stop();
        await server;
    }

    [Fact]
    public async Task AnUnreachableKeySetKeepsTheServerUnreadyAndRefusesTokens()
    {
        int port = FreePort(); // nothing listens there
        SecurityServices security = await CreateServicesAsync(o =>
        {
            o.SigningKey = null;
            o.JwksUrl = $"http://127.0.0.1:{port}/jwks";
        });
        Assert.False(security.Keys!.IsReady);
        Assert.False(new SigningKeysReadinessCheck(security).Check().IsReady);
        await AssertRefused(security.Validator!, _tokens.CreateEs256(), AuthFailure.KeysUnavailable, 401);
    }

    private string JwksPath => Path.Combine(_directory, "jwks.json");

    private void JwksFile(AuthOptions options)
    {
        options.SigningKey = null;
        options.JwksPath = JwksPath;
    }

    private void WriteJwks(string json) => File.WriteAllText(JwksPath, json);

    private string OnlyEcJwks()
    {
        ECParameters ec = _tokens.Ec.ExportParameters(false);
        return $$"""{"keys":[{"kty":"EC","use":"sig","kid":"ec-1","crv":"P-256","x":"{{Base64UrlEncoder.Encode(ec.Q.X)}}","y":"{{Base64UrlEncoder.Encode(ec.Q.Y)}}"}]}""";
    }

    private async Task<TokenValidator> CreateAsync(Action<AuthOptions>? configure = null) =>
        (await CreateServicesAsync(configure)).Validator!;

    private async Task<SecurityServices> CreateServicesAsync(Action<AuthOptions>? configure = null, TimeProvider? time = null)
    {
        var auth = new AuthOptions
        {
            Mode = AuthMode.Jwt,
            Issuers = [TokenFactory.Issuer],
            Audiences = [TokenFactory.Audience],
            SigningKey = TokenFactory.SecretText,
        };
        configure?.Invoke(auth);

        SecurityServices security = SecurityServices.Create(auth, new LimitsOptions(), new InProcessRevocationBus(), time ?? TimeProvider.System, NullLogger.Instance);
        _disposables.Add(security);
        await security.StartAsync(CancellationToken.None);
        return security;
    }

    private static async Task AssertRefused(TokenValidator validator, string? token, AuthFailure? failure, int status)
    {
        AuthResult result = await validator.ValidateAsync(token, default);
        Assert.False(result.Succeeded, "the token was accepted");
        if (failure is not null)
        {
            Assert.Equal(failure.Value, result.Failure);
        }

        Assert.Equal(status, result.HttpStatus);
        Assert.Null(result.Principal);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!condition())
        {
            await Task.Delay(10, cts.Token);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
