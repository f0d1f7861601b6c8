using Collab.Engine;
using Collab.Engine.Sequencing;
using Collab.Protocol.V1;

namespace Collab.Server.Sessions;

/// <summary>The one place that maps engine outcomes onto wire error codes and decides which are retryable.</summary>
internal static class ErrorCodes
{
    public static bool IsRetryable(ErrorCode code) => code is ErrorCode.Overloaded or ErrorCode.RateLimited or ErrorCode.Unavailable;

    public static ErrorCode FromSubmit(SubmitStatus status) => status switch
    {
        SubmitStatus.InvalidOp => ErrorCode.InvalidOp,
        SubmitStatus.OpDoesNotFit => ErrorCode.OpDoesNotFit,
        SubmitStatus.VersionFromFuture => ErrorCode.VersionFromFuture,
        SubmitStatus.VersionTooOld => ErrorCode.VersionTooOld,
        SubmitStatus.DedupeExpired => ErrorCode.VersionTooOld,
        SubmitStatus.Overloaded => ErrorCode.Overloaded,
        SubmitStatus.Fenced or SubmitStatus.Closed or SubmitStatus.Unavailable => ErrorCode.Unavailable,
        SubmitStatus.SeqAlreadyUsed => ErrorCode.SeqAlreadyUsed,
        SubmitStatus.AlreadyCommitted => ErrorCode.AlreadyCommitted,
        SubmitStatus.DocTooLarge => ErrorCode.DocTooLarge,
        _ => ErrorCode.Internal,
    };

    public static ErrorCode FromOt(OtErrorCode code) => code switch
    {
        OtErrorCode.OpTooLong => ErrorCode.OpDoesNotFit,
        OtErrorCode.TooLarge => ErrorCode.OpTooLarge,
        _ => ErrorCode.InvalidOp,
    };
}
