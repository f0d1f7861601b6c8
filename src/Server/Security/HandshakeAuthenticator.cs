using System.Text;
using Collab.Server.Transport;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace Collab.Server.Security;

/// <summary>Where a token was found on the upgrade request.</summary>
internal enum TokenSource
{
    None,
    AuthorizationHeader,
    SubProtocol,
    QueryParameter,
    Cookie,
}

/// <summary>
/// Authenticates upgrade requests: finds the token (Authorization: Bearer, then a <c>bearer.&lt;token&gt;</c>
/// subprotocol, then the <c>access_token</c> query parameter, then the <see cref="AuthOptions.CookieName"/> cookie
/// of a request from an allow-listed origin) and validates it. Runs before the 101, so a missing or bad token is an
/// HTTP 401 and never a half-open session.
/// </summary>
internal sealed class HandshakeAuthenticator
{
    /// <summary>Prefix of the offered subprotocol that carries a token (docs/PROTOCOL.md 1.1). Never selected.</summary>
    public const string BearerSubProtocolPrefix = "bearer.";

    private const string QueryParameter = "access_token";

    private readonly AuthOptions _options;
    private readonly TokenValidator? _validator;
    private readonly SecurityLog _log;

    public HandshakeAuthenticator(AuthOptions options, TokenValidator? validator, SecurityLog log)
    {
        if (options.IsJwt && validator is null)
        {
            throw new ArgumentException("Jwt mode needs a token validator.", nameof(validator));
        }

        _options = options;
        _validator = validator;
        _log = log;
    }

    public async ValueTask<AuthResult> AuthenticateAsync(HandshakeRequest request, CancellationToken cancellationToken)
    {
        if (!_options.IsJwt)
        {
            return new AuthResult(SessionPrincipal.Anonymous, AuthFailure.None, "anonymous");
        }

        (string? token, TokenSource source) = FindToken(request, _options.AllowQueryToken, _options.CookieName);
        AuthResult result = source == TokenSource.None
            ? AuthResult.Fail(AuthFailure.Missing, MissingTokenDescription())
            : await _validator!.ValidateAsync(token, cancellationToken).ConfigureAwait(false);
        if (result.Succeeded)
        {
            SecurityMetrics.AuthSucceeded(AuthStage.Handshake);
        }
        else
        {
            SecurityMetrics.AuthFailed(AuthStage.Handshake, result.Failure);
            _log.TokenRefused(AuthStage.Handshake, request.RemoteEndPoint?.ToString() ?? "?", result.Failure, result.Description);
        }

        return result;
    }

    /// <summary>The rejection answered for a failed authentication: 401 or 403 with an RFC 6750 challenge.</summary>
    public static HandshakeDecision Reject(in AuthResult result)
    {
        string challenge = result.Failure switch
        {
            AuthFailure.Missing => "Bearer realm=\"collab\"",
            _ when result.HttpStatus == 403 => $"Bearer realm=\"collab\", error=\"insufficient_scope\", error_description=\"{HeaderSafe(result.Description)}\"",
            _ => $"Bearer realm=\"collab\", error=\"invalid_token\", error_description=\"{HeaderSafe(result.Description)}\"",
        };
        return HandshakeDecision.Reject(result.HttpStatus, result.Description, challenge: challenge);
    }

    /// <summary>
    /// Finds the token in order of preference; the query parameter only when allowed; the cookie only when
    /// <paramref name="cookieName"/> is set and the request comes from an allow-listed origin: a cookie travels with
    /// every request the browser makes, including a WebSocket opened by another site's page (cross-site WebSocket
    /// hijacking), and the Origin header is what tells the application's own pages apart.
    /// </summary>
    internal static (string? Token, TokenSource Source) FindToken(HandshakeRequest request, bool allowQuery, string? cookieName = null)
    {
        if (request.Authorization is { } authorization)
        {
            ReadOnlySpan<char> value = authorization.AsSpan().Trim();
            if (value.Length > 7 && value[..7].Equals("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                string token = value[7..].Trim().ToString();
                if (token.Length > 0)
                {
                    return (token, TokenSource.AuthorizationHeader);
                }
            }
        }

        foreach (string offered in request.SubProtocols)
        {
            if (offered.Length > BearerSubProtocolPrefix.Length && offered.StartsWith(BearerSubProtocolPrefix, StringComparison.Ordinal))
            {
                return (offered[BearerSubProtocolPrefix.Length..], TokenSource.SubProtocol);
            }
        }

        if (allowQuery && request.Query.Length > 1)
        {
            Dictionary<string, StringValues> query = QueryHelpers.ParseQuery(request.Query);
            if (query.TryGetValue(QueryParameter, out StringValues values) && values.Count == 1 && !string.IsNullOrEmpty(values[0]))
            {
                return (values[0], TokenSource.QueryParameter);
            }
        }

        if (!string.IsNullOrEmpty(cookieName) && request.OriginAllowListed && FindCookie(request.Cookie, cookieName) is { } cookie)
        {
            return (cookie, TokenSource.Cookie);
        }

        return (null, TokenSource.None);
    }

    /// <summary>The value of the first cookie named <paramref name="name"/> (RFC 6265 syntax, parsed by ASP.NET Core), unquoted.</summary>
    internal static string? FindCookie(string? header, string name)
    {
        if (string.IsNullOrEmpty(header) || !CookieHeaderValue.TryParseList([header], out IList<CookieHeaderValue>? cookies))
        {
            return null;
        }

        foreach (CookieHeaderValue cookie in cookies)
        {
            if (cookie.Name.Equals(name, StringComparison.Ordinal))
            {
                string value = HeaderUtilities.RemoveQuotes(cookie.Value).ToString();
                return value.Length > 0 ? value : null;
            }
        }

        return null;
    }

    private string MissingTokenDescription()
    {
        var places = new List<string> { "Authorization: Bearer", "a bearer.<token> subprotocol" };
        if (_options.AllowQueryToken)
        {
            places.Add("access_token");
        }

        if (!string.IsNullOrEmpty(_options.CookieName))
        {
            places.Add($"the {_options.CookieName} cookie from an allowed origin");
        }

        return $"no access token ({string.Join(", ", places)})";
    }

    /// <summary>Keeps a description inside a quoted-string of printable ASCII (RFC 6750 error_description).</summary>
    private static string HeaderSafe(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (char c in text)
        {
            builder.Append(c is >= ' ' and <= '~' and not '"' and not '\\' ? c : '?');
        }

        return builder.ToString();
    }
}
