using System.Diagnostics;
using System.Globalization;
using System.Text;
using Collab.Client;
using Collab.Integration.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Cluster;

/// <summary>
/// The figures in docs/PERFORMANCE.md ("Cluster"): how long an edit takes to reach a client on the same node versus on
/// another node, and acknowledged ops per second with one node versus three. The tests check that every edit arrives,
/// in order; the timings are printed (and appended to artifacts/cluster-figures.md), never asserted.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterFiguresTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private const int Samples = 200;

    [Fact]
    public async Task Edit_to_remote_client_latency_same_node_versus_across_nodes()
    {
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output);
        const string DocId = "latency/1";
        await using (CollabClient opener = await cluster.ConnectAsync(cluster.Nodes[0]))
        await using (CollabDocument document = await opener.OpenDocumentAsync(DocId))
        {
            document.Insert(0, "x");
            await document.WhenSyncedAsync();
        }

        await Task.Delay(500);
        string ownerId = (await cluster.ReadLeasesAsync())[DocId].Owner;
        ServerProcess owner = cluster.Node(ownerId);
        ServerProcess[] replicas = [.. cluster.Nodes.Where(n => n.NodeId != ownerId)];

        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"Edit → remote client, {Samples} sequential edits each, 3 nodes on one machine ({Environment.ProcessorCount} cores), PostgreSQL fsync on:");
        report.AppendLine("| submitting client on | observing client on | NATS hops | p50 ms | p99 ms |");
        report.AppendLine("|---|---|---|---|---|");
        // Warm every path first (JIT, connection pools, NATS subscriptions): the first few hundred edits are slower.
        foreach ((ServerProcess from, ServerProcess to) in (ValueTuple<ServerProcess, ServerProcess>[])[(owner, owner), (replicas[0], replicas[1]), (owner, replicas[0])])
        {
            await MeasureAsync(cluster, DocId, from, to, "warm-up", "warm-up", 0);
        }

        report.AppendLine(await MeasureAsync(cluster, DocId, owner, owner, "owner", "owner (same node)", 0));
        report.AppendLine(await MeasureAsync(cluster, DocId, replicas[0], replicas[0], "replica", "replica (same node)", 2));
        report.AppendLine(await MeasureAsync(cluster, DocId, owner, replicas[0], "owner", "replica", 1));
        report.AppendLine(await MeasureAsync(cluster, DocId, replicas[0], owner, "replica", "owner", 1));
        report.AppendLine(await MeasureAsync(cluster, DocId, replicas[0], replicas[1], "replica A", "replica B", 2));
        Publish(report.ToString());
    }

    [Fact]
    public async Task Acknowledged_ops_per_second_with_one_node_versus_three()
    {
        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"Throughput: 48 clients through the round-robin balancer, one document each, one op in flight per client, 5 s ({Environment.ProcessorCount} cores, everything on one machine):");
        report.AppendLine("| nodes | acknowledged ops/s | forwarded to another node |");
        report.AppendLine("|---|---|---|");
        foreach (int nodes in (int[])[1, 3])
        {
            await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output, nodes);
            report.AppendLine(await ThroughputAsync(cluster, nodes));
        }

        Publish(report.ToString());
    }

    private static async Task<string> MeasureAsync(ClusterHarness cluster, string docId, ServerProcess from, ServerProcess to, string fromLabel, string toLabel, int hops)
    {
        await using CollabClient writerClient = await cluster.ConnectAsync(from);
        await using CollabClient readerClient = await cluster.ConnectAsync(to);
        await using CollabDocument writer = await writerClient.OpenDocumentAsync(docId);
        await using CollabDocument reader = await readerClient.OpenDocumentAsync(docId);

        var seen = new SemaphoreSlim(0);
        string? awaited = null;
        reader.Changed += (_, e) =>
        {
            if (awaited is { } tag && e.Text.Contains(tag, StringComparison.Ordinal))
            {
                awaited = null;
                seen.Release();
            }
        };

        var latencies = new List<double>(Samples);
        for (int i = -20; i < Samples; i++)
        {
            string tag = $"<{fromLabel}{i}>";
            awaited = tag;
            long started = Stopwatch.GetTimestamp();
            writer.Insert(0, tag);
            Assert.True(await seen.WaitAsync(TimeSpan.FromSeconds(10)), $"{tag} never reached the client on {to.NodeId}.");
            if (i >= 0)
            {
                latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }

            await writer.WhenSyncedAsync();
        }

        latencies.Sort();
        return string.Create(CultureInfo.InvariantCulture, $"| {fromLabel} | {toLabel} | {hops} | {Percentile(latencies, 0.50):F2} | {Percentile(latencies, 0.99):F2} |");
    }

    private static async Task<string> ThroughputAsync(ClusterHarness cluster, int nodes)
    {
        const int Clients = 48;
        var editors = new List<Editor>();
        try
        {
            for (int i = 0; i < Clients; i++)
            {
                editors.Add(await Editor.OpenAsync(cluster, $"t{i}", seed: 8000 + i, [$"tp{nodes}/{i}"]));
            }

            // Each client edits whenever its previous op was acknowledged (closed loop).
            using var run = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            int before = editors.Sum(e => e.Acked.Count);
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(editors.Select(async e =>
            {
                while (!run.IsCancellationRequested)
                {
                    e.EditOnce();
                    try
                    {
                        await e.WhenSyncedAsync(TimeSpan.FromSeconds(30)).WaitAsync(run.Token);
                    }
                    catch (OperationCanceledException)
                    {
                    }
                }
            }));
            double seconds = clock.Elapsed.TotalSeconds;
            int acked = editors.Sum(e => e.Acked.Count) - before;
            await Task.WhenAll(editors.Select(e => e.WhenSyncedAsync(TimeSpan.FromSeconds(30))));

            double forwarded = 0;
            foreach (ServerProcess node in cluster.Nodes)
            {
                forwarded += ClusterHarness.MetricValue(await node.MetricsAsync(), "collab_cluster_forwarded_submits_total{outcome=\"acked\"}") ?? 0;
            }

            // Correctness under load: every acknowledged op is in the log once.
            foreach (Editor editor in editors)
            {
                await cluster.VerifyLogAsync(editor.Documents.Keys.Single(), editor.Acked);
            }

            return string.Create(CultureInfo.InvariantCulture, $"| {nodes} | {acked / seconds:F0} | {forwarded / Math.Max(1, acked):P0} |");
        }
        finally
        {
            foreach (Editor editor in editors)
            {
                await editor.DisposeAsync();
            }
        }
    }

    private static double Percentile(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

    private void Publish(string report)
    {
        output.WriteLine(report);
        string directory = Path.Combine(RepositoryRoot(), "artifacts");
        Directory.CreateDirectory(directory);
        File.AppendAllText(Path.Combine(directory, "cluster-figures.md"), report + Environment.NewLine);
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Collab.sln")))
            {
                return dir.FullName;
            }
        }

        return AppContext.BaseDirectory;
    }
}
