namespace Collab.Server;

/// <summary>
/// Starts work nobody awaits without losing its failure: <c>task.Forget(logger, "what it does")</c> in place of
/// <c>_ = task</c>. A failure is logged (an error: background work is not expected to throw); a cancellation is how
/// shutdown and closed connections stop work, so it is logged at Debug only. A task that already completed costs nothing.
/// </summary>
internal static partial class FireAndForget
{
    /// <summary>Observes <paramref name="task"/>: its failure, if any, is logged with <paramref name="operation"/>.</summary>
    public static void Forget(this Task task, ILogger logger, string operation)
    {
        // The task may complete between any two looks at it, so each path reads its state once: a task seen
        // unfinished and then finished successfully must not be taken for a failed one (it has no Exception).
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

    /// <summary>Observes <paramref name="task"/> (consumed exactly once, as a <see cref="ValueTask"/> must be).</summary>
    public static void Forget(this ValueTask task, ILogger logger, string operation)
    {
        if (task.IsCompletedSuccessfully)
        {
            // Consumes the result so a pooled IValueTaskSource is returned to its pool.
            task.GetAwaiter().GetResult();
            return;
        }

        task.AsTask().Forget(logger, operation);
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

    [LoggerMessage(1010, LogLevel.Error, "Background work '{Operation}' failed")]
    private static partial void Failed(ILogger logger, string operation, Exception exception);

    [LoggerMessage(1011, LogLevel.Debug, "Background work '{Operation}' was cancelled")]
    private static partial void Cancelled(ILogger logger, string operation);
}
