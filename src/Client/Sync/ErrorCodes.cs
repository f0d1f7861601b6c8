using Collab.Protocol.V1;

namespace Collab.Client.Sync;

/// <summary>Turns the server's Error messages into the SDK's exceptions.</summary>
internal static class ErrorCodes
{
    /// <summary>The exception a refused request ends with; TYPE_MISMATCH is a <see cref="CollabTypeMismatchException"/>.</summary>
    public static CollabException ToException(Error error, string docId, string? requestedType = null)
    {
        if (error.Code == ErrorCode.TypeMismatch && requestedType is not null)
        {
            return new CollabTypeMismatchException(docId, requestedType, actualType: null, error.Message);
        }

        return new CollabServerException(error.Code, error.Message, error.Retryable, docId);
    }
}
