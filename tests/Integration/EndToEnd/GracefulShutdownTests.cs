using System.Net.WebSockets;
using Collab.Integration.Tests.Infrastructure;
using Collab.Server.Storage;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>SIGTERM to the real process: clients get 1001, the op log is flushed, the process exits 0, and clients resume on the next start.</summary>
public sealed class GracefulShutdownTests(ITestOutputHelper output)
{
    [Fact]
    public async Task SIGTERM_drains_with_1001_exits_cleanly_and_keeps_every_acknowledged_op()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        string dataDirectory = Directory.CreateTempSubdirectory("collab-term-").FullName;
        var settings = new Dictionary<string, string> { ["Storage:DataDirectory"] = dataDirectory, ["Node:NodeId"] = "term-test" };
        await using ServerProcess server = await ServerProcess.StartAsync(settings);

        await using RawProtocolClient watcher = await RawProtocolClient.ConnectAsync(server.WebSocketUri);
        await using var run = new EditingRun(() => server.WebSocketUri, documents: 2, clientsPerDocument: 4, output);
        await run.ConnectAsync(cts.Token);

        Task<WebSocketCloseStatus?> watcherClosed = watcher.ReceiveCloseAsync();
        int exitCode = -1;
        await run.EditAsync(TimeSpan.FromSeconds(5), dropEvery: null, cts.Token, midRun: async () =>
        {
            exitCode = await server.StopAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, await watcherClosed); // 1001 going away
            await server.StartAgainAsync();
        });

        Assert.Equal(0, exitCode);
        await run.SettleAsync(TimeSpan.FromSeconds(60));
        var converged = await run.AssertConvergedAsync(cts.Token);
        await server.StopAsync();
        run.AssertOpLog(docId => DurabilityFaultTests.ReadLog(new StorageOptions { DataDirectory = dataDirectory }, docId), converged);
        Directory.Delete(dataDirectory, recursive: true);
    }
}
