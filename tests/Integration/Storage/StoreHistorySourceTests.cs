using Collab.Server.Storage;
using Microsoft.Extensions.Options;
using static Collab.Integration.Tests.Storage.StorageTestData;

namespace Collab.Integration.Tests.Storage;

/// <summary>History reads over the op log, in pages, stopping at a gap; and the storage options and factory.</summary>
public sealed class StoreHistorySourceTests
{
    [Fact]
    public async Task Reads_a_range_across_several_pages_in_version_order()
    {
        var store = new InMemoryOpStore();
        await store.AppendAsync(Ops("doc", 1, 57), default);
        var history = new StoreHistorySource(store, pageSize: 10);

        AssertSame(Ops("doc", 4, 50), await history.ReadOpsAsync("doc", 3, 50, default));
        AssertSame(Ops("doc", 1, 57), await history.ReadOpsAsync("doc", 0, 57, default));
        AssertSame(Ops("doc", 51, 57), await history.ReadOpsAsync("doc", 50, 1000, default));
        Assert.Empty(await history.ReadOpsAsync("doc", 57, 60, default));
        Assert.Empty(await history.ReadOpsAsync("doc", 20, 20, default));
        Assert.Empty(await history.ReadOpsAsync("unknown", 0, 10, default));
    }

    [Fact]
    public async Task Pruned_history_yields_only_the_contiguous_start_so_the_sequencer_sees_it_is_incomplete()
    {
        var store = new InMemoryOpStore();
        var old = NowMs - (long)TimeSpan.FromDays(2).TotalMilliseconds;
        await store.AppendAsync(Ops("doc", 1, 30, timestampMs: old), default);
        await store.WriteSnapshotAsync(Snapshot("doc", 20), default);
        await store.PruneAsync(TimeSpan.FromDays(1), default);
        var history = new StoreHistorySource(store, pageSize: 4);

        // Ops 1..20 are gone: a read from 10 finds nothing that starts at 11.
        Assert.Empty(await history.ReadOpsAsync("doc", 10, 30, default));
        AssertSame(Ops("doc", 21, 30, timestampMs: old), await history.ReadOpsAsync("doc", 20, 30, default));
    }

    [Fact]
    public async Task A_hole_in_the_middle_stops_the_read_at_the_hole()
    {
        var store = new InMemoryOpStore();
        await store.AppendAsync(Ops("doc", 1, 5), default);
        await store.AppendAsync(Ops("doc", 7, 12), default);
        var history = new StoreHistorySource(store, pageSize: 3);

        AssertSame(Ops("doc", 1, 5), await history.ReadOpsAsync("doc", 0, 12, default));
    }

    [Fact]
    public void Default_options_are_valid_and_every_bad_setting_is_reported()
    {
        new StorageOptions().Validate();
        Assert.Equal(Path.Combine("./data", "collab.db"), new StorageOptions().SqlitePath);

        var bad = new StorageOptions
        {
            Provider = StorageProvider.Postgres,
            PostgresConnectionString = " ",
            PostgresPartitions = 0,
            MaxBatchOps = 0,
            MaxBatchDelay = TimeSpan.FromSeconds(-1),
            BatchDelayMinOps = -1,
            SqliteCheckpointInterval = TimeSpan.FromMinutes(2),
            SqliteWalRestartBytes = 1024,
            SnapshotEveryOps = 0,
            SnapshotsToKeep = -1,
            OpRetention = TimeSpan.FromSeconds(-1),
            RetryInitialDelay = TimeSpan.Zero,
            RetryMaxDelay = TimeSpan.FromSeconds(-1),
            ShutdownTimeout = TimeSpan.FromSeconds(-1),
        };
        var error = Assert.Throws<OptionsValidationException>(bad.Validate);
        Assert.Equal(13, error.Failures.Count());
        Assert.Contains(error.Failures, f => f.Contains(nameof(StorageOptions.BatchDelayMinOps), StringComparison.Ordinal));
        Assert.Contains(error.Failures, f => f.Contains(nameof(StorageOptions.PostgresConnectionString), StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_factory_creates_the_configured_store()
    {
        var directory = TempDirectory();
        try
        {
            await using (var sqlite = OpStoreFactory.Create(new StorageOptions { DataDirectory = directory }))
            {
                Assert.IsType<SqliteOpStore>(sqlite);
                await sqlite.InitializeAsync(default);
                Assert.True(File.Exists(Path.Combine(directory, "collab.db")));
            }

            await using (var postgres = OpStoreFactory.Create(new StorageOptions { Provider = StorageProvider.Postgres, PostgresConnectionString = "Host=127.0.0.1;Port=1" }))
            {
                Assert.IsType<PostgresOpStore>(postgres);
            }

            Assert.Throws<OptionsValidationException>(() => OpStoreFactory.Create(new StorageOptions { Provider = StorageProvider.Postgres }));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }
}
