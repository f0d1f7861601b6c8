using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Collab.Integration.Tests.Infrastructure;
using Npgsql;

namespace Collab.Integration.Tests.Api;

/// <summary>
/// Storage:ReadReplicaConnectionString against a real PostgreSQL hot standby made with pg_basebackup: explicit past
/// versions come from the standby only when it has applied them (replay paused with pg_wal_replay_pause() forces the
/// lag), everything newer and the live head from the primary, and a standby that is gone costs nothing but a metric.
/// </summary>
/// <remarks>
/// Alone, never beside other tests: it counts reads through collab_api_history_reads_total, a process-wide counter that
/// the other API test classes' in-process servers also move (a CI run saw six of their reads land in its window).
/// </remarks>
[Collection(ApiReplicaTests.Alone)]
public sealed partial class ApiReplicaTests
{
    /// <summary>The collection that runs this class with parallelization off: after every other test, on its own.</summary>
    public const string Alone = "ApiReplicaTests, alone";

    [Fact]
    public async Task Past_versions_come_from_the_replica_only_when_it_has_applied_them()
    {
        await using PostgresServer primary = await PostgresServer.StartAsync();
        string database = await primary.CreateDatabaseAsync("replica");
        string databaseName = new NpgsqlConnectionStringBuilder(database).Database!;
        PostgresServer standby = await primary.StartStandbyAsync();
        try
        {
            await using InProcessServer server = await InProcessServer.StartAsync(settings: new Dictionary<string, string?>
            {
                ["Storage:Provider"] = "Postgres",
                ["Storage:PostgresConnectionString"] = database,
                ["Storage:ReadReplicaConnectionString"] = standby.ConnectionString(databaseName),
            });
            using var api = new ApiClient(server.HttpUri);
            Assert.Equal(HttpStatusCode.Created, (await api.CreateAsync("r/a", "v1")).StatusCode);
            for (int version = 1; version < 10; version++)
            {
                Assert.Equal(HttpStatusCode.OK, (await api.SubmitAsync("r/a", version, $"[{TextLength(version)}, \".\"]")).StatusCode);
            }

            // Wait until the standby has applied version 10, then hold its replay there.
            await using var standbyConnection = new NpgsqlConnection(standby.ConnectionString(databaseName));
            await standbyConnection.OpenAsync();
            await WaitForAsync(async () => await ScalarAsync<long?>(standbyConnection, "SELECT max(version) FROM ops WHERE doc_id = 'r/a'") == 10);
            await ScalarAsync<object>(standbyConnection, "SELECT pg_wal_replay_pause()");
            await WaitForAsync(async () => await ScalarAsync<string>(standbyConnection, "SELECT pg_get_wal_replay_pause_state()") == "paused");

            for (int version = 10; version < 20; version++)
            {
                Assert.Equal(HttpStatusCode.OK, (await api.SubmitAsync("r/a", version, $"[{TextLength(version)}, \"!\"]")).StatusCode);
            }

            Assert.Equal(10, await ScalarAsync<long?>(standbyConnection, "SELECT max(version) FROM ops WHERE doc_id = 'r/a'"));

            // Applied on the standby: read there.
            (long replica, long primaryReads) = await ReadsAsync(api);
            Assert.Equal("v1....", (await api.GetJsonAsync("r/a", "?version=5")).GetProperty("content").GetString());
            Assert.Equal((replica + 1, primaryReads), await ReadsAsync(api));

            // Not yet applied there: the primary, with the right content.
            Assert.Equal("v1.........!!!!!", (await api.GetJsonAsync("r/a", "?version=15")).GetProperty("content").GetString());
            Assert.Equal((replica + 1, primaryReads + 1), await ReadsAsync(api));

            // The live head never comes from the standby (it would be ten versions behind).
            JsonElement head = await api.GetJsonAsync("r/a");
            Assert.Equal(20, head.GetProperty("version").GetInt64());
            Assert.Equal("v1.........!!!!!!!!!!", head.GetProperty("content").GetString());
            Assert.Equal((replica + 1, primaryReads + 1), await ReadsAsync(api));

            // A standby that is gone: the primary answers, and the failure is counted.
            await ScalarAsync<object>(standbyConnection, "SELECT pg_wal_replay_resume()");
            await standbyConnection.CloseAsync();
            await standby.StopAsync(PostgresStopMode.Immediate);
            long failures = await MetricAsync(api, "collab_api_replica_failures_total");
            Assert.Equal("v1....", (await api.GetJsonAsync("r/a", "?version=5")).GetProperty("content").GetString());
            Assert.Equal(failures + 1, await MetricAsync(api, "collab_api_replica_failures_total"));
            Assert.Equal((replica + 1, primaryReads + 2), await ReadsAsync(api));
        }
        finally
        {
            await standby.DisposeAsync();
        }
    }

    /// <summary>The text before op <paramref name="version"/>+1: "v1" then one character per op.</summary>
    private static int TextLength(int version) => 2 + version - 1;

    private static async Task<(long Replica, long Primary)> ReadsAsync(ApiClient api) =>
        (await MetricAsync(api, "collab_api_history_reads_total{source=\"replica\"}"), await MetricAsync(api, "collab_api_history_reads_total{source=\"primary\"}"));

    private static async Task<long> MetricAsync(ApiClient api, string series)
    {
        string text = await api.Http.GetStringAsync("/metrics");
        Match match = Regex.Match(text, "(?m)^" + Regex.Escape(series) + " ([0-9.e+]+)$");
        return match.Success ? (long)double.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
    }

    private static async Task<T?> ScalarAsync<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        object? value = await command.ExecuteScalarAsync();
        return value is DBNull or null ? default : (T)value;
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        for (int i = 0; i < 300; i++)
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail("timed out waiting for the standby");
    }
}

/// <summary>See <see cref="ApiReplicaTests"/>'s remarks.</summary>
[CollectionDefinition(ApiReplicaTests.Alone, DisableParallelization = true)]
public sealed class ApiReplicaTestsCollection;
