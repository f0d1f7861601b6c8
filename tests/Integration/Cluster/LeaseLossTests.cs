using Collab.Integration.Tests.Infrastructure;
using Collab.Server.Cluster;
using Collab.Server.Storage;
using Microsoft.Extensions.Logging;

namespace Collab.Integration.Tests.Cluster;

/// <summary>
/// Issue 13 §3: after SIGSTOP 10 s / SIGCONT of an owner, collab_cluster_leases_lost_total counted ~160 per lost lease and
/// "lease epoch 1 lost" was logged as often: every renewal round, reconcile tick and stream message that noticed the loss
/// said so again until the demotion completed. A loss is counted and logged once per lost epoch.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class LeaseLossTests(PostgresFixture postgres)
{
    [Fact]
    public async Task A_lost_lease_is_counted_and_logged_once_however_often_it_is_noticed_and_a_later_loss_again()
    {
        var options = new ClusterOptions { NatsUrl = "nats://127.0.0.1:1" };
        options.Validate();
        var storage = new StorageOptions { Provider = StorageProvider.Postgres, PostgresConnectionString = await postgres.CreateDatabaseAsync("leaselost") };
        await using var store = new PostgresOpStore(storage);
        await store.InitializeAsync(default);
        await using var stage = new GroupCommitStage(store, storage);
        var table = new LeaseTable("n1", options);
        var logs = new RecordingLoggerProvider();
        using ILoggerFactory factory = LoggerFactory.Create(builder => builder.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        var leases = new LeaseStore(storage, "n1", options.LeaseDuration, table.WriteTimeout);
        await using var node = new ClusterNode(options, "n1", store, stage, leases, table, factory);
        var document = new ClusterDocument(node, "lost/1");
        try
        {
            Assert.True(await document.TryAcquireInitialAsync(default));
            double before = ClusterMetrics.LeasesLost.Value;

            await NoticeManyTimesAsync(document, document.Epoch);
            Assert.Equal(1, ClusterMetrics.LeasesLost.Value - before);
            Assert.Single(logs.Entries, e => e.Id.Id == 3007);

            // Taken again (a new epoch) and lost again: that is a second loss.
            await leases.ReleaseAsync("lost/1", document.Epoch, default);
            Assert.True(await document.TryAcquireInitialAsync(default));
            Assert.Equal(2, document.Epoch);
            await NoticeManyTimesAsync(document, document.Epoch);
            Assert.Equal(2, ClusterMetrics.LeasesLost.Value - before);
            Assert.Equal(2, logs.Entries.Count(e => e.Id.Id == 3007));
        }
        finally
        {
            await document.StopAsync();
        }
    }

    /// <summary>As after a long pause: the renewal loop, the reconciler and stream messages all report the loss at once.</summary>
    private static async Task NoticeManyTimesAsync(ClusterDocument document, long epoch)
    {
        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(() => document.OnLeaseLost(epoch))));
        for (int i = 0; i < 100; i++)
        {
            document.OnLeaseLost(epoch);
        }
    }
}
