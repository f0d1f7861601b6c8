using System.Net;
using Collab.Engine.Sequencing;
using Collab.Integration.Tests.Infrastructure;
using Collab.Server.Storage;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>
/// The promises "ack after durable" and "resume, never lose" under the faults that break naive
/// servers: the database going away under load, and the server being SIGKILLed under load.
/// </summary>
public sealed class DurabilityFaultTests(ITestOutputHelper output)
{
    [Fact]
    public async Task PostgreSQL_outage_holds_acks_back_keeps_sessions_and_recovers_without_loss()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await using PostgresServer postgres = await PostgresServer.StartAsync(cancellationToken: cts.Token);
        string connectionString = await postgres.CreateDatabaseAsync(cancellationToken: cts.Token);
        await using InProcessServer server = await InProcessServer.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Storage:Provider"] = "Postgres",
            ["Storage:PostgresConnectionString"] = connectionString,
            ["Storage:RetryMaxDelay"] = "00:00:00.500",
        });
        await using var run = new EditingRun(() => server.WebSocketUri, documents: 4, clientsPerDocument: 5, output);
        await run.ConnectAsync(cts.Token);
        int connectsBefore = run.Connects;

        long ackedBeforeOutage = 0, ackedDuringOutage = 0;
        bool sawNotReady = false;
        await run.EditAsync(TimeSpan.FromSeconds(8), dropEvery: null, cts.Token, midRun: async () =>
        {
            await postgres.StopAsync(PostgresStopMode.Fast, cts.Token);
            await Task.Delay(500, cts.Token); // commits in flight at the stop fail and start retrying
            ackedBeforeOutage = run.AckCount;
            var outage = System.Diagnostics.Stopwatch.StartNew();
            while (outage.Elapsed < TimeSpan.FromSeconds(3))
            {
                sawNotReady |= await ReadyStatusAsync(server.HttpUri) == HttpStatusCode.ServiceUnavailable;
                await Task.Delay(200, cts.Token);
            }

            ackedDuringOutage = run.AckCount - ackedBeforeOutage;
            await postgres.StartAsync(cts.Token);
        });

        await run.SettleAsync(TimeSpan.FromSeconds(60));
        var converged = await run.AssertConvergedAsync(cts.Token);
        Assert.True(sawNotReady, "/readyz never reported not-ready while PostgreSQL was down");
        Assert.Equal(0, ackedDuringOutage);
        Assert.Equal(HttpStatusCode.OK, await ReadyStatusAsync(server.HttpUri));
        Assert.Equal(connectsBefore, run.Connects); // sessions stayed open through the outage

        await server.StopAsync();
        run.AssertOpLog(docId => ReadLog(new StorageOptions { Provider = StorageProvider.Postgres, PostgresConnectionString = connectionString }, docId), converged);
    }

    [Theory]
    [InlineData("Sqlite")]
    [InlineData("Postgres")]
    public async Task SIGKILL_under_load_loses_no_acknowledged_op_and_clients_resume(string provider)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await using PostgresServer? postgres = provider == "Postgres" ? await PostgresServer.StartAsync(cancellationToken: cts.Token) : null;
        string dataDirectory = Directory.CreateTempSubdirectory("collab-kill-").FullName;
        var storage = new StorageOptions { DataDirectory = dataDirectory };
        var settings = new Dictionary<string, string> { ["Storage:DataDirectory"] = dataDirectory, ["Node:NodeId"] = "kill-test" };
        if (postgres is not null)
        {
            storage.Provider = StorageProvider.Postgres;
            storage.PostgresConnectionString = await postgres.CreateDatabaseAsync(cancellationToken: cts.Token);
            settings["Storage:Provider"] = "Postgres";
            settings["Storage:PostgresConnectionString"] = storage.PostgresConnectionString;
        }

        await using ServerProcess server = await ServerProcess.StartAsync(settings);
        await using var run = new EditingRun(() => server.WebSocketUri, documents: 4, clientsPerDocument: 5, output);
        await run.ConnectAsync(cts.Token);

        await run.EditAsync(TimeSpan.FromSeconds(8), dropEvery: null, cts.Token, midRun: async () =>
        {
            long acked = run.AckCount;
            await server.KillAsync();
            output.WriteLine($"SIGKILL after {acked} acks");
            await Task.Delay(500, cts.Token);
            await server.StartAgainAsync();
        });

        await run.SettleAsync(TimeSpan.FromSeconds(60));
        var converged = await run.AssertConvergedAsync(cts.Token);
        Assert.True(run.Connects > 20, "clients did not reconnect after the kill");
        await server.StopAsync();
        run.AssertOpLog(docId => ReadLog(storage, docId), converged);
        Directory.Delete(dataDirectory, recursive: true);
    }

    private static async Task<HttpStatusCode> ReadyStatusAsync(Uri server)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        using HttpResponseMessage response = await http.GetAsync(new Uri(server, "readyz"));
        return response.StatusCode;
    }

    internal static IReadOnlyList<OpRecord> ReadLog(StorageOptions options, string docId)
    {
        IOpStore store = OpStoreFactory.Create(options);
        try
        {
            store.InitializeAsync(CancellationToken.None).AsTask().GetAwaiter().GetResult();
            return store.ReadOpsAsync(docId, 0, long.MaxValue, int.MaxValue, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        }
        finally
        {
            store.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }
}
