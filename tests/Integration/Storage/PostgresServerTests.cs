using Collab.Integration.Tests.Infrastructure;
using Npgsql;

namespace Collab.Integration.Tests.Storage;

/// <summary>The harness itself: a real cluster that survives stop/start with its data, and restarts after a kill.</summary>
public sealed class PostgresServerTests
{
    [Fact]
    public async Task Cluster_keeps_committed_rows_across_immediate_stop_and_kill()
    {
        await using var server = await PostgresServer.StartAsync();
        var connectionString = await server.CreateDatabaseAsync("harness");
        await ExecuteAsync(connectionString, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)");
        Assert.Equal("on", await ScalarAsync<string>(connectionString, "SHOW fsync"));

        await server.StopAsync(PostgresStopMode.Immediate);
        Assert.False(server.IsRunning);
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => ExecuteAsync(connectionString, "SELECT 1"));

        await server.StartAsync();
        await ExecuteAsync(connectionString, "INSERT INTO t VALUES (2)");
        server.Kill();
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => ExecuteAsync(connectionString, "SELECT 1"));

        await server.StartAsync();
        Assert.Equal(3L, await ScalarAsync<long>(connectionString, "SELECT sum(v) FROM t"));
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<T> ScalarAsync<T>(string connectionString, string sql)
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
