using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Collab.Server.Transport;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Primitives;

namespace Collab.Server.Security;

/// <summary>
/// <c>POST /admin/revoke?jti=&lt;token id&gt;</c> or <c>?sub=&lt;user&gt;</c>, optionally <c>&amp;ttl=&lt;seconds&gt;</c>, with
/// <c>Authorization: Bearer &lt;Auth:AdminToken&gt;</c>: adds a revocation on every node and closes the matching
/// sessions at once. Served on the public port's HTTP pipeline only when an admin token is configured; the token is
/// compared in constant time. Keep the admin token out of clients: it is an operator credential.
/// </summary>
internal sealed class AdminEndpoints
{
    public const string RevokePath = "/admin/revoke";

    /// <summary>Longest revocation accepted through the endpoint.</summary>
    public static readonly TimeSpan MaxTtl = TimeSpan.FromDays(30);

    private const string TextPlain = "text/plain; charset=utf-8";

    private readonly byte[]? _adminTokenHash;
    private readonly RevocationList _revocations;
    private readonly AuthOptions _options;
    private readonly TimeProvider _time;
    private readonly SecurityLog _log;

    public AdminEndpoints(AuthOptions options, RevocationList revocations, TimeProvider time, SecurityLog log)
    {
        _options = options;
        _revocations = revocations;
        _time = time;
        _log = log;
        _adminTokenHash = string.IsNullOrEmpty(options.AdminToken) ? null : SHA256.HashData(Encoding.UTF8.GetBytes(options.AdminToken));
    }

    /// <summary>Whether an admin token is configured (otherwise nothing is served).</summary>
    public bool IsEnabled => _adminTokenHash is not null;

    /// <summary>Maps <c>POST /admin/revoke</c> when an admin token is configured.</summary>
    public void Map(IEndpointRouteBuilder endpoints)
    {
        if (!IsEnabled)
        {
            return;
        }

        endpoints.MapPost(RevokePath, async (HttpContext context) =>
        {
            PlainHttpResponse answer = await RevokeAsync(context.Request.Headers.Authorization.ToString(), context.Request.QueryString.Value ?? "", context.RequestAborted).ConfigureAwait(false);
            await answer.WriteToAsync(context.Response, context.RequestAborted).ConfigureAwait(false);
        }).ExcludeFromDescription();
    }

    internal async ValueTask<PlainHttpResponse> RevokeAsync(string? authorization, string queryString, CancellationToken cancellationToken)
    {
        if (!IsAdmin(authorization))
        {
            _log.AdminRefused("missing or wrong admin token");
            return Text(401, "admin token required (Authorization: Bearer <Auth:AdminToken>)");
        }

        Dictionary<string, StringValues> query = QueryHelpers.ParseQuery(queryString);
        string? jti = Single(query, "jti");
        string? sub = Single(query, "sub");
        if ((jti is null) == (sub is null))
        {
            return Text(400, "give exactly one of jti=<token id> or sub=<user id>");
        }

        string value = (jti ?? sub)!;
        if (value.Length > TokenValidator.MaxSubjectLength)
        {
            return Text(400, $"the id is longer than {TokenValidator.MaxSubjectLength} characters");
        }

        TimeSpan ttl = _options.RevocationTtl;
        if (Single(query, "ttl") is { } ttlText)
        {
            if (!int.TryParse(ttlText, NumberStyles.None, CultureInfo.InvariantCulture, out int seconds) || seconds <= 0 || TimeSpan.FromSeconds(seconds) > MaxTtl)
            {
                return Text(400, $"ttl must be a number of seconds between 1 and {(int)MaxTtl.TotalSeconds}");
            }

            ttl = TimeSpan.FromSeconds(seconds);
        }

        var entry = new RevocationEntry(jti is not null ? RevocationKind.TokenId : RevocationKind.User, value, _time.GetUtcNow() + ttl);
        try
        {
            await _revocations.RevokeAsync(entry, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Already in force here (RevokeAsync applies locally first); the operator must retry for the other nodes.
            _log.RevocationPublishFailed(ex);
            return Text(503, "revoked on this node, but the other nodes could not be told; retry");
        }

        return Text(200, $"revoked {(jti is not null ? "jti" : "sub")} {value} until {entry.ExpiresAt:O}");
    }

    private bool IsAdmin(string? authorization)
    {
        if (_adminTokenHash is null || authorization is null || !authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        // Hashing first makes the comparison constant-time regardless of the presented token's length.
        byte[] presented = SHA256.HashData(Encoding.UTF8.GetBytes(authorization[7..].Trim()));
        return CryptographicOperations.FixedTimeEquals(presented, _adminTokenHash);
    }

    private static string? Single(Dictionary<string, StringValues> query, string name) =>
        query.TryGetValue(name, out StringValues values) && values.Count == 1 && !string.IsNullOrEmpty(values[0]) ? values[0] : null;

    private static PlainHttpResponse Text(int status, string body) => new(status, TextPlain, Encoding.UTF8.GetBytes(body + "\n"));
}
