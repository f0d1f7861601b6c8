using Collab.Server.Tests.Security.Infrastructure;
using Microsoft.Extensions.Logging;
using SdkFireAndForget = Collab.Client.Internal.FireAndForget;

namespace Collab.Client.Tests;

/// <summary>
/// The SDK's own <c>FireAndForget</c> (it cannot reference the server's): work nobody awaits (a close on redirect, a
/// reauthentication, a delayed retry) has its failure logged instead of lost, its cancellation at Debug, a success
/// not at all, whether the task ends before or after it is handed over.
/// </summary>
public sealed class SdkFireAndForgetTests
{
    [Fact]
    public void A_task_that_ran_to_completion_is_observed_without_a_log_entry()
    {
        var logger = new RecordingLogger();

        SdkFireAndForget.Forget(Task.CompletedTask, logger, "done");

        Assert.Empty(logger.Entries);
    }

    [Fact]
    public void A_failure_is_logged_as_an_error_with_its_exception_and_a_cancellation_at_debug()
    {
        var logger = new RecordingLogger();

        SdkFireAndForget.Forget(Task.FromException(new InvalidOperationException("boom")), logger, "failing work");
        SdkFireAndForget.Forget(Task.FromCanceled(new CancellationToken(canceled: true)), logger, "cancelled work");
        SdkFireAndForget.Forget(Task.FromException(new OperationCanceledException()), logger, "stopped work");

        Assert.Collection(
            logger.Entries,
            e => Assert.Equal((LogLevel.Error, 12, "Background work 'failing work' failed."), (e.Level, e.Id.Id, e.Message)),
            e => Assert.Equal((LogLevel.Debug, 13, "Background work 'cancelled work' was cancelled."), (e.Level, e.Id.Id, e.Message)),
            e => Assert.Equal((LogLevel.Debug, 13, "Background work 'stopped work' was cancelled."), (e.Level, e.Id.Id, e.Message)));
    }

    [Fact]
    public async Task A_task_that_fails_after_it_was_forgotten_is_logged_when_it_fails()
    {
        var logger = new RecordingLogger();
        var pending = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var succeeding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        SdkFireAndForget.Forget(pending.Task, logger, "late failure");
        SdkFireAndForget.Forget(succeeding.Task, logger, "late success");
        Assert.Empty(logger.Entries);
        succeeding.SetResult();
        pending.SetException(new IOException("socket gone"));

        // The continuation runs on the thread pool after SetException returns.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (logger.Entries.IsEmpty)
        {
            await Task.Delay(10, deadline.Token);
        }

        (LogLevel level, EventId id, string message) = Assert.Single(logger.Entries);
        Assert.Equal((LogLevel.Error, 12, "Background work 'late failure' failed."), (level, id.Id, message));
    }
}
