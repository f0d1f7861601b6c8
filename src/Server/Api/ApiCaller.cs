using System.Collections.Frozen;
using System.Globalization;
using System.Net;
using System.Threading.RateLimiting;
using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Transport;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Collab.Server.Api;

/// <summary>
/// Who is calling the API and whether they may: the same token check as the WebSocket handshake (Authorization: Bearer,
/// <c>access_token</c> where <c>Auth:AllowQueryToken</c> allows it, or the <c>Auth:CookieName</c> cookie from a page of an
/// allowed origin, see <see cref="FromTrustedPage"/>) through the existing
/// <see cref="HandshakeAuthenticator"/>, the same per-document rights (read for GET, write for PUT, POST and DELETE), and
/// the same rate budgets as a connection: every request takes one from the caller's message budget
/// (<c>Limits:MessagesPerSecond</c> / <c>MessageBurst</c>), every edit one from its op budget
/// (<c>Limits:UserOpsPerSecond</c> / <c>UserOpsBurst</c>). A caller is its user (JWT) or, on an anonymous server, its
/// address (IPv6 per /64; loopback exempt when <c>Limits:ExemptLoopback</c>). Budgets are System.Threading.RateLimiting
/// token buckets per caller, dropped once idle.
/// </summary>
internal sealed class ApiCaller : IDisposable
{
    private readonly SecurityServices _security;
    private readonly PartitionedRateLimiter<string>? _requests;
    private readonly PartitionedRateLimiter<string>? _edits;
    private readonly FrozenSet<string> _allowedOrigins;

    public ApiCaller(SecurityServices security, IEnumerable<string> allowedOrigins)
    {
        _security = security;
        _allowedOrigins = allowedOrigins.ToFrozenSet(StringComparer.OrdinalIgnoreCase);
        LimitsOptions limits = security.Limits;
        _requests = Create(limits.MessagesPerSecond, limits.MessageBurst);
        _edits = Create(limits.UserOpsPerSecond, limits.UserOpsBurst);
    }

    /// <summary>
    /// Authenticates the request and checks the right on <paramref name="docId"/> (null: no document, e.g. a listing) and
    /// the rate budgets; the principal, or the problem to answer.
    /// </summary>
    public async ValueTask<(SessionPrincipal? Principal, IResult? Refusal)> AuthorizeAsync(HttpContext context, string? docId, bool write)
    {
        HttpRequest request = context.Request;
        IPEndPoint? remote = context.Connection.RemoteIpAddress is { } address ? new IPEndPoint(address, context.Connection.RemotePort) : null;
        var handshake = new HandshakeRequest
        {
            Path = request.Path.Value ?? "",
            Query = request.QueryString.Value ?? "",
            Authorization = request.Headers.Authorization.Count == 1 ? request.Headers.Authorization[0] : null,
            Origin = request.Headers.Origin.Count == 1 ? request.Headers.Origin[0] : null,
            Cookie = request.Headers.Cookie.Count == 0 ? null : string.Join("; ", request.Headers.Cookie.ToArray()),
            OriginAllowListed = FromTrustedPage(request),
            RemoteEndPoint = remote,
        };
        AuthResult auth = await _security.Authenticator.AuthenticateAsync(handshake, context.RequestAborted).ConfigureAwait(false);
        if (!auth.Succeeded)
        {
            HandshakeDecision rejection = HandshakeAuthenticator.Reject(auth);
            if (rejection.Challenge is { } challenge)
            {
                context.Response.Headers.WWWAuthenticate = challenge;
            }

            return (null, ApiProblem.Wire(auth.HttpStatus == 403 ? ErrorCode.Forbidden : ErrorCode.Unauthorized, auth.Description));
        }

        SessionPrincipal principal = auth.Principal!;
        if (docId is not null && !(write ? principal.Rights.CanWrite(docId) : principal.Rights.CanRead(docId)))
        {
            SecurityMetrics.Forbidden.WithLabels(write ? "api_write" : "api_read").Inc();
            return (principal, ApiProblem.Wire(ErrorCode.Forbidden, $"No right to {(write ? "write" : "read")} document '{docId}'."));
        }

        string? caller = CallerKey(principal, remote);
        if (caller is not null && (Refuse(context, _requests, caller, LimitKind.Messages) ?? (write ? Refuse(context, _edits, caller, LimitKind.OpsUser) : null)) is { } limited)
        {
            return (principal, limited);
        }

        return (principal, null);
    }

    /// <summary>
    /// Whether the request comes from a page the token cookie (<c>Auth:CookieName</c>) may be honoured for, the guard
    /// against cross-site request forgery that the socket's handshake applies too: its <c>Origin</c> is one of
    /// <c>Transport:AllowedOrigins</c>, or, for the requests a browser sends without an Origin (a same-origin GET), its
    /// <c>Sec-Fetch-Site</c> is <c>same-origin</c>. Page scripts can set neither header (both are forbidden request
    /// headers), so another site's page cannot make a browser send the cookie with either.
    /// </summary>
    private bool FromTrustedPage(HttpRequest request)
    {
        string? origin = request.Headers.Origin.Count == 1 ? request.Headers.Origin[0] : null;
        if (origin is not null)
        {
            return _allowedOrigins.Contains(origin);
        }

        return _allowedOrigins.Count > 0 && string.Equals(request.Headers["Sec-Fetch-Site"], "same-origin", StringComparison.OrdinalIgnoreCase);
    }

    public void Dispose()
    {
        _requests?.Dispose();
        _edits?.Dispose();
    }

    /// <summary>The budget key: the user, or the client address on an anonymous server; null when not limited (loopback).</summary>
    private string? CallerKey(SessionPrincipal principal, IPEndPoint? remote)
    {
        if (principal.UserId is { } user)
        {
            return "u:" + user;
        }

        if (remote is null || (_security.Limits.ExemptLoopback && ClientAddress.IsLoopback(remote.Address)))
        {
            return null;
        }

        return "a:" + ClientAddress.KeyOf(remote.Address).ToString(CultureInfo.InvariantCulture);
    }

    private static ProblemHttpResult? Refuse(HttpContext context, PartitionedRateLimiter<string>? limiter, string caller, LimitKind kind)
    {
        if (limiter is null)
        {
            return null;
        }

        using RateLimitLease lease = limiter.AttemptAcquire(caller);
        if (lease.IsAcquired)
        {
            return null;
        }

        SecurityMetrics.Rejected(kind);
        int retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
        context.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
        return ApiProblem.Wire(ErrorCode.RateLimited, kind == LimitKind.Messages ? "Too many requests; slow down." : "Too many edits; slow down.");
    }

    /// <summary>A token bucket per caller of <paramref name="perSecond"/> tokens a second and <paramref name="burst"/> at most; null when 0 (off).</summary>
    private static PartitionedRateLimiter<string>? Create(double perSecond, int burst)
    {
        if (perSecond <= 0)
        {
            return null;
        }

        // One token per period: fractional rates (0.5/s) become a 2 s period, high ones a short period.
        TimeSpan period = TimeSpan.FromSeconds(1 / perSecond);
        return PartitionedRateLimiter.Create<string, string>(caller => RateLimitPartition.GetTokenBucketLimiter(caller, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst,
            TokensPerPeriod = 1,
            ReplenishmentPeriod = period < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : period,
            QueueLimit = 0,
            AutoReplenishment = true,
        }));
    }
}
