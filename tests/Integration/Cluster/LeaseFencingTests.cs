using System.Diagnostics;
using Collab.Engine.Sequencing;
using Collab.Integration.Tests.Infrastructure;
using Collab.Server.Cluster;
using Collab.Server.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Collab.Integration.Tests.Cluster;

/// <summary>Leases in PostgreSQL and the op store's write fence, against a real database: two nodes, one document.</summary>
[Collection(PostgresCollection.Name)]
public sealed class LeaseFencingTests(PostgresFixture postgres) : IAsyncLifetime
{
    // The write timeout is also every fenced write's statement timeout: 500 ms let a COPY time out under ./test.sh at load
    // average 40 (57014 in the first append). Nothing here waits for it to pass except the frozen-writer takeover.
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(8);
    private static readonly TimeSpan WriteTimeout = TimeSpan.FromSeconds(2);

    private readonly List<IAsyncDisposable> _owned = [];
    private StorageOptions _storage = null!;

    public async Task InitializeAsync()
    {
        _storage = new StorageOptions { Provider = StorageProvider.Postgres, PostgresConnectionString = await postgres.CreateDatabaseAsync("leases") };
        await using var store = new PostgresOpStore(_storage);
        await store.InitializeAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        foreach (IAsyncDisposable item in _owned)
        {
            await item.DisposeAsync();
        }
    }

    [Fact]
    public async Task Only_the_live_lease_holder_writes_and_every_acquisition_bumps_the_epoch()
    {
        (LeaseStore leasesA, LeaseTable tableA, PostgresOpStore storeA) = Node("A");
        (LeaseStore leasesB, LeaseTable tableB, PostgresOpStore storeB) = Node("B");

        long sent = Stopwatch.GetTimestamp();
        Assert.Equal(1, await leasesA.TryAcquireAsync("doc", WriteTimeout, default));
        tableA.Add("doc", 1, sent);
        Assert.Null(await leasesB.TryAcquireAsync("doc", WriteTimeout, default));

        Assert.Empty((await storeA.AppendAsync([Op("doc", 1, "a"), Op("doc", 2, "a")], default)).ConflictedDocs);

        // B has no lease: its op store refuses the document before touching the log.
        tableB.Add("doc", 1, Stopwatch.GetTimestamp());
        Assert.Equal(["doc"], (await storeB.AppendAsync([Op("doc", 3, "b")], default)).ConflictedDocs);

        // A hands off; B takes over with epoch 2; A's belief (epoch 1) no longer writes.
        Assert.Equal(["doc"], await leasesA.RenewAsync([("doc", 1)], default));
        await leasesA.ReleaseAsync("doc", 1, default);
        Assert.Empty(await leasesA.RenewAsync([("doc", 1)], default));
        Assert.Equal(2, await leasesB.TryAcquireAsync("doc", WriteTimeout, default));
        tableB.Add("doc", 2, Stopwatch.GetTimestamp());
        Assert.Equal(["doc"], (await storeA.AppendAsync([Op("doc", 3, "a")], default)).ConflictedDocs);
        Assert.Empty((await storeB.AppendAsync([Op("doc", 3, "b")], default)).ConflictedDocs);

        // A lease B holds but whose local deadline passed is not used, even though the database would still accept it.
        tableB.Add("doc", 2, Stopwatch.GetTimestamp() - (10 * Stopwatch.Frequency));
        Assert.Equal(["doc"], (await storeB.AppendAsync([Op("doc", 4, "b")], default)).ConflictedDocs);

        Assert.Equal([(1L, 1L), (2L, 1L), (3L, 2L)], await VersionsAndEpochsAsync("doc"));
        Dictionary<string, LeaseRow> rows = await leasesA.ReadAsync(["doc", "never"], default);
        Assert.Equal(new LeaseRow("doc", "B", 2, true), rows["doc"]);
        Assert.False(rows.ContainsKey("never"));
        Assert.Equal(3, (await leasesA.ReadVersionsAsync(["doc", "never"], default))["doc"]);
    }

