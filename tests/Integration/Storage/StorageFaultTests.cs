using System.Collections.Concurrent;
using Collab.Integration.Tests.Infrastructure;
using Collab.Server.Storage;
using Microsoft.Data.Sqlite;
using Npgsql;
using Prometheus;
using static Collab.Integration.Tests.Storage.StorageTestData;

namespace Collab.Integration.Tests.Storage;

/// <summary>
/// Real outages: PostgreSQL stopped or killed while the group-commit stage commits under load (on a cluster of its own,
/// so the shared one stays up), and a SQLite file locked by another process.
/// </summary>
public sealed class PostgresOutageTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private PostgresServer? _server;

    private PostgresServer Server => _server!;

    public async Task InitializeAsync() => _server = await PostgresServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Acknowledged_ops_survive_a_database_outage_under_load_exactly_once(bool kill)
    {
        var options = new StorageOptions
        {
            Provider = StorageProvider.Postgres,
            PostgresConnectionString = await Server.CreateDatabaseAsync("outage"),
            PostgresPartitions = 4,
            RetryInitialDelay = TimeSpan.FromMilliseconds(20),
            RetryMaxDelay = TimeSpan.FromMilliseconds(200),
        };
        await using var store = new PostgresOpStore(options);
        await store.InitializeAsync(default);
        var registry = Metrics.NewCustomRegistry();
        await using var stage = new GroupCommitStage(store, options, metrics: new StorageMetrics(registry));

        const int Docs = 16;
        const int Window = 8;
        var acked = new ConcurrentDictionary<(string DocId, long Version), bool>();
        var issued = new long[Docs];
        using var stopProducers = new CancellationTokenSource();

        async Task ProduceAsync(int d)
        {
            var docId = $"doc-{d}";
            var outstanding = new Queue<(long Version, Task Commit)>();
            while (!stopProducers.IsCancellationRequested)
            {
                var version = ++issued[d];
                outstanding.Enqueue((version, stage.CommitAsync(Op(docId, version, clientId: $"client-{d}"), default).AsTask()));
                if (outstanding.Count == Window)
                {
                    var (v, commit) = outstanding.Dequeue();
                    await commit;
                    Assert.True(acked.TryAdd((docId, v), true));
                }
            }

            while (outstanding.Count > 0)
            {
                var (v, commit) = outstanding.Dequeue();
                await commit;
                Assert.True(acked.TryAdd((docId, v), true));
            }
        }

        var producers = Enumerable.Range(0, Docs).Select(d => Task.Run(() => ProduceAsync(d))).ToArray();
        await WaitUntilAsync(() => acked.Count >= 400);

        if (kill)
        {
            Server.Kill();
        }
        else
        {
            await Server.StopAsync(PostgresStopMode.Immediate);
        }

        await WaitUntilAsync(() => !stage.IsHealthy);
        Assert.Equal(0, registry.GetGaugeValue("collab_storage_ready"));

        // While the database is down nothing is acknowledged: the calls stay pending.
        await Task.Delay(300);
        var ackedDuringOutage = acked.Count;
        await Task.Delay(700);
        Assert.Equal(ackedDuringOutage, acked.Count);
        Assert.DoesNotContain(producers, p => p.IsCompleted);

        await Server.StartAsync();
        await WaitUntilAsync(() => stage.IsHealthy && acked.Count > ackedDuringOutage + 200);
        await stopProducers.CancelAsync();
        await Task.WhenAll(producers).WaitAsync(Timeout);

        // Every call was acknowledged, and the op log holds exactly the acknowledged ops: no gap, no duplicate.
        for (var d = 0; d < Docs; d++)
        {
            var docId = $"doc-{d}";
            var stored = await store.ReadOpsAsync(docId, 0, long.MaxValue, int.MaxValue, default);
            Assert.Equal(Enumerable.Range(1, (int)issued[d]).Select(v => (long)v), stored.Select(o => o.Version));
            Assert.All(stored, o => Assert.True(acked.ContainsKey((docId, o.Version))));
            Assert.Equal(issued[d], acked.Keys.Count(k => k.DocId == docId));
        }

        Assert.True(registry.GetCounterValue("collab_storage_commit_failures_total") >= 1);
        Assert.Equal(0, registry.GetCounterValue("collab_storage_conflicts_total"));
    }

    [Fact]
    public async Task The_store_throws_while_the_database_is_down_and_recovers_after_restart()
    {
        var options = new StorageOptions { Provider = StorageProvider.Postgres, PostgresConnectionString = await Server.CreateDatabaseAsync("down") };
        await using var store = new PostgresOpStore(options);
        await store.InitializeAsync(default);
        await store.AppendAsync(Ops("doc", 1, 3), default);

        await Server.StopAsync(PostgresStopMode.Fast);
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => store.AppendAsync(Ops("doc", 4, 6), default).AsTask());
        Assert.True(StorageErrors.IsTransient(failure), $"Not classified as transient: {failure}");
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => store.LoadAsync("doc", default).AsTask());

        await Server.StartAsync();
        Assert.Empty((await RetryAsync(() => store.AppendAsync(Ops("doc", 4, 6), default).AsTask())).ConflictedDocs);
        AssertSame(Ops("doc", 1, 6), (await store.LoadAsync("doc", default))!.Ops);
    }

    private static async Task<T> RetryAsync<T>(Func<Task<T>> action)
    {
        // Pooled connections from before the restart fail once each; the group-commit stage's retry does the same.
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await action();
            }
            catch (NpgsqlException) when (attempt < 10)
            {
                await Task.Delay(50);
            }
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "Condition not reached in time.");
            await Task.Delay(10);
        }
    }
}

/// <summary>A SQLite file write-locked by another connection: commits wait, readiness drops, and all resumes after.</summary>
public sealed class SqliteLockTests : IDisposable
{
    private readonly string _directory = TempDirectory();

    [Fact]
    public async Task A_write_locked_database_keeps_calls_pending_until_the_lock_is_released()
    {
        var options = new StorageOptions
        {
            DataDirectory = _directory,
            SqliteBusyTimeout = TimeSpan.FromMilliseconds(100),
            RetryInitialDelay = TimeSpan.FromMilliseconds(10),
            RetryMaxDelay = TimeSpan.FromMilliseconds(100),
        };
        await using var store = new SqliteOpStore(options);
        await store.InitializeAsync(default);
        await using var stage = new GroupCommitStage(store, options, metrics: new StorageMetrics(Metrics.NewCustomRegistry()));

        await using (var locker = new SqliteConnection($"Data Source={options.SqlitePath};Pooling=False"))
        {
            await locker.OpenAsync();
            await using (var begin = locker.CreateCommand())
            {
                begin.CommandText = "BEGIN IMMEDIATE";
                await begin.ExecuteNonQueryAsync();
            }

            var calls = Enumerable.Range(1, 10).Select(v => stage.CommitAsync(Op("doc", v), default).AsTask()).ToList();
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (stage.IsHealthy)
            {
                Assert.True(DateTime.UtcNow < deadline, "The stage never noticed the lock.");
                await Task.Delay(10);
            }

            Assert.DoesNotContain(calls, c => c.IsCompleted);
            await using (var rollback = locker.CreateCommand())
            {
                rollback.CommandText = "ROLLBACK";
                await rollback.ExecuteNonQueryAsync();
            }

            await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(30));
        }

        Assert.True(stage.IsHealthy);
        AssertSame(Ops("doc", 1, 10), (await store.LoadAsync("doc", default))!.Ops);
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }
}
