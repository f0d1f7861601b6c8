using Microsoft.Extensions.Logging;

namespace Collab.Client.Internal;

/// <summary>
/// Starts work nobody awaits without losing its failure: <c>task.Forget(logger, "what it does")</c> in place of
/// <c>_ = task</c>. The SDK's copy of the server's helper (the SDK cannot reference the server): a failure is logged as an
/// error, a cancellation (how a closed connection stops its work) at Debug only; a task already finished costs nothing.
/// </summary>
internal static partial class FireAndForget
{
    /// <summary>Observes <paramref name="task"/>: its failure, if any, is logged with <paramref name="operation"/>.</summary>
    public static void Forget(this Task task, ILogger logger, string operation)
    {
        // The task may complete between two looks at it, so each path reads its state once.
        if (task.IsCompleted)
        {
            Observe(task, logger, operation);
            return;
        }

        task.ContinueWith(
            static (completed, state) =>
            {
                var (log, what) = ((ILogger, string))state!;
                Observe(completed, log, what);
            },
            (logger, operation),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously | TaskContinuationOptions.NotOnRanToCompletion,
            TaskScheduler.Default);
    }

    /// <summary>Logs how a completed <paramref name="task"/> ended; a success logs nothing.</summary>
    internal static void Observe(Task task, ILogger logger, string operation)
    {
        switch (task.Status)
        {
            case TaskStatus.RanToCompletion:
                return;
            case TaskStatus.Canceled:
                Cancelled(logger, operation);
                return;
        }

        AggregateException aggregate = task.Exception!;
        Exception failure = aggregate.InnerExceptions.Count == 1 ? aggregate.InnerException! : aggregate;
        if (failure is OperationCanceledException)
        {
            Cancelled(logger, operation);
            return;
        }

        Failed(logger, operation, failure);
    }

    [LoggerMessage(12, LogLevel.Error, "Background work '{Operation}' failed.")]
    private static partial void Failed(ILogger logger, string operation, Exception exception);

    [LoggerMessage(13, LogLevel.Debug, "Background work '{Operation}' was cancelled.")]
    private static partial void Cancelled(ILogger logger, string operation);
}
