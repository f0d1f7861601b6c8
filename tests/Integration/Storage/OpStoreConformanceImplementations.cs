using Collab.Engine.Sequencing;
using Collab.Integration.Tests.Infrastructure;
using Collab.Server.Storage;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Collab.Integration.Tests.Storage;

/// <summary>The conformance suite against the embedded SQLite store (a fresh directory per test).</summary>
public sealed class SqliteOpStoreTests : OpStoreConformanceTests
{
    private readonly string _directory = StorageTestData.TempDirectory();

    protected override StorageOptions Options { get; } = new() { SnapshotsToKeep = 2 };

    protected override async Task<IOpStore> OpenStoreAsync()
    {
        Options.DataDirectory = _directory;
        var store = new SqliteOpStore(Options);
        await store.InitializeAsync(default);
        return store;
    }

    protected override async Task<long> CountSnapshotsAsync(string docId)
    {
        await using var connection = new SqliteConnection($"Data Source={Options.SqlitePath};Mode=ReadOnly;Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT count(*) FROM snapshots WHERE doc_id = $doc";
        command.Parameters.AddWithValue("$doc", docId);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    protected override Task CleanupAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task The_file_is_in_wal_mode_with_full_fsync_on_the_writer()
    {
        var store = (SqliteOpStore)Store;
        Assert.Equal("wal", await store.ReadWriterPragmaAsync("journal_mode", default));
        Assert.Equal("2", await store.ReadWriterPragmaAsync("synchronous", default)); // 2 = FULL
        Assert.True(File.Exists(Path.Combine(_directory, "collab.db")));
    }

    [Fact]
    public async Task Checkpoints_run_off_the_commit_path_and_keep_the_wal_bounded()
    {
        var options = new StorageOptions
        {
            DataDirectory = StorageTestData.TempDirectory(),
            SqliteCheckpointInterval = TimeSpan.FromMinutes(1), // the test runs the rounds itself, deterministically
            SqliteWalRestartBytes = 64 * 1024,
        };
        try
        {
            await using (var store = new SqliteOpStore(options))
            {
                await store.InitializeAsync(default);
                Assert.Equal("0", await store.ReadWriterPragmaAsync("wal_autocheckpoint", default)); // not in the commit path
                var checkpointer = store.Checkpointer;
                Assert.NotNull(checkpointer);

                // 64 documents per batch dirty a page each: far more log than 64 KiB, over and over; a checkpoint
                // round between batches, as the background thread runs between group commits.
                var payload = new byte[200];
                for (var batch = 1; batch <= 150; batch++)
                {
                    var ops = Enumerable.Range(0, 64).Select(d => StorageTestData.Op($"doc-{d}", batch, clientSeq: batch, op: payload)).ToList();
                    Assert.Empty((await store.AppendAsync(ops, default)).ConflictedDocs);
                    checkpointer.CheckpointNow();
                }

                Assert.True(store.WalRestarts > 100, $"the writer rewound the log {store.WalRestarts} times");

                // The log is rewound and reused, not grown: well under the ~10 MB that 150 batches wrote into it.
                var walBytes = new FileInfo(options.SqlitePath + "-wal").Length;
                Assert.True(walBytes < 2 * 1024 * 1024, $"WAL is {walBytes} bytes");
                for (var d = 0; d < 64; d++)
                {
                    Assert.Equal(150, (await store.LoadAsync($"doc-{d}", default))!.Ops.Count);
                }
            }

            // Stopped with the store: reopening finds everything.
            await using var reopened = new SqliteOpStore(options);
            await reopened.InitializeAsync(default);
            Assert.Equal(150, (await reopened.LoadAsync("doc-63", default))!.Ops.Count);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(options.DataDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task The_background_thread_checkpoints_after_enough_commits_or_on_its_interval_and_not_when_idle()
    {
        var options = new StorageOptions { DataDirectory = StorageTestData.TempDirectory(), SqliteCheckpointInterval = TimeSpan.FromMinutes(1) };
        try
        {
            await using var store = new SqliteOpStore(options);
            await store.InitializeAsync(default);
            var checkpointer = store.Checkpointer!;

            // Idle (and less than the op threshold): the interval is a minute, so nothing runs.
            await store.AppendAsync([StorageTestData.Op("doc", 1)], default);
            await Task.Delay(200);
            Assert.Equal(0, checkpointer.Checkpoints);

            // Past the op threshold a round starts at once, long before the interval.
            var ops = Enumerable.Range(2, SqliteCheckpointer.OpsPerCheckpoint).Select(v => StorageTestData.Op("doc", v)).ToList();
            await store.AppendAsync(ops, default);
            await WaitUntilAsync(() => checkpointer.Checkpoints >= 1);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(options.DataDirectory, recursive: true);
        }

        // With a short interval a single small commit is checkpointed too, once: nothing new, no further rounds.
        var periodic = new StorageOptions { DataDirectory = StorageTestData.TempDirectory(), SqliteCheckpointInterval = TimeSpan.FromMilliseconds(5) };
        try
        {
            await using var store = new SqliteOpStore(periodic);
            await store.InitializeAsync(default);
            await store.AppendAsync([StorageTestData.Op("doc", 1)], default);
            await WaitUntilAsync(() => store.Checkpointer!.Checkpoints >= 1);
            await Task.Delay(100);
            Assert.Equal(1, store.Checkpointer!.Checkpoints);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(periodic.DataDirectory, recursive: true);
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "Condition not reached in 30 s.");
            await Task.Delay(5);
        }
    }

    [Fact]
    public async Task Normal_sync_mode_is_applied_to_the_writer_and_survives_a_snapshot_write()
    {
        var options = new StorageOptions { DataDirectory = StorageTestData.TempDirectory(), SqliteSynchronous = SqliteSyncMode.Normal };
        try
        {
            await using (var store = new SqliteOpStore(options))
            {
                await store.InitializeAsync(default);
                Assert.Equal("1", await store.ReadWriterPragmaAsync("synchronous", default)); // 1 = NORMAL
                await store.AppendAsync([StorageTestData.Op("doc", 1)], default);
                await store.WriteSnapshotAsync(new SnapshotRecord("doc", 1, "x", ReadOnlyMemory<byte>.Empty, 1), default);
                Assert.Equal("1", await store.ReadWriterPragmaAsync("synchronous", default));
                await store.AppendAsync([StorageTestData.Op("doc", 2)], default);
            }

            // A clean close keeps everything (a process crash would too: the commits are in the OS's page cache).
            await using var reopened = new SqliteOpStore(options);
            await reopened.InitializeAsync(default);
            var load = (await reopened.LoadAsync("doc", default))!;
            Assert.Equal(1, load.Snapshot!.Version);
            Assert.Equal(2, Assert.Single(load.Ops).Version);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(options.DataDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task With_no_checkpoint_interval_sqlite_checkpoints_by_itself()
    {
        var options = new StorageOptions { DataDirectory = StorageTestData.TempDirectory(), SqliteCheckpointInterval = TimeSpan.Zero };
        try
        {
            await using var store = new SqliteOpStore(options);
            await store.InitializeAsync(default);
            Assert.Null(store.Checkpointer);
            Assert.Equal("1000", await store.ReadWriterPragmaAsync("wal_autocheckpoint", default));
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(options.DataDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task A_snapshot_write_leaves_the_writer_at_full_fsync_for_the_ops_after_it()
    {
        var store = (SqliteOpStore)Store;
        await store.WriteSnapshotAsync(new SnapshotRecord("snap", 3, "abc", ReadOnlyMemory<byte>.Empty, 1), default);
        Assert.Equal("2", await store.ReadWriterPragmaAsync("synchronous", default));

        // A snapshot refused as not newer rolls back: the relaxed setting must not outlive it either.
        await store.WriteSnapshotAsync(new SnapshotRecord("snap", 2, "ab", ReadOnlyMemory<byte>.Empty, 1), default);
        Assert.Equal("2", await store.ReadWriterPragmaAsync("synchronous", default));
        Assert.Equal(3, (await store.LoadAsync("snap", default))!.Snapshot!.Version);
    }

    [Fact]
    public async Task A_database_from_a_newer_server_is_refused()
    {
        await using (var connection = new SqliteConnection($"Data Source={Options.SqlitePath};Pooling=False"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "INSERT INTO schema_version (version, description, applied_ms) VALUES (999, 'future', 0)";
            await command.ExecuteNonQueryAsync();
        }

        await using var newer = new SqliteOpStore(Options);
        var error = await Assert.ThrowsAsync<StorageSchemaException>(() => newer.InitializeAsync(default).AsTask());
        Assert.Contains("999", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Readers_see_committed_data_while_the_writer_is_busy()
    {
        await Store.AppendAsync(StorageTestData.Ops("doc", 1, 100), default);
        var writes = Task.Run(async () =>
        {
            for (var v = 101; v <= 300; v += 10)
            {
                await Store.AppendAsync(StorageTestData.Ops("doc", v, v + 9), default);
            }
        });

        while (!writes.IsCompleted)
        {
            var ops = await Store.ReadOpsAsync("doc", 0, long.MaxValue, int.MaxValue, default);
            Assert.True(ops.Count >= 100);
            Assert.Equal(Enumerable.Range(1, ops.Count).Select(v => (long)v), ops.Select(o => o.Version));
        }

        await writes;
        Assert.Equal(300, (await Store.LoadAsync("doc", default))!.Ops.Count);
    }
}

/// <summary>The conformance suite against PostgreSQL (a fresh database per test on the shared cluster).</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresOpStoreTests(PostgresFixture postgres) : OpStoreConformanceTests
{
    protected override StorageOptions Options { get; } = new() { Provider = StorageProvider.Postgres, SnapshotsToKeep = 2, PostgresPartitions = 4 };

    protected override async Task PrepareAsync() => Options.PostgresConnectionString = await postgres.CreateDatabaseAsync("conformance");

    protected override async Task<IOpStore> OpenStoreAsync()
    {
        var store = new PostgresOpStore(Options);
        await store.InitializeAsync(default);
        return store;
    }

    protected override async Task<long> CountSnapshotsAsync(string docId) =>
        await ScalarAsync<long>("SELECT count(*) FROM snapshots WHERE doc_id = $1", docId);

    [Fact]
    public async Task Ops_are_hash_partitioned_as_configured()
    {
        Assert.Equal(4L, await ScalarAsync<long>("SELECT count(*) FROM pg_inherits WHERE inhparent = 'ops'::regclass"));
        Assert.Equal("h", await ScalarAsync<string>("SELECT partstrat::text FROM pg_partitioned_table WHERE partrelid = 'ops'::regclass"));

        // Rows really spread over the partitions.
        var batch = new List<Collab.Engine.Sequencing.OpRecord>();
        for (var d = 0; d < 64; d++)
        {
            batch.Add(StorageTestData.Op($"spread-{d}", 1));
        }

        await Store.AppendAsync(batch, default);
        Assert.Equal(4L, await ScalarAsync<long>("SELECT count(DISTINCT tableoid) FROM ops"));
    }

    [Fact]
    public async Task Migrations_are_recorded_once_and_documents_are_created_by_first_ops()
    {
        await Store.AppendAsync(StorageTestData.Ops("doc", 1, 3), default);
        await Store.AppendAsync(StorageTestData.Ops("doc", 4, 6), default);

        // One row per migration: the op log (1), the cluster's leases and writer epochs (2), the revocation list (3).
        Assert.Equal(4L, await ScalarAsync<long>("SELECT count(*) FROM schema_migrations"));
        Assert.Equal(1L, await ScalarAsync<long>("SELECT count(*) FROM documents WHERE id = $1", "doc"));
    }

    [Fact]
    public async Task Several_nodes_initializing_a_fresh_database_at_once_do_not_race()
    {
        var options = new StorageOptions
        {
            Provider = StorageProvider.Postgres,
            PostgresConnectionString = await postgres.CreateDatabaseAsync("racing"),
            PostgresPartitions = 8,
        };
        var stores = Enumerable.Range(0, 6).Select(_ => new PostgresOpStore(options)).ToArray();
        try
        {
            await Task.WhenAll(stores.Select(s => s.InitializeAsync(default).AsTask()));
            Assert.Empty((await stores[3].AppendAsync(StorageTestData.Ops("doc", 1, 2), default)).ConflictedDocs);
            await using var connection = new NpgsqlConnection(options.PostgresConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT count(*) FROM schema_migrations", connection);
            Assert.Equal(4L, (long)(await command.ExecuteScalarAsync())!);
        }
        finally
        {
            foreach (var store in stores)
            {
                await store.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_database_from_a_newer_server_is_refused()
    {
        await ScalarAsync<int>("INSERT INTO schema_migrations (version, description) VALUES (999, 'future') RETURNING version");

        await using var newer = new PostgresOpStore(Options);
        var error = await Assert.ThrowsAsync<StorageSchemaException>(() => newer.InitializeAsync(default).AsTask());
        Assert.Contains("999", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(PostgresAppendMethod.MultiRowInsert)]
    [InlineData(PostgresAppendMethod.RowByRowInsert)]
    internal async Task The_benchmark_baselines_write_the_same_rows_and_detect_conflicts(PostgresAppendMethod method)
    {
        await using var store = new PostgresOpStore(Options) { AppendMethod = method };
        var batch = new List<Collab.Engine.Sequencing.OpRecord>();
        for (var v = 1; v <= 1500; v++)
        {
            batch.Add(StorageTestData.Op("baseline", v, author: v % 3 == 0 ? null : "someone"));
        }

        await store.AppendAsync([StorageTestData.Op("fenced", 2, clientId: "rival")], default);
        batch.Add(StorageTestData.Op("fenced", 1));
        batch.Add(StorageTestData.Op("fenced", 2));

        var result = await store.AppendAsync(batch, default);

        Assert.Equal(["fenced"], result.ConflictedDocs);
        StorageTestData.AssertSame(batch.Take(1500).ToList(), await store.ReadOpsAsync("baseline", 0, 2000, 2000, default));
    }

    private async Task<T> ScalarAsync<T>(string sql, params object[] parameters)
    {
        await using var connection = new NpgsqlConnection(Options.PostgresConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var p in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = p });
        }

        return (T)(await command.ExecuteScalarAsync())!;
    }
}

/// <summary>The conformance suite against the in-memory test double, so the property tests' store is proven faithful.</summary>
public sealed class InMemoryOpStoreTests : OpStoreConformanceTests
{
    private readonly InMemoryOpStore _store = new(snapshotsToKeep: 2);

    protected override Task<IOpStore> OpenStoreAsync() => Task.FromResult<IOpStore>(_store);

    protected override Task<long> CountSnapshotsAsync(string docId) => Task.FromResult(_store.SnapshotCount(docId));
}
