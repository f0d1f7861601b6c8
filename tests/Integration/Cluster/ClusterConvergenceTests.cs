using Collab.Client;
using Collab.Integration.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Cluster;

/// <summary>Three real nodes behind a round-robin balancer: clients on every node co-edit documents that other nodes own.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterConvergenceTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private static readonly string[] Documents = ["notes/a.txt", "notes/b.txt", "spec:c", "d-1"];

    [Fact]
    public async Task Clients_spread_over_the_nodes_co_edit_documents_owned_by_other_nodes_and_converge()
    {
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output);
        var editors = new List<Editor>();
        try
        {
            await Editor.OpenManyAsync(cluster, editors, "e", seedBase: 1000, Documents);

            // The balancer spreads connections round-robin: every node has clients.
            Assert.Equal(3, editors.Select(e => e.Client.ServerId).Distinct().Count());

            using (var run = new CancellationTokenSource(TimeSpan.FromSeconds(4)))
            {
                await Task.WhenAll(editors.Select(e => e.RunAsync(TimeSpan.FromMilliseconds(15), run.Token)));
            }

            await Task.WhenAll(editors.Select(e => e.WhenSyncedAsync(TimeSpan.FromSeconds(20))));
            IReadOnlyDictionary<string, (string Owner, long Epoch)> leases = await cluster.ReadLeasesAsync();
            var acked = editors.SelectMany(e => e.Acked).ToList();
            foreach (string docId in Documents)
            {
                IReadOnlyList<LoggedOp> ops = await cluster.VerifyLogAsync(docId, acked);
                string expected = ClusterHarness.Replay(ops);
                await ClusterAssert.ConvergedAsync(editors, docId, expected, TimeSpan.FromSeconds(15), cluster);

                // Every op was written under an owner's lease, owners following each other (a node that opened a document
                // before it saw all its peers hands it to the rendezvous choice); the last owner holds the lease.
                Assert.True(leases.ContainsKey(docId), $"{docId} has no lease.");
                Assert.All(ops, op => Assert.NotNull(op.Epoch));
                for (int i = 1; i < ops.Count; i++)
                {
                    Assert.True(ops[i].Epoch >= ops[i - 1].Epoch, $"{docId}: epoch {ops[i].Epoch} after {ops[i - 1].Epoch}.");
                }

                Assert.Equal(leases[docId].Epoch, ops[^1].Epoch);
                output.WriteLine($"{docId}: {ops.Count} ops under {ops.Select(o => o.Epoch).Distinct().Count()} epoch(s), owner {leases[docId].Owner}.");

                // Clients on the other nodes edited it through the owner.
                Assert.Contains(editors, e => e.Client.ServerId != leases[docId].Owner && e.Acked.Any(a => a.DocId == docId));
                await cluster.AssertEveryNodeServesAsync(docId, expected, TimeSpan.FromSeconds(10));
            }

            // Each node served its own clients' submits for documents it does not own by forwarding them.
            Assert.True(acked.Count > 200, $"Only {acked.Count} ops were acknowledged.");
            foreach (ServerProcess node in cluster.Nodes)
            {
                string metrics = await node.MetricsAsync();
                Assert.Contains("collab_cluster_forwarded_submits_total{outcome=\"acked\"}", metrics);
            }
        }
        catch
        {
            cluster.DumpLogs();
            throw;
        }
        finally
        {
            foreach (Editor editor in editors)
            {
                await editor.DisposeAsync();
            }
        }
    }
}

internal static class ClusterAssert
{
    /// <summary>Waits until every editor's replica of <paramref name="docId"/> reads <paramref name="expected"/>.</summary>
    public static async Task ConvergedAsync(IEnumerable<Editor> editors, string docId, string expected, TimeSpan timeout, ClusterHarness cluster)
    {
        var deadline = DateTime.UtcNow + timeout;
        foreach (Editor editor in editors)
        {
            CollabDocument document = editor.Documents[docId];
            while (document.Text != expected)
            {
                if (DateTime.UtcNow > deadline)
                {
                    Assert.Fail($"A client on {editor.Client.ServerId} has {docId} at v{document.Version} = \"{document.Text}\"; the log says \"{expected}\".\n{cluster.Logs()}");
                }

                await Task.Delay(50);
            }
        }
    }
}
