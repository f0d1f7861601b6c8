using System.Collections.Frozen;
using System.Reflection;
using Collab.Protocol.V1;
using Google.Protobuf.Reflection;
using Collab.Server.Sessions;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Collab.Server.Api;

/// <summary>
/// RFC 9457 problem details for every API error, each with a <c>code</c>: the wire protocol's error name where the
/// condition is one the socket has too (docs/PROTOCOL.md section 9, e.g. <c>VERSION_TOO_OLD</c>), and an HTTP-only name
/// otherwise (<c>DOC_NOT_FOUND</c>, <c>DOC_EXISTS</c>, <c>UNSUPPORTED_TYPE</c>, <c>UNSUPPORTED_FORMAT</c>). Also
/// <c>retryable</c>, as on the wire. docs/API.md lists them.
/// </summary>
internal static class ApiProblem
{
    /// <summary>Problem types are URNs named after the code (RFC 9457 allows non-resolvable type URIs); docs/API.md lists them.</summary>
    private const string TypeBase = "urn:collab:error:";

    private static readonly FrozenDictionary<ErrorCode, string> s_names = Enum.GetValues<ErrorCode>().ToFrozenDictionary(
        code => code,
        code => typeof(ErrorCode).GetField(code.ToString())!.GetCustomAttribute<OriginalNameAttribute>()!.Name.Replace("ERROR_CODE_", "", StringComparison.Ordinal));

    /// <summary>A problem for a wire error code, with the HTTP status that code maps to.</summary>
    public static ProblemHttpResult Wire(ErrorCode code, string detail, IDictionary<string, object?>? extensions = null) =>
        Create(StatusOf(code), WireName(code), detail, ErrorCodes.IsRetryable(code), extensions);

    /// <summary>A problem with an HTTP-only code.</summary>
    public static ProblemHttpResult Http(int status, string code, string detail, IDictionary<string, object?>? extensions = null) =>
        Create(status, code, detail, retryable: false, extensions);

    public static ProblemHttpResult NotFound(string docId) =>
        Http(StatusCodes.Status404NotFound, "DOC_NOT_FOUND", $"Document '{docId}' does not exist (create it with PUT).");

    public static ProblemHttpResult Deleted(string docId) =>
        Wire(ErrorCode.DocDeleted, $"Document '{docId}' was deleted.");

    public static ProblemHttpResult BadRequest(string detail) => Wire(ErrorCode.BadMessage, detail);

    /// <summary>The wire name of a code, the proto's name without its prefix: <c>ERROR_CODE_VERSION_TOO_OLD</c> is <c>VERSION_TOO_OLD</c>.</summary>
    public static string WireName(ErrorCode code) => s_names.TryGetValue(code, out string? name) ? name : "INTERNAL";

    /// <summary>The HTTP status a wire code is answered with.</summary>
    public static int StatusOf(ErrorCode code) => code switch
    {
        ErrorCode.BadMessage or ErrorCode.InvalidDocId or ErrorCode.InvalidOp => StatusCodes.Status400BadRequest,
        ErrorCode.Unauthorized => StatusCodes.Status401Unauthorized,
        ErrorCode.Forbidden => StatusCodes.Status403Forbidden,
        ErrorCode.VersionFromFuture or ErrorCode.SeqAlreadyUsed => StatusCodes.Status409Conflict,
        ErrorCode.VersionTooOld or ErrorCode.DocDeleted => StatusCodes.Status410Gone,
        ErrorCode.OpTooLarge => StatusCodes.Status413PayloadTooLarge,
        ErrorCode.OpDoesNotFit or ErrorCode.DocTooLarge => StatusCodes.Status422UnprocessableEntity,
        ErrorCode.RateLimited => StatusCodes.Status429TooManyRequests,
        ErrorCode.Overloaded or ErrorCode.Unavailable => StatusCodes.Status503ServiceUnavailable,
        _ => StatusCodes.Status500InternalServerError,
    };

    private static ProblemHttpResult Create(int status, string code, string detail, bool retryable, IDictionary<string, object?>? extensions)
    {
        var all = new Dictionary<string, object?>(StringComparer.Ordinal) { ["code"] = code, ["retryable"] = retryable };
        if (extensions is not null)
        {
            foreach ((string key, object? value) in extensions)
            {
                all[key] = value;
            }
        }

        return TypedResults.Problem(
            detail: detail,
            statusCode: status,
            title: code,
            type: TypeBase + code.ToLowerInvariant().Replace('_', '-'),
            extensions: all);
    }
}
