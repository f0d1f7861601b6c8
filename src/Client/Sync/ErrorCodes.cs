using Collab.Protocol.V1;

namespace Collab.Client.Sync;

/// <summary>Maps the wire's generated <see cref="ErrorCode"/> to the SDK's public <see cref="CollabErrorCode"/>, and errors to exceptions.</summary>
internal static class ErrorCodes
{
    /// <summary>The public code of a wire code; <see cref="CollabErrorCode.Unknown"/> for one this SDK does not know.</summary>
    public static CollabErrorCode ToPublic(ErrorCode code) => code switch
    {
        ErrorCode.BadMessage => CollabErrorCode.BadMessage,
        ErrorCode.UnknownMessage => CollabErrorCode.UnknownMessage,
        ErrorCode.NotHello => CollabErrorCode.NotHello,
        ErrorCode.ProtocolVersion => CollabErrorCode.ProtocolVersion,
        ErrorCode.InvalidDocId => CollabErrorCode.InvalidDocId,
        ErrorCode.NotSubscribed => CollabErrorCode.NotSubscribed,
        ErrorCode.InvalidOp => CollabErrorCode.InvalidOp,
        ErrorCode.OpDoesNotFit => CollabErrorCode.OpDoesNotFit,
        ErrorCode.VersionFromFuture => CollabErrorCode.VersionFromFuture,
        ErrorCode.VersionTooOld => CollabErrorCode.VersionTooOld,
        ErrorCode.OpTooLarge => CollabErrorCode.OpTooLarge,
        ErrorCode.DocTooLarge => CollabErrorCode.DocTooLarge,
        ErrorCode.Overloaded => CollabErrorCode.Overloaded,
        ErrorCode.RateLimited => CollabErrorCode.RateLimited,
        ErrorCode.Unauthorized => CollabErrorCode.Unauthorized,
        ErrorCode.Forbidden => CollabErrorCode.Forbidden,
        ErrorCode.TooManySubscriptions => CollabErrorCode.TooManySubscriptions,
        ErrorCode.Unavailable => CollabErrorCode.Unavailable,
        ErrorCode.Internal => CollabErrorCode.Internal,
        ErrorCode.SeqAlreadyUsed => CollabErrorCode.SeqAlreadyUsed,
        ErrorCode.AlreadyCommitted => CollabErrorCode.AlreadyCommitted,
        ErrorCode.DocDeleted => CollabErrorCode.DocDeleted,
        ErrorCode.TypeMismatch => CollabErrorCode.TypeMismatch,
        _ => CollabErrorCode.Unknown,
    };

    /// <summary>The exception a refused request ends with; TYPE_MISMATCH for a known requested type is a <see cref="CollabTypeMismatchException"/>.</summary>
    public static CollabException ToException(Error error, string? docId, string? requestedType = null)
    {
        if (error.Code == ErrorCode.TypeMismatch && requestedType is not null && docId is not null)
        {
            return new CollabTypeMismatchException(docId, requestedType, actualType: null, error.Message);
        }

        return new CollabServerException(ToPublic(error.Code), error.Message, error.Retryable, docId);
    }
}
