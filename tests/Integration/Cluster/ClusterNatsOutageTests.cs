using Collab.Integration.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Cluster;

/// <summary>nats-server restarts under load: nodes report not-ready but keep their sessions, reconnect, and nothing diverges.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterNatsOutageTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private static readonly string[] Documents = ["n/1", "n/2", "n/3", "n/4"];

    [Fact]
    public async Task Restarting_nats_mid_run_keeps_sessions_and_ops_resume_without_divergence()
    {
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output);
        var editors = new List<Editor>();
        try
        {
            await Editor.OpenManyAsync(cluster, editors, "n", seedBase: 4000, Documents);
            int disconnects = 0;
            foreach (Editor editor in editors)
            {
                editor.Client.Disconnected += (_, _) => Interlocked.Increment(ref disconnects);
            }

            string?[] servers = [.. editors.Select(e => e.Client.ServerId)];

            using var run = new CancellationTokenSource();
            Task editing = Task.WhenAll(editors.Select(e => e.RunAsync(TimeSpan.FromMilliseconds(20), run.Token)));
            await Task.Delay(1500);
            int ackedBefore = editors.Sum(e => e.Acked.Count);

            await cluster.Nats.StopAsync();
            await WaitAsync(async () => !await cluster.Nodes[0].IsReadyAsync(), TimeSpan.FromSeconds(10), "node1 to report not-ready without NATS", cluster);
            await Task.Delay(1500);
            await cluster.Nats.StartAgainAsync();
            await WaitAsync(async () => (await Task.WhenAll(cluster.Nodes.Select(n => n.IsReadyAsync()))).All(r => r), TimeSpan.FromSeconds(15), "every node to be ready again", cluster);

            // Ops keep being acknowledged after NATS is back.
            int ackedAtReconnect = editors.Sum(e => e.Acked.Count);
            await Task.Delay(TimeSpan.FromSeconds(3));
            await run.CancelAsync();
            await editing;
            await Task.WhenAll(editors.Select(e => e.WhenSyncedAsync(TimeSpan.FromSeconds(30))));
            output.WriteLine($"Acked: {ackedBefore} before the outage, {ackedAtReconnect} at reconnect, {editors.Sum(e => e.Acked.Count)} at the end.");
            Assert.True(editors.Sum(e => e.Acked.Count) > ackedAtReconnect + 50);

            // The sessions stayed where they were.
            Assert.Equal(0, disconnects);
            Assert.Equal(servers, editors.Select(e => e.Client.ServerId));
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

    private static async Task WaitAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, ClusterHarness cluster)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting for {what}.\n{cluster.Logs()}");
            }

            await Task.Delay(100);
        }
    }
}
