using System.Text;

namespace Collab.Server.Security;

/// <summary>How connections are authenticated.</summary>
public enum AuthMode
{
    /// <summary>
    /// No authentication: anyone who reaches the port reads and writes every document. The default so that
    /// the zero-configuration local run works; the server says so loudly at start-up. Never for production.
    /// </summary>
    Anonymous = 0,

    /// <summary>Every upgrade request must carry a valid JWT access token (docs/SECURITY.md).</summary>
    Jwt = 1,
}

/// <summary>
/// Authentication and authorization settings (configuration section "Auth"). Validated once at start-up
/// by <see cref="Validate"/>; an invalid combination stops the server with a message naming the setting.
/// </summary>
public sealed class AuthOptions
{
    public const string Section = "Auth";

    /// <summary>Shortest HS256 secret accepted, in bytes: RFC 7518 section 3.2 requires a key at least as long as the hash.</summary>
    public const int MinSigningKeyBytes = 32;

    /// <summary>Shortest admin token accepted, in characters.</summary>
    public const int MinAdminTokenLength = 32;

    /// <summary>Prefix marking <see cref="SigningKey"/> as base64 rather than UTF-8 text.</summary>
    public const string Base64Prefix = "base64:";

    /// <summary>Every algorithm that may be listed in <see cref="AllowedAlgorithms"/>. "none" is not one of them, ever.</summary>
    public static readonly IReadOnlySet<string> SupportedAlgorithms = new HashSet<string>(StringComparer.Ordinal)
    {
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
    };

    /// <summary>Anonymous (the default, for local runs) or Jwt (production).</summary>
    public AuthMode Mode { get; set; } = AuthMode.Anonymous;

    /// <summary>Accepted <c>iss</c> values (at least one in Jwt mode), compared exactly.</summary>
    public IList<string> Issuers { get; set; } = new List<string>();

    /// <summary>Accepted <c>aud</c> values (at least one in Jwt mode): the identifier your issuer uses for this Collab deployment.</summary>
    public IList<string> Audiences { get; set; } = new List<string>();

    /// <summary>
    /// HS256 shared secret for simple set-ups: UTF-8 text, or base64 after a <c>base64:</c> prefix; at least
    /// <see cref="MinSigningKeyBytes"/> bytes. Prefer asymmetric keys (<see cref="JwksPath"/>/<see cref="JwksUrl"/>):
    /// whoever holds a shared secret can mint tokens.
    /// </summary>
    public string? SigningKey { get; set; }

    /// <summary>A JSON Web Key Set file with the issuer's public keys (RS*/PS*/ES*); re-read every <see cref="JwksRefreshInterval"/>.</summary>
    public string? JwksPath { get; set; }

    /// <summary>
    /// The issuer's JWKS endpoint (https; http only on a loopback address). Fetched at start, every
    /// <see cref="JwksRefreshInterval"/>, and when a token names a key id not seen yet (at most once per
    /// <see cref="JwksMinRefreshInterval"/>), so key rotation needs no restart.
    /// </summary>
    public string? JwksUrl { get; set; }

