using System.Diagnostics;
using Collab.Integration.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Cluster;

/// <summary>Nodes leave gracefully and join under load; replicas lose messages and fill the gaps.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterMembershipTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private static readonly string[] Documents = ["m/1", "m/2", "m/3", "m/4", "m/5"];

    [Fact]
    public async Task A_node_leaving_and_joining_again_moves_ownership_without_losing_or_duplicating_ops()
    {
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output);
        var editors = new List<Editor>();
        try
        {
            await Editor.OpenManyAsync(cluster, editors, "m", seedBase: 5000, Documents);

            using var run = new CancellationTokenSource();
            Task editing = Task.WhenAll(editors.Select(e => e.RunAsync(TimeSpan.FromMilliseconds(20), run.Token)));
            await Task.Delay(1500);

            // Graceful leave (SIGTERM): the node drains its clients and releases its leases, so the others need not wait
            // for them to expire.
            (IReadOnlyDictionary<string, (string Owner, long Epoch)> before, string leaver, string[] itsDocuments) = await cluster.BusiestOwnerAsync();
            ServerProcess node = cluster.Node(leaver);
            var clock = Stopwatch.StartNew();
            Task<int> stopping = node.StopAsync();
            TimeSpan takeover = await ClusterFailoverTests.WaitForTakeoverAsync(cluster, itsDocuments, before, leaver, TimeSpan.FromSeconds(15));
            Assert.Equal(0, await stopping);
            output.WriteLine($"{leaver} left; its {itsDocuments.Length} document(s) moved after {takeover.TotalMilliseconds:F0} ms.");

            // It joins again: the documents rendezvous hashing gives it move back, handed off by their owners.
            IReadOnlyDictionary<string, (string Owner, long Epoch)> whileAway = await cluster.ReadLeasesAsync();
            await node.StartAgainAsync();
            clock.Restart();
            while (!(await cluster.ReadLeasesAsync()).Any(l => l.Value.Owner == leaver && l.Value.Epoch > whileAway[l.Key].Epoch))
            {
                if (clock.Elapsed > TimeSpan.FromSeconds(15))
                {
                    Assert.Fail($"{leaver} rejoined but was handed nothing.\n{cluster.Logs()}");
                }

                await Task.Delay(100);
            }

            output.WriteLine($"{leaver} owned documents again {clock.ElapsedMilliseconds} ms after it rejoined.");
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            await run.CancelAsync();
            await editing;
            await Task.WhenAll(editors.Select(e => e.WhenSyncedAsync(TimeSpan.FromSeconds(30))));
            await ClusterFailoverTests.AssertIntactAsync(cluster, editors, Documents);
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

    [Fact]
    public async Task A_replica_that_drops_messages_fills_the_gap_from_the_op_log_before_delivering_later_ops()
    {
        // Tiny subscription buffers: NATS.Client.Core drops the newest messages once 16 are pending.
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output, settings: new Dictionary<string, string>
        {
            ["Cluster:SubscriptionPendingMessages"] = "16",
        });
        const string DocId = "gap/1";
        var editors = new List<Editor>();
        try
        {
            // Busy writers on the owner itself (fast local commits, one published batch per commit), one quiet observer on
            // another node.
            await using (Editor first = await Editor.OpenAsync(cluster, "probe", seed: 1, [DocId]))
            {
                first.EditOnce();
            }

            await Task.Delay(500);
            string owner = (await cluster.ReadLeasesAsync())[DocId].Owner;
            ServerProcess replica = cluster.Nodes.First(n => n.NodeId != owner);
            for (int i = 0; i < 4; i++)
            {
                editors.Add(await Editor.OpenAsync(cluster, $"w{i}", seed: 6000 + i, [DocId], cluster.Node(owner)));
            }

            Editor observer = await Editor.OpenAsync(cluster, "obs", seed: 7000, [DocId], replica);
            editors.Add(observer);

            using var run = new CancellationTokenSource();
            Task editing = Task.WhenAll(editors.Take(4).Select(e => e.RunAsync(TimeSpan.FromMilliseconds(2), run.Token)));
            await Task.Delay(1000);

            // Freeze the replica briefly (well inside its heartbeats' expiry): the owner's batches pile up in its socket
            // and arrive all at once when it wakes, far more than the subscription holds.
            replica.Pause();
            await Task.Delay(1000);
            replica.Resume();
            await Task.Delay(1500);
            await run.CancelAsync();
            await editing;
            observer.EditOnce();
            await Task.WhenAll(editors.Select(e => e.WhenSyncedAsync(TimeSpan.FromSeconds(30))));

            string metrics = await replica.MetricsAsync();
            output.WriteLine($"dropped {ClusterHarness.MetricValue(metrics, "collab_cluster_nats_dropped_total")}, gap fills {ClusterHarness.MetricValue(metrics, "collab_cluster_gap_fills_total")} ({ClusterHarness.MetricValue(metrics, "collab_cluster_gap_fill_ops_total")} ops)");
            Assert.True(ClusterHarness.MetricValue(metrics, "collab_cluster_nats_dropped_total") > 0, "The replica dropped no message: the test did not provoke a gap.");
            Assert.True(ClusterHarness.MetricValue(metrics, "collab_cluster_gap_fills_total") > 0, "The replica filled no gap.");

            // Its client saw every op exactly once and in order: a gap would have made it reload a snapshot, or diverge.
            Assert.Equal(0, observer.Resyncs);
            IReadOnlyList<LoggedOp> ops = await cluster.VerifyLogAsync(DocId, editors.SelectMany(e => e.Acked));
            string expected = ClusterHarness.Replay(ops);
            await ClusterAssert.ConvergedAsync(editors, DocId, expected, TimeSpan.FromSeconds(15), cluster);
            await cluster.AssertEveryNodeServesAsync(DocId, expected, TimeSpan.FromSeconds(10));
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
