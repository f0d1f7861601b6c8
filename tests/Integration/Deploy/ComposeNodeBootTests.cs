using System.Globalization;
using Collab.Client;
using Collab.Integration.Tests.Infrastructure;
using Npgsql;

namespace Collab.Integration.Tests.Deploy;

/// <summary>
/// The server binary started with exactly node1's environment from deploy/compose.yaml (the image's ENV included),
/// changing only what points outside this machine's reach: the PostgreSQL and NATS addresses (the compose host names
/// become the test's own servers), the data directory and the ports (free ones instead of 8080/9090). It must come up
/// as a cluster node named node1 on the PostgreSQL store, serve /metrics on its management port, and sequence edits.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ComposeNodeBootTests(PostgresFixture postgres)
{
    [Fact]
    public async Task A_node_started_with_the_compose_environment_joins_a_cluster_and_serves_metrics_on_its_management_port()
    {
        ComposeService composeNode = ComposeFile.Service("node1");
        var environment = new Dictionary<string, string>(ComposeFile.EffectiveEnvironment(composeNode), StringComparer.Ordinal);
        Assert.Contains("COLLAB_POSTGRES", environment.Keys);
        Assert.Contains("COLLAB_NATS", environment.Keys);

        string connectionString = await postgres.CreateDatabaseAsync("compose");
        await using NatsServer nats = await NatsServer.StartAsync();
        string dataDirectory = System.IO.Directory.CreateTempSubdirectory("collab-compose-node-").FullName;
        int managementPort = InProcessServer.FreePort();
        environment["COLLAB_POSTGRES"] = connectionString;
        environment["COLLAB_NATS"] = nats.Url;
        environment["COLLAB_DATA_DIR"] = dataDirectory;
        environment["Transport__ManagementPort"] = managementPort.ToString(CultureInfo.InvariantCulture);
        environment.Remove("COLLAB_PORT"); // the harness passes --port with a free port

        try
        {
            await using ServerProcess node = await ServerProcess.StartAsync(environment);
            Assert.Equal("node1", environment["Node__NodeId"]);

            await using (CollabClient client = await CollabClient.ConnectAsync(node.WebSocketUri, new CollabClientOptions()))
            {
                Assert.Equal("node1", client.ServerId);
                await using CollabDocument document = await client.OpenDocumentAsync("deploy/compose-boot");
                document.Insert(0, "booted from compose.yaml's environment");
                await document.WhenSyncedAsync();
            }

            // The lease is node1's, in the PostgreSQL database the connection string named.
            await using (var connection = new NpgsqlConnection(connectionString))
            {
                await connection.OpenAsync();
                await using var command = new NpgsqlCommand("SELECT owner FROM doc_leases WHERE doc_id = 'deploy/compose-boot'", connection);
                Assert.Equal("node1", await command.ExecuteScalarAsync());
            }

            // Prometheus's target in compose: the management port's /metrics, with the cluster's series.
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            string metrics = await http.GetStringAsync(new Uri($"http://127.0.0.1:{managementPort}/metrics"));
            Assert.Contains("\ncollab_cluster_nats_connected 1\n", metrics, StringComparison.Ordinal);
            Assert.Contains("\ncollab_cluster_live_nodes 1\n", metrics, StringComparison.Ordinal);
            Assert.Contains("\ncollab_storage_ready 1\n", metrics, StringComparison.Ordinal);
        }
        finally
        {
            System.IO.Directory.Delete(dataDirectory, recursive: true);
        }
    }
}