    /// <summary>How often the key set is reloaded.</summary>
    public TimeSpan JwksRefreshInterval { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Least time between two reloads triggered by unknown key ids (so forged kids cannot make the server hammer the issuer).</summary>
    public TimeSpan JwksMinRefreshInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Algorithms a token may be signed with. Empty (the default) means HS256 when <see cref="SigningKey"/> is
    /// set plus RS256 and ES256 when a key set is configured. "none" is always refused.
    /// </summary>
    public IList<string> AllowedAlgorithms { get; set; } = new List<string>();

    /// <summary>Tolerance for clock differences with the issuer when checking <c>exp</c> and <c>nbf</c>.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long before a session's token expires the server sends AuthExpiring.</summary>
    public TimeSpan ExpiryWarning { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The claim that carries per-document rights (format in docs/SECURITY.md).</summary>
    public string RightsClaim { get; set; } = "collab";

    /// <summary>Whether a token in the <c>access_token</c> query parameter is accepted (it ends up in access logs; prefer the header or subprotocol).</summary>
    public bool AllowQueryToken { get; set; } = true;

    /// <summary>
    /// Name of a cookie that may carry the access token on the upgrade (unset: cookies are ignored). Lets a browser
    /// application keep the token in an <c>HttpOnly; Secure; SameSite</c> cookie that page scripts never see. The
    /// cookie is honoured only on requests whose Origin is listed in <c>Transport:AllowedOrigins</c> (required when
    /// this is set), which is the defence against cross-site WebSocket hijacking. Explicit tokens (header,
    /// subprotocol, query) take precedence.
    /// </summary>
    public string? CookieName { get; set; }

    /// <summary>
    /// How long a revocation stays in force when the request names no expiry. Must cover the longest token
    /// lifetime your issuer hands out: after it, a revoked token that is still unexpired would be accepted again.
    /// </summary>
    public TimeSpan RevocationTtl { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// Bearer token guarding <c>POST /admin/revoke</c> on the server port; unset disables the endpoint.
    /// At least <see cref="MinAdminTokenLength"/> characters.
    /// </summary>
    public string? AdminToken { get; set; }

    /// <summary>Whether tokens are checked at all.</summary>
    public bool IsJwt => Mode == AuthMode.Jwt;

    /// <summary>The HS256 secret as bytes, or null when none is configured.</summary>
    public byte[]? SigningKeyBytes()
    {
        if (string.IsNullOrEmpty(SigningKey))
        {
            return null;
        }

        if (SigningKey.StartsWith(Base64Prefix, StringComparison.Ordinal))
        {
            try
            {
                return Convert.FromBase64String(SigningKey[Base64Prefix.Length..]);
            }
            catch (FormatException)
            {
                throw SettingErrors.ForSetting(Section, typeof(AuthOptions), nameof(SigningKey), $"starts with '{Base64Prefix}' but the rest is not base64.");
            }
        }

        return Encoding.UTF8.GetBytes(SigningKey);
    }

    /// <summary>The algorithms in force: <see cref="AllowedAlgorithms"/>, or the defaults for the configured keys.</summary>
    public IReadOnlyList<string> EffectiveAlgorithms()
    {
        if (AllowedAlgorithms.Count > 0)
        {
            return [.. AllowedAlgorithms];
        }

        var algorithms = new List<string>();
        if (!string.IsNullOrEmpty(SigningKey))
        {
            algorithms.Add("HS256");
        }

        if (HasKeySet)
        {
            algorithms.Add("RS256");
            algorithms.Add("ES256");
        }

        return algorithms;
    }

    internal bool HasKeySet => !string.IsNullOrEmpty(JwksPath) || !string.IsNullOrEmpty(JwksUrl);

    /// <summary>Throws <see cref="Microsoft.Extensions.Options.OptionsValidationException"/> listing every invalid setting.</summary>
    public void Validate()
    {
        var errors = new SettingErrors(Section, typeof(AuthOptions));
        errors.Positive(ClockSkew, nameof(ClockSkew), allowZero: true);
        errors.Positive(ExpiryWarning, nameof(ExpiryWarning), allowZero: true);
        errors.Positive(RevocationTtl, nameof(RevocationTtl));
        errors.Positive(JwksRefreshInterval, nameof(JwksRefreshInterval));
        errors.Positive(JwksMinRefreshInterval, nameof(JwksMinRefreshInterval));
        if (!string.IsNullOrEmpty(AdminToken) && AdminToken.Length < MinAdminTokenLength)
        {
            errors.Add(nameof(AdminToken), $"must be at least {MinAdminTokenLength} characters.");
        }

        if (CookieName is not null && (CookieName.Length == 0 || !CookieName.All(IsCookieNameChar)))
        {
            errors.Add(nameof(CookieName), $"'{CookieName}' is not a cookie name (an RFC 6265 token: letters, digits and !#$%&'*+-.^_`|~).");
        }

        if (string.IsNullOrWhiteSpace(RightsClaim))
        {
            errors.Add(nameof(RightsClaim), "must name a claim.");
        }

        bool unsupported = false;
        for (int i = 0; i < AllowedAlgorithms.Count; i++)
        {
            string algorithm = AllowedAlgorithms[i];
            if (!SupportedAlgorithms.Contains(algorithm))
            {
                unsupported = true;
                errors.Add($"{nameof(AllowedAlgorithms)}:{i}", string.Equals(algorithm, "none", StringComparison.OrdinalIgnoreCase)
                    ? "'none' (unsigned tokens) is never allowed."
                    : $"'{algorithm}' is not one of {string.Join(", ", SupportedAlgorithms)}.");
            }
        }

        if (IsJwt)
        {
            ValidateJwt(errors, checkAlgorithms: !unsupported);
        }

        errors.ThrowIfAny();
    }

    /// <param name="errors">Where the invalid settings go.</param>
    /// <param name="checkAlgorithms">
    /// False when <see cref="AllowedAlgorithms"/> already lists an unsupported entry: whether the listed algorithms fit
    /// the configured keys is then moot, and saying so would only bury the one real error under a misleading second one.
    /// </param>
    private void ValidateJwt(SettingErrors errors, bool checkAlgorithms)
    {
        if (Issuers.Count == 0 || Issuers.Any(string.IsNullOrWhiteSpace))
        {
            errors.Add(nameof(Issuers), "must list the accepted token issuers (iss) in Jwt mode.");
        }

        if (Audiences.Count == 0 || Audiences.Any(string.IsNullOrWhiteSpace))
        {
            errors.Add(nameof(Audiences), "must list the accepted audiences (aud) in Jwt mode.");
        }

        byte[]? key = null;
        try
        {
            key = SigningKeyBytes();
        }
        catch (Microsoft.Extensions.Options.OptionsValidationException)
        {
            errors.Add(nameof(SigningKey), $"starts with '{Base64Prefix}' but the rest is not base64.");
        }

        if (key is not null && key.Length < MinSigningKeyBytes)
        {
            errors.Add(nameof(SigningKey), $"must be at least {MinSigningKeyBytes} bytes (was {key.Length}).");
        }

        if (key is null && !HasKeySet && string.IsNullOrEmpty(SigningKey))
        {
            errors.Add(nameof(Mode), $"Jwt mode needs keys: {Section}:{nameof(SigningKey)} (HS256), {Section}:{nameof(JwksPath)} or {Section}:{nameof(JwksUrl)}.");
        }

        if (!string.IsNullOrEmpty(JwksPath) && !string.IsNullOrEmpty(JwksUrl))
        {
            errors.Add(nameof(JwksUrl), $"set {nameof(JwksPath)} or {nameof(JwksUrl)}, not both.");
        }

        if (!string.IsNullOrEmpty(JwksUrl))
        {
            if (!Uri.TryCreate(JwksUrl, UriKind.Absolute, out Uri? uri) || !(uri.Scheme == Uri.UriSchemeHttps || (uri.Scheme == Uri.UriSchemeHttp && uri.IsLoopback)))
            {
                errors.Add(nameof(JwksUrl), $"'{JwksUrl}' must be an https URL (http only on a loopback address).");
            }
        }

        if (!string.IsNullOrEmpty(JwksPath) && !File.Exists(JwksPath))
        {
            errors.Add(nameof(JwksPath), $"'{JwksPath}' does not exist.");
        }

        if (!checkAlgorithms)
        {
            return;
        }

        IReadOnlyList<string> algorithms = EffectiveAlgorithms();
        if (algorithms.Count == 0)
        {
            errors.Add(nameof(AllowedAlgorithms), "no usable algorithm for the configured keys.");
        }

        bool symmetric = algorithms.Any(a => a.StartsWith("HS", StringComparison.Ordinal));
        bool asymmetric = algorithms.Any(a => !a.StartsWith("HS", StringComparison.Ordinal));
        if (symmetric && string.IsNullOrEmpty(SigningKey))
        {
            errors.Add(nameof(AllowedAlgorithms), $"lists an HS algorithm but no {nameof(SigningKey)} is set.");
        }

        if (asymmetric && !HasKeySet)
        {
            errors.Add(nameof(AllowedAlgorithms), $"lists an asymmetric algorithm but no {nameof(JwksPath)} or {nameof(JwksUrl)} is set.");
        }

    }

    /// <summary>
    /// Checks the settings that span sections: a token cookie needs an origin allow-list, or no request could ever
    /// use it (and the operator would believe cross-site requests were guarded).
    /// </summary>
    public void ValidateWithOrigins(ICollection<string> allowedOrigins)
    {
        Validate();
        if (IsJwt && !string.IsNullOrEmpty(CookieName) && allowedOrigins.Count == 0)
        {
            throw new Microsoft.Extensions.Options.OptionsValidationException(Section, typeof(AuthOptions),
                [$"{nameof(CookieName)} is set but Transport:AllowedOrigins is empty: the token cookie is only accepted from listed origins (the guard against cross-site WebSocket hijacking)."]);
        }
    }

    // RFC 6265 section 4.1.1: cookie-name = token (RFC 9110 tchar).
    private static bool IsCookieNameChar(char c) => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal);
}
