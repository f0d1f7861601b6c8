using Collab.Engine.Sequencing;
using Collab.Integration.Tests.Infrastructure;
using Collab.Server.Storage;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>
/// The single-node slice end to end: the real server in-process on loopback with the embedded store,
/// the real SDK, many clients typing at once while their connections are cut, and a restart mid-run.
/// </summary>
public sealed class SingleNodeEditingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Fifty_clients_on_five_documents_converge_through_random_disconnects()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await using InProcessServer server = await InProcessServer.StartAsync();
        await using var run = new EditingRun(() => server.WebSocketUri, documents: 5, clientsPerDocument: 10, output);
        await run.ConnectAsync(cts.Token);

        await run.EditAsync(TimeSpan.FromSeconds(5), dropEvery: TimeSpan.FromMilliseconds(100), cts.Token);
        await run.SettleAsync(TimeSpan.FromSeconds(45));
        var converged = await run.AssertConvergedAsync(cts.Token);

        Assert.True(run.Disconnects > 10, $"only {run.Disconnects} disconnects were forced");
        await server.StopAsync();
        run.AssertOpLog(docId => ReadLog(server.DataDirectory, docId), converged);
    }

    [Fact]
    public async Task Restarting_the_server_mid_run_loses_nothing_acknowledged()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await using InProcessServer server = await InProcessServer.StartAsync();
        await using var run = new EditingRun(() => server.WebSocketUri, documents: 5, clientsPerDocument: 10, output);
        await run.ConnectAsync(cts.Token);

        await run.EditAsync(TimeSpan.FromSeconds(6), dropEvery: TimeSpan.FromMilliseconds(300), cts.Token, midRun: async () =>
        {
            await server.StopAsync();
            await Task.Delay(300);
            await server.StartAgainAsync();
        });
        await run.SettleAsync(TimeSpan.FromSeconds(60));
        var converged = await run.AssertConvergedAsync(cts.Token);

        await server.StopAsync();
        run.AssertOpLog(docId => ReadLog(server.DataDirectory, docId), converged);
    }

    private static IReadOnlyList<OpRecord> ReadLog(string dataDirectory, string docId) =>
        DurabilityFaultTests.ReadLog(new StorageOptions { DataDirectory = dataDirectory }, docId);
}
