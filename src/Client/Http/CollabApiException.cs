using System.Net;

namespace Collab.Client;

/// <summary>
/// The HTTP API refused a request: an RFC 9457 problem (docs/API.md, "Errors") or, from something in between (a proxy),
/// an HTTP error without one. <see cref="Code"/> is the API's code (<c>VERSION_TOO_OLD</c>, <c>DOC_EXISTS</c>, ...);
/// <see cref="ErrorCode"/> the same as the wire protocol's code where the condition is one the socket has too. The common
/// cases have their own types: <see cref="CollabDocumentNotFoundException"/> (404), <see cref="CollabDocumentExistsException"/>
/// (409 on create), <see cref="CollabDocumentDeletedException"/> (410), <see cref="CollabAccessDeniedException"/> (401, 403)
/// and <see cref="CollabRateLimitedException"/> (429).
/// </summary>
public class CollabApiException : CollabException
{
    /// <summary>Created by the SDK from the response's status and problem fields.</summary>
    /// <param name="statusCode">The HTTP status.</param>
    /// <param name="code">The problem's <c>code</c>; null when the response was not a problem.</param>
    /// <param name="detail">The problem's <c>detail</c> (or the reason phrase).</param>
    /// <param name="retryable">Whether the same request may succeed later.</param>
    /// <param name="docId">The document concerned, if any.</param>
    /// <param name="retryAfter">The <c>Retry-After</c> the server asked for, if any.</param>
    /// <param name="earliestVersion">The problem's <c>earliestVersion</c> (a pruned history's start), if any.</param>
    /// <param name="version">The problem's <c>version</c> (e.g. the head for <c>VERSION_FROM_FUTURE</c>), if any.</param>
    internal CollabApiException(HttpStatusCode statusCode, string? code, string detail, bool retryable, string? docId,
        TimeSpan? retryAfter = null, long? earliestVersion = null, long? version = null)
        : base($"{(int)statusCode} {code ?? statusCode.ToString()}: {detail}", null)
    {
        StatusCode = statusCode;
        Code = code;
        ErrorCode = ApiErrorCodes.ToWire(code);
        Detail = detail;
        Retryable = retryable;
        DocId = docId;
        RetryAfter = retryAfter;
        EarliestVersion = earliestVersion;
        Version = version;
    }

    /// <summary>The HTTP status.</summary>
    public HttpStatusCode StatusCode { get; }

    /// <summary>
    /// The API's error code (<see cref="ApiErrorCodes"/> lists the HTTP-only ones; the others are the wire protocol's
    /// names, e.g. <c>VERSION_TOO_OLD</c>); null when the response carried no problem body.
    /// </summary>
    public string? Code { get; }

    /// <summary>The wire protocol's code for <see cref="Code"/>; <see cref="CollabErrorCode.Unknown"/> for an HTTP-only code or none.</summary>
    public CollabErrorCode ErrorCode { get; }

    /// <summary>The server's explanation.</summary>
    public string Detail { get; }

    /// <summary>The server's hint that the same request may succeed later (the SDK has retried it already, see <see cref="CollabHttpClientOptions.MaxRetries"/>).</summary>
    public bool Retryable { get; }

    /// <summary>The document concerned, if any.</summary>
    public string? DocId { get; }

    /// <summary>How long the server asked to wait before retrying (<c>Retry-After</c>), if it did.</summary>
    public TimeSpan? RetryAfter { get; }

    /// <summary>For <c>VERSION_TOO_OLD</c>: the earliest version still available.</summary>
    public long? EarliestVersion { get; }

    /// <summary>For <c>VERSION_FROM_FUTURE</c>: the document's head version; for a failed edit, the version the server reports.</summary>
    public long? Version { get; }
}

/// <summary>404 <c>DOC_NOT_FOUND</c>: no document has this id (the API never creates one implicitly; create it with <see cref="CollabHttpClient.CreateTextDocumentAsync"/>).</summary>
public sealed class CollabDocumentNotFoundException : CollabApiException
{
    /// <summary>Creates the exception.</summary>
    public CollabDocumentNotFoundException(string detail, string? docId)
        : base(HttpStatusCode.NotFound, ApiErrorCodes.DocNotFound, detail, retryable: false, docId)
    {
    }
}