    [Fact]
    public async Task An_expired_lease_is_neither_renewed_nor_written_under_and_a_rival_takes_it()
    {
        (LeaseStore leasesA, LeaseTable tableA, PostgresOpStore storeA) = Node("A");
        (LeaseStore leasesB, _, _) = Node("B");
        Assert.Equal(1, await leasesA.TryAcquireAsync("doc", WriteTimeout, default));
        tableA.Add("doc", 1, Stopwatch.GetTimestamp());
        await ExpireAsync("doc");

        // The local deadline still says yes, the database says no: the write is refused all the same.
        Assert.Equal(["doc"], (await storeA.AppendAsync([Op("doc", 1, "a")], default)).ConflictedDocs);
        Assert.Empty(await leasesA.RenewAsync([("doc", 1)], default));
        Assert.Equal(2, await leasesB.TryAcquireAsync("doc", WriteTimeout, default));
        Assert.Empty(await VersionsAndEpochsAsync("doc"));
    }

    [Fact]
    public async Task Taking_over_ends_a_frozen_writer_that_holds_the_lease_row_mid_copy()
    {
        (LeaseStore leasesA, _, _) = Node("A");
        (LeaseStore leasesB, _, _) = Node("B");
        Assert.Equal(1, await leasesA.TryAcquireAsync("doc", WriteTimeout, default));

        // A's writer, frozen after its fence check: the row is locked and a COPY waits for data that never comes
        // (PostgreSQL's statement timeout does not fire while COPY waits for the client).
        await using NpgsqlDataSource writerSource = LeaseStore.CreateWriterDataSource(_storage, "A");
        await using NpgsqlConnection writer = await writerSource.OpenConnectionAsync();
        await using NpgsqlTransaction transaction = await writer.BeginTransactionAsync();
        await using (var check = new NpgsqlCommand("SELECT 1 FROM doc_leases WHERE doc_id = 'doc' FOR KEY SHARE", writer, transaction))
        {
            await check.ExecuteScalarAsync();
        }

        NpgsqlBinaryImporter frozenCopy = await writer.BeginBinaryImportAsync("COPY ops (doc_id, version, client_id, client_seq, op, ts, epoch) FROM STDIN (FORMAT BINARY)");
        await frozenCopy.StartRowAsync();
        await frozenCopy.WriteAsync("doc", NpgsqlDbType.Text);
        await frozenCopy.WriteAsync(1L, NpgsqlDbType.Bigint);

        // While A's lease is live nobody takes it, and a live writer is left alone.
        Assert.Null(await leasesB.TryAcquireAsync("doc", WriteTimeout, default));
        await ExpireAsync("doc");
        await Task.Delay(WriteTimeout + TimeSpan.FromMilliseconds(200));

        var clock = Stopwatch.StartNew();
        long? epoch = null;
        while (epoch is null && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            epoch = await leasesB.TryAcquireAsync("doc", WriteTimeout, default);
        }

        Assert.Equal(2, epoch);

        // The frozen writer was terminated: nothing it started can commit.
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await frozenCopy.WriteAsync(1L, NpgsqlDbType.Bigint);
            await frozenCopy.CompleteAsync();
            await transaction.CommitAsync();
        });
        Assert.Empty(await VersionsAndEpochsAsync("doc"));
    }

    private (LeaseStore Leases, LeaseTable Table, PostgresOpStore Store) Node(string nodeId)
    {
        var options = new ClusterOptions { LeaseDuration = Lease, RenewInterval = TimeSpan.FromSeconds(1), LeaseSafetyMargin = WriteTimeout };
        var table = new LeaseTable(nodeId, options);
        var leases = new LeaseStore(_storage, nodeId, Lease, table.WriteTimeout);
        NpgsqlDataSource source = LeaseStore.CreateWriterDataSource(_storage, nodeId);
        var store = new PostgresOpStore(source, _storage) { WriteFence = table };
        _owned.Add(leases);
        _owned.Add(store);
        _owned.Add(source);
        return (leases, table, store);
    }

    private static OpRecord Op(string docId, long version, string client) =>
        new(docId, version, client, version, null, new byte[] { 1, 0 }, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());

    private async Task ExpireAsync(string docId)
    {
        await using var connection = new NpgsqlConnection(_storage.PostgresConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("UPDATE doc_leases SET expires_at = clock_timestamp() - interval '1 second' WHERE doc_id = $1", connection);
        command.Parameters.AddWithValue(docId);
        await command.ExecuteNonQueryAsync();
    }

    private async Task<List<(long Version, long Epoch)>> VersionsAndEpochsAsync(string docId)
    {
        var rows = new List<(long, long)>();
        await using var connection = new NpgsqlConnection(_storage.PostgresConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT version, epoch FROM ops WHERE doc_id = $1 ORDER BY version", connection);
        command.Parameters.AddWithValue(docId);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetInt64(0), reader.GetInt64(1)));
        }

        return rows;
    }
}
