using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Collab.Server.Tests.Security.Infrastructure;

/// <summary>
/// Issues test tokens the way an identity provider would, with Microsoft.IdentityModel (so the server's
/// validation is exercised against real, independently produced JWTs), plus deliberately broken ones.
/// </summary>
public sealed class TokenFactory
{
    public const string Issuer = "https://idp.test/";
    public const string Audience = "collab-test";
    public const string SecretText = "a-test-secret-that-is-long-enough-for-hs256!";

    private static readonly JsonWebTokenHandler s_handler = new() { SetDefaultTimesOnTokenCreation = false };

    public TokenFactory()
    {
        Rsa = RSA.Create(2048);
        RsaKey = new RsaSecurityKey(Rsa) { KeyId = "rsa-1" };
        Ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        EcKey = new ECDsaSecurityKey(Ec) { KeyId = "ec-1" };
        SharedKey = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(SecretText));
    }

    public RSA Rsa { get; }

    public RsaSecurityKey RsaKey { get; }

    public ECDsa Ec { get; }

    public ECDsaSecurityKey EcKey { get; }

    public SymmetricSecurityKey SharedKey { get; }

    /// <summary>Server settings for HS256 with <see cref="SecretText"/>.</summary>
    public static Dictionary<string, string?> Hs256Settings(Dictionary<string, string?>? extra = null)
    {
        var settings = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["Auth:Mode"] = "Jwt",
            ["Auth:Issuers:0"] = Issuer,
            ["Auth:Audiences:0"] = Audience,
            ["Auth:SigningKey"] = SecretText,
        };
        foreach ((string key, string? value) in extra ?? [])
        {
            settings[key] = value;
        }

        return settings;
    }

    /// <summary>An HS256 token. Defaults: valid for 10 minutes from now, read and write on everything.</summary>
    public string Create(
        string sub = "alice",
        string? rights = """{"read":["*"],"write":["*"]}""",
        DateTimeOffset? expires = null,
        DateTimeOffset? notBefore = null,
        string issuer = Issuer,
        string audience = Audience,
        string? jti = null,
        SigningCredentials? credentials = null,
        bool rightsAsString = false,
        bool includeExpiry = true)
    {
        DateTimeOffset exp = expires ?? DateTimeOffset.UtcNow.AddMinutes(10);
        DateTimeOffset nbf = notBefore ?? exp.AddMinutes(-20);
        var claims = new Dictionary<string, object>(StringComparer.Ordinal) { ["sub"] = sub };
        if (jti is not null)
        {
            claims["jti"] = jti;
        }

        if (rights is not null)
        {
            claims["collab"] = rightsAsString ? rights : JsonDocument.Parse(rights).RootElement.Clone();
        }

        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = audience,
            Claims = claims,
            NotBefore = nbf.UtcDateTime,
            IssuedAt = nbf.UtcDateTime,
            Expires = includeExpiry ? exp.UtcDateTime : null,
            SigningCredentials = credentials ?? new SigningCredentials(SharedKey, SecurityAlgorithms.HmacSha256),
        };
        return s_handler.CreateToken(descriptor);
    }

    public string CreateRs256(string sub = "alice", string? rights = """{"read":["*"],"write":["*"]}""", DateTimeOffset? expires = null) =>
        Create(sub, rights, expires, credentials: new SigningCredentials(RsaKey, SecurityAlgorithms.RsaSha256));

    public string CreateEs256(string sub = "alice", string? rights = """{"read":["*"],"write":["*"]}""", DateTimeOffset? expires = null) =>
        Create(sub, rights, expires, credentials: new SigningCredentials(EcKey, SecurityAlgorithms.EcdsaSha256));

    /// <summary>An unsigned token (<c>alg: none</c>, empty signature) with otherwise valid claims.</summary>
    public static string CreateUnsigned(string sub = "alice", string alg = "none")
    {
        long exp = DateTimeOffset.UtcNow.AddMinutes(10).ToUnixTimeSeconds();
        string header = Base64UrlEncoder.Encode($$"""{"alg":"{{alg}}","typ":"JWT"}""");
        string payload = Base64UrlEncoder.Encode($$$"""{"sub":"{{{sub}}}","iss":"{{{Issuer}}}","aud":"{{{Audience}}}","exp":{{{exp}}},"collab":{"read":["*"],"write":["*"]}}""");
        return header + "." + payload + ".";
    }

    /// <summary>The public keys as a JWKS document (RSA and EC), as an identity provider publishes them.</summary>
    public string PublicJwks()
    {
        RSAParameters rsa = Rsa.ExportParameters(false);
        ECParameters ec = Ec.ExportParameters(false);
        return $$"""
            {"keys":[
              {"kty":"RSA","use":"sig","alg":"RS256","kid":"{{RsaKey.KeyId}}","n":"{{Base64UrlEncoder.Encode(rsa.Modulus)}}","e":"{{Base64UrlEncoder.Encode(rsa.Exponent)}}"},
              {"kty":"EC","use":"sig","alg":"ES256","kid":"{{EcKey.KeyId}}","crv":"P-256","x":"{{Base64UrlEncoder.Encode(ec.Q.X)}}","y":"{{Base64UrlEncoder.Encode(ec.Q.Y)}}"}
            ]}
            """;
    }
}
