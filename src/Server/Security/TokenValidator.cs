using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Collab.Server.Security;

/// <summary>Why a token (or its holder) was refused. Also the reason label of collab_auth_failures_total.</summary>
internal enum AuthFailure
{
    None,
    Missing,
    Malformed,
    Expired,
    NotYetValid,
    BadSignature,
    BadAlgorithm,
    BadIssuer,
    BadAudience,
    NoSubject,
    BadRights,
    NoRights,
    TokenRevoked,
    UserRevoked,
    KeysUnavailable,
    WrongUser,
    Invalid,
}

/// <summary>The outcome of checking one token: a principal, or a failure with a description safe to send to the client.</summary>
internal readonly record struct AuthResult(SessionPrincipal? Principal, AuthFailure Failure, string Description)
{
    public bool Succeeded => Principal is not null;

    /// <summary>401 for a token the client should replace, 403 for a holder who has no business here.</summary>
    public int HttpStatus => Failure is AuthFailure.NoRights or AuthFailure.UserRevoked ? 403 : 401;

    public static AuthResult Fail(AuthFailure failure, string description) => new(null, failure, description);
}

/// <summary>
/// Validates access tokens with Microsoft.IdentityModel's <see cref="JsonWebTokenHandler"/> (no JWT code of
/// our own): signature against the configured keys with an explicit algorithm allow-list (never "none"),
/// issuer, audience, exp/nbf with clock skew, then our claims (sub, rights) and the revocation list.
/// </summary>
internal sealed class TokenValidator
{
    /// <summary>Longest token accepted (also bounds a Reauthenticate's work).</summary>
    public const int MaxTokenLength = 16 * 1024;

    /// <summary>Longest <c>sub</c> accepted: it is stored as the author of every op.</summary>
    public const int MaxSubjectLength = 255;

    private readonly AuthOptions _options;
    private readonly SigningKeys _keys;
    private readonly RevocationList _revocations;
    private readonly JsonWebTokenHandler _handler = new() { MaximumTokenSizeInBytes = MaxTokenLength };
    private readonly string[] _algorithms;
    private CachedParameters? _parameters;

    public TokenValidator(AuthOptions options, SigningKeys keys, RevocationList revocations)
    {
        _options = options;
        _keys = keys;
        _revocations = revocations;
        _algorithms = [.. options.EffectiveAlgorithms()];
    }

    public async ValueTask<AuthResult> ValidateAsync(string? token, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(token))
        {
            return AuthResult.Fail(AuthFailure.Missing, "no access token");
        }

        if (token.Length > MaxTokenLength)
        {
            return AuthResult.Fail(AuthFailure.Malformed, "access token too long");
        }

        JsonWebToken jwt;
        try
        {
            jwt = _handler.ReadJsonWebToken(token);
        }
        catch (Exception ex) when (ex is ArgumentException or SecurityTokenException or JsonException or FormatException)
        {
            return AuthResult.Fail(AuthFailure.Malformed, "access token is not a JWT");
        }

        if (jwt.IsEncrypted)
        {
            return AuthResult.Fail(AuthFailure.Malformed, "encrypted tokens (JWE) are not accepted");
        }

        // The library enforces the same list (ValidAlgorithms); checking the header first gives the client a
        // precise reason and spends no key lookup or JWKS reload on an algorithm that can never pass.
        if (Array.IndexOf(_algorithms, jwt.Alg) < 0)
        {
            return AuthResult.Fail(AuthFailure.BadAlgorithm, "the token's signing algorithm is not allowed");
        }

        KeySnapshot keys = _keys.Current;
        if (!string.IsNullOrEmpty(jwt.Kid) && !keys.Contains(jwt.Kid) && await _keys.RefreshForUnknownKeyAsync(jwt.Kid, cancellationToken).ConfigureAwait(false))
        {
            keys = _keys.Current;
        }

        if (!keys.Loaded)
        {
            return AuthResult.Fail(AuthFailure.KeysUnavailable, "signing keys are not available yet; retry shortly");
        }

        TokenValidationResult result = await _handler.ValidateTokenAsync(jwt, Parameters(keys)).ConfigureAwait(false);
        if (!result.IsValid)
        {
            return Classify(result.Exception);
        }

