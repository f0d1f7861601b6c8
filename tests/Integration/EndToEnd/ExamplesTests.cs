using Collab.Integration.Tests.Infrastructure;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>
/// The README's SDK example (examples/QuickStart, which the README quotes verbatim) run as a newcomer runs it, against
/// a real server: it compiles, connects, and prints what the README says, bob seeing alice's edit through Changed.
/// </summary>
public sealed class ExamplesTests
{
    [Fact]
    public async Task The_quick_start_runs_against_a_real_server()
    {
        await using InProcessServer server = await InProcessServer.StartAsync();
        (int exitCode, string stdout, string stderr) = await ServerProcess.RunToExitAsync(
            [server.WebSocketUri.ToString()],
            timeout: TimeSpan.FromSeconds(60),
            assembly: ServerProcess.BuildOutput("examples/QuickStart", "Collab.Examples.QuickStart"));

        Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{stderr}");
        Assert.Contains("bob sees \"Hello, \" (version 1)", stdout, StringComparison.Ordinal);
        Assert.EndsWith("alice has \"Hello, \", bob has \"Hello, \"", stdout.TrimEnd(), StringComparison.Ordinal);
    }
}
