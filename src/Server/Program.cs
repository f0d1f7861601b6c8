using Collab.Server;
using Collab.Server.Hosting;
using Microsoft.Extensions.Options;

// Collab server: single node with the embedded store by default (see README "Configuration").
// Exit codes: 0 after a clean shutdown, 2 for invalid configuration (one line per invalid setting), 1 when the
// server could not start or run for another reason (the cause is printed; never an unhandled-exception abort).
try
{
    // The authentication mode is logged at start-up by the security layer (loudly when anonymous).
    await using var app = CollabServerHost.Build(args);

    // Before the host starts its listeners, sockets and workers: the threads that exist now get the scheduler slice, and
    // every thread started later (thread pool, socket engine, commit loop) inherits it from its creator.
    SchedulerSlice.Apply(
        app.Services.GetRequiredService<IOptions<SchedulingOptions>>().Value.SchedulerSlice,
        app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Collab.Server.Hosting.Scheduling"));
    await app.RunAsync();
    return 0;
}
catch (Exception ex) when (FindConfigurationError(ex) is { } invalid)
{
    foreach (string failure in invalid.Failures)
    {
        Console.Error.WriteLine($"collab: invalid configuration: {failure}");
    }

    return 2;
}
catch (Exception ex)
{
    Console.Error.WriteLine($"collab: the server stopped: {ex.GetType().Name}: {ex.Message}");
    Console.Error.WriteLine(ex);
    return 1;
}

// Start-up runs some validation inside DI and hosted-service start, which may wrap it (an AggregateException's
// InnerException is its first).
static OptionsValidationException? FindConfigurationError(Exception? ex)
{
    for (; ex is not null; ex = ex.InnerException)
    {
        if (ex is OptionsValidationException invalid)
        {
            return invalid;
        }
    }

    return null;
}