/// <summary>409 <c>DOC_EXISTS</c>: a create found the id taken (or deleted and not yet purged).</summary>
public sealed class CollabDocumentExistsException : CollabApiException
{
    /// <summary>Creates the exception.</summary>
    public CollabDocumentExistsException(string detail, string? docId)
        : base(HttpStatusCode.Conflict, ApiErrorCodes.DocExists, detail, retryable: false, docId)
    {
    }
}

/// <summary>410 <c>DOC_DELETED</c>: the document was deleted; its id stays taken until retention removes its data.</summary>
public sealed class CollabDocumentDeletedException : CollabApiException
{
    /// <summary>Creates the exception.</summary>
    public CollabDocumentDeletedException(string detail, string? docId)
        : base(HttpStatusCode.Gone, "DOC_DELETED", detail, retryable: false, docId)
    {
    }
}

/// <summary>
/// 401 <c>UNAUTHORIZED</c> (no token, or an invalid or expired one: see <see cref="CollabHttpClientOptions.AccessTokenProvider"/>)
/// or 403 <c>FORBIDDEN</c> (the token grants no read or write right on the document).
/// </summary>
public sealed class CollabAccessDeniedException : CollabApiException
{
    /// <summary>Creates the exception.</summary>
    public CollabAccessDeniedException(HttpStatusCode statusCode, string? code, string detail, string? docId, string? challenge)
        : base(statusCode, code, detail, retryable: false, docId)
    {
        Challenge = challenge;
    }

    /// <summary>True for 401 (authentication failed), false for 403 (no right).</summary>
    public bool IsAuthenticationFailure => StatusCode == HttpStatusCode.Unauthorized;

    /// <summary>The 401's <c>WWW-Authenticate</c> challenge (e.g. <c>Bearer error="invalid_token"</c>), if any.</summary>
    public string? Challenge { get; }
}

/// <summary>429 <c>RATE_LIMITED</c>: over the caller's request or edit budget; <see cref="CollabApiException.RetryAfter"/> says how long to wait.</summary>
public sealed class CollabRateLimitedException : CollabApiException
{
    /// <summary>Creates the exception.</summary>
    public CollabRateLimitedException(string detail, string? docId, TimeSpan? retryAfter)
        : base(HttpStatusCode.TooManyRequests, "RATE_LIMITED", detail, retryable: true, docId, retryAfter)
    {
    }
}

/// <summary>The API's error codes that have no wire protocol counterpart (docs/API.md, "Errors").</summary>
public static class ApiErrorCodes
{
    /// <summary>404: no document has this id.</summary>
    public const string DocNotFound = "DOC_NOT_FOUND";

    /// <summary>404: no such route (an older server, or a wrong base address).</summary>
    public const string NotFound = "NOT_FOUND";

    /// <summary>409: a create found the id taken.</summary>
    public const string DocExists = "DOC_EXISTS";

    /// <summary>422: a create named a type the server does not know.</summary>
    public const string UnsupportedType = "UNSUPPORTED_TYPE";

    /// <summary>400: an export format the document's type has not (HTML of a <c>text-unicode</c> document).</summary>
    public const string UnsupportedFormat = "UNSUPPORTED_FORMAT";

    /// <summary>The wire code named <paramref name="code"/> (<c>VERSION_TOO_OLD</c> is <see cref="CollabErrorCode.VersionTooOld"/>); Unknown for any other.</summary>
    internal static CollabErrorCode ToWire(string? code)
    {
        if (string.IsNullOrEmpty(code) || !code.All(c => char.IsAsciiLetterUpper(c) || c == '_'))
        {
            return CollabErrorCode.Unknown;
        }

        // The API writes the proto's names without their prefix; the enum's names are the same words in Pascal case.
        string pascal = string.Concat(code.Split('_').Select(word => word.Length == 0 ? "" : word[..1] + word[1..].ToLowerInvariant()));
        return Enum.TryParse(pascal, ignoreCase: false, out CollabErrorCode wire) && Enum.IsDefined(wire) && wire != CollabErrorCode.Unknown
            ? wire
            : CollabErrorCode.Unknown;
    }
}