        return CheckClaims(jwt);
    }

    private AuthResult CheckClaims(JsonWebToken jwt)
    {
        string? subject = jwt.Subject;
        if (string.IsNullOrEmpty(subject) || subject.Length > MaxSubjectLength)
        {
            return AuthResult.Fail(AuthFailure.NoSubject, $"the token needs a sub claim of 1-{MaxSubjectLength} characters");
        }

        DocumentRights rights;
        try
        {
            rights = ReadRights(jwt);
        }
        catch (FormatException ex)
        {
            return AuthResult.Fail(AuthFailure.BadRights, $"the '{_options.RightsClaim}' claim is invalid: {ex.Message}");
        }

        if (rights.IsEmpty)
        {
            return AuthResult.Fail(AuthFailure.NoRights, $"the token grants no document rights (claim '{_options.RightsClaim}')");
        }

        string? tokenId = string.IsNullOrEmpty(jwt.Id) ? null : jwt.Id;
        var principal = SessionPrincipal.ForUser(subject, tokenId, new DateTimeOffset(jwt.ValidTo, TimeSpan.Zero), rights);
        if (_revocations.IsRevoked(principal, out RevocationKind kind))
        {
            return kind == RevocationKind.User
                ? AuthResult.Fail(AuthFailure.UserRevoked, "the user's access has been revoked")
                : AuthResult.Fail(AuthFailure.TokenRevoked, "the token has been revoked");
        }

        return new AuthResult(principal, AuthFailure.None, "ok");
    }

    private DocumentRights ReadRights(JsonWebToken jwt)
    {
        if (jwt.TryGetPayloadValue(_options.RightsClaim, out JsonElement element))
        {
            return DocumentRights.Parse(element);
        }

        if (jwt.TryGetPayloadValue(_options.RightsClaim, out string? text) && text is not null)
        {
            // Some issuers can only emit string claims: the object arrives as JSON text.
            return DocumentRights.ParseJson(text);
        }

        return DocumentRights.None;
    }

    private TokenValidationParameters Parameters(KeySnapshot keys)
    {
        CachedParameters? cached = Volatile.Read(ref _parameters);
        if (cached is not null && cached.KeyVersion == keys.Version)
        {
            return cached.Parameters;
        }

        var parameters = new TokenValidationParameters
        {
            ValidIssuers = [.. _options.Issuers],
            ValidAudiences = [.. _options.Audiences],
            IssuerSigningKeys = keys.Keys,
            ValidAlgorithms = _algorithms,
            RequireSignedTokens = true,
            RequireExpirationTime = true,
            RequireAudience = true,
            ValidateIssuer = true,
            ValidateAudience = true,
            ValidateLifetime = true,
            ClockSkew = _options.ClockSkew,
            TryAllIssuerSigningKeys = true,
        };
        Volatile.Write(ref _parameters, new CachedParameters(keys.Version, parameters));
        return parameters;
    }

    private sealed record CachedParameters(long KeyVersion, TokenValidationParameters Parameters);

    /// <summary>Maps the library's exception to a reason; the client gets our fixed wording, never the library's message.</summary>
    private static AuthResult Classify(Exception? exception) => exception switch
    {
        SecurityTokenExpiredException => AuthResult.Fail(AuthFailure.Expired, "the token has expired"),
        SecurityTokenNotYetValidException => AuthResult.Fail(AuthFailure.NotYetValid, "the token is not valid yet (nbf)"),
        SecurityTokenNoExpirationException => AuthResult.Fail(AuthFailure.Expired, "the token has no expiry (exp)"),
        SecurityTokenInvalidLifetimeException => AuthResult.Fail(AuthFailure.Expired, "the token's lifetime is invalid"),
        SecurityTokenInvalidAlgorithmException => AuthResult.Fail(AuthFailure.BadAlgorithm, "the token's signing algorithm is not allowed"),
        SecurityTokenInvalidIssuerException => AuthResult.Fail(AuthFailure.BadIssuer, "the token's issuer is not accepted"),
        SecurityTokenInvalidAudienceException => AuthResult.Fail(AuthFailure.BadAudience, "the token is not meant for this service (aud)"),
        SecurityTokenSignatureKeyNotFoundException => AuthResult.Fail(AuthFailure.BadSignature, "the token's signature does not verify"),
        SecurityTokenInvalidSignatureException => AuthResult.Fail(AuthFailure.BadSignature, "the token's signature does not verify"),
        SecurityTokenMalformedException => AuthResult.Fail(AuthFailure.Malformed, "access token is not a JWT"),
        _ => AuthResult.Fail(AuthFailure.Invalid, "the token is invalid"),
    };
}
