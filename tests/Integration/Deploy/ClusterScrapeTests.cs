using Collab.Client;
using Collab.Integration.Tests.Cluster;
using Collab.Integration.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Deploy;

/// <summary>
/// The collab_cluster_* series exist only on clustered nodes: a real Prometheus with deploy/'s rules scrapes a 2-node
/// cluster (the cluster harness: PostgreSQL, nats-server, two server processes) while C# SDK clients on both nodes edit
/// the same documents, so submits are forwarded between them. Every cluster series the rules and the dashboard select is
/// then in Prometheus, every recording rule produces values, the rules evaluate cleanly and the dashboard's cluster
/// queries return data.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterScrapeTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Prometheus_scraping_a_cluster_has_every_cluster_series_the_rules_and_dashboard_use()
    {
        // Every interface, so Prometheus can reach node i at 127.0.0.(i+1): the deployment's relabelling names an
        // instance by host alone (node1, node2 under compose), and two targets on one host would be one instance.
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output, nodes: 2, settings: new Dictionary<string, string>
        {
            ["Transport:ListenAddress"] = "0.0.0.0",
        });
        string[] targets = [.. cluster.Nodes.Select((n, i) => $"127.0.0.{i + 2}:{n.Port}")];
        await using PrometheusServer prometheus = await PrometheusServer.StartAsync(targets);
        await prometheus.WaitForAsync("the nodes were not scraped", async () =>
        {
            var up = (await prometheus.TargetsAsync()).Where(t => t.Labels["job"] == DeployAssets.Job && t.Health == "up").Select(t => t.Labels["instance"]);
            return ((string[])["127.0.0.2", "127.0.0.3"]).Except(up).ToList();
        }, s_timeout);

        // Clients on both nodes edit the same documents: whichever node owns one, the other forwards its submits.
        await using CollabClient first = await cluster.ConnectAsync(cluster.Nodes[0]);
        await using CollabClient second = await cluster.ConnectAsync(cluster.Nodes[1]);
        var documents = new List<CollabDocument>();
        for (int i = 0; i < 6; i++)
        {
            documents.Add(await first.OpenDocumentAsync($"deploy/cluster-{i}"));
            documents.Add(await second.OpenDocumentAsync($"deploy/cluster-{i}"));
        }

        using var typing = new CancellationTokenSource();
        Task typist = TypeAsync(documents, typing.Token);
        try
        {
            IReadOnlyList<SeriesSelector> selectors = await ScrapeChecks.CollabSelectorsAsync();
            var clusterSelectors = selectors.Where(s => ScrapeChecks.IsClusterOnly(s.Name)).ToList();
            Assert.True(clusterSelectors.Count >= 15, $"only {clusterSelectors.Count} cluster selectors in deploy/");
            await ScrapeChecks.AssertSeriesExistAsync(prometheus, clusterSelectors, s_timeout);

            // Each node is its own instance, and both see the two of them.
            await prometheus.WaitForAsync("the nodes do not both report 2 live nodes", async () =>
                (await prometheus.QueryAsync("collab_cluster_live_nodes != 2 or absent(collab_cluster_live_nodes{instance=\"127.0.0.2\"}) or absent(collab_cluster_live_nodes{instance=\"127.0.0.3\"})"))
                    .Select(s => $"{string.Join(",", s.Labels)} = {s.Value}").ToList(), s_timeout);
            // Waited for, not read once: under a loaded ./test.sh the first scrape after the forwarded submits came later.
            await prometheus.WaitForAsync("no forwarded submit was acked", async () =>
                (await prometheus.QueryAsync("sum(collab_cluster_forwarded_submits_total{outcome=\"acked\"})")).Any(s => s.Value > 0)
                    ? []
                    : ["sum(collab_cluster_forwarded_submits_total{outcome=\"acked\"}) is 0 or absent"], s_timeout);

            await ScrapeChecks.AssertRecordedAsync(prometheus, DeployAssets.RecordedNames(), s_timeout);
            await ScrapeChecks.AssertRulesHealthyAsync(prometheus, s_timeout);
            // The single-node test holds the other queries to returning data (their auth series need JWT mode).
            await ScrapeChecks.AssertDashboardQueriesAnswerAsync(prometheus, expr => !ScrapeChecks.IsClusterOnly(expr), s_timeout);
        }
        finally
        {
            await typing.CancelAsync();
            await typist;
            foreach (CollabDocument document in documents)
            {
                await document.DisposeAsync();
            }
        }
    }

    /// <summary>Each client types into each of its documents in turn until cancelled, each edit acknowledged before the next round.</summary>
    private static async Task TypeAsync(IReadOnlyList<CollabDocument> documents, CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                foreach (CollabDocument document in documents)
                {
                    document.Insert(0, "z");
                }

                await Task.WhenAll(documents.Select(d => d.WhenSyncedAsync(cancellationToken)));
                await Task.Delay(100, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }
}
