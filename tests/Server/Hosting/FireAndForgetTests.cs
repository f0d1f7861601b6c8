using Collab.Server.Tests.Security.Infrastructure;
using Microsoft.Extensions.Logging;

namespace Collab.Server.Tests.Hosting;

/// <summary>
/// <see cref="FireAndForget"/> logs the failure of work nobody awaits, and nothing else. It once read a task's state
/// twice: a task that finished successfully between the two looks was taken for a failed one and its missing
/// Exception dereferenced, so closing a session (which forgets its detach tasks) threw NullReferenceException
/// out of the read loop (found by the client-message fuzzer on a loaded CI run).
/// </summary>
public sealed class FireAndForgetTests
{
    // The race itself spans a few instructions and cannot be provoked reliably from outside; what the fix
    // guarantees can be: a task seen completed is judged by its one status, and a success is not a failure.
    [Fact]
    public void A_task_that_ran_to_completion_is_observed_without_a_log_entry()
    {
        var logger = new RecordingLogger();

        FireAndForget.Observe(Task.CompletedTask, logger, "done");

        Assert.Empty(logger.Entries);
    }

    [Fact]
    public void A_failure_is_logged_as_an_error_with_its_exception_and_a_cancellation_at_debug()
    {
        var logger = new RecordingLogger();

        Task.FromException(new InvalidOperationException("boom")).Forget(logger, "failing work");
        Task.FromCanceled(new CancellationToken(canceled: true)).Forget(logger, "cancelled work");
        Task.FromException(new OperationCanceledException()).Forget(logger, "stopped work");

        Assert.Collection(
            logger.Entries,
            e => Assert.Equal((LogLevel.Error, 1010, "Background work 'failing work' failed"), (e.Level, e.Id.Id, e.Message)),
            e => Assert.Equal((LogLevel.Debug, 1011, "Background work 'cancelled work' was cancelled"), (e.Level, e.Id.Id, e.Message)),
            e => Assert.Equal((LogLevel.Debug, 1011, "Background work 'stopped work' was cancelled"), (e.Level, e.Id.Id, e.Message)));
    }
}
