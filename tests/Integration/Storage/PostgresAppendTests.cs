using Collab.Engine.Sequencing;
using Collab.Integration.Tests.Infrastructure;
using Collab.Server.Storage;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Collab.Integration.Tests.Storage;

/// <summary>
/// How the PostgreSQL store writes a batch (issue 16 target 4): a batch that is one COPY and nothing else runs in
/// autocommit, without an explicit BEGIN / COMMIT (one round trip and one wake-up of the database backend fewer per
/// batch); a batch that creates a document keeps its transaction, so the document row and its first ops commit together.
/// Npgsql logs every transaction it starts and commits (category Npgsql.Transaction), which is what is counted here.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresAppendTests(PostgresFixture postgres)
{
    [Fact]
    public async Task Later_ops_are_written_without_an_explicit_transaction_and_a_clash_among_them_still_commits_nothing_of_that_document()
    {
        var options = new StorageOptions { Provider = StorageProvider.Postgres, PostgresPartitions = 4, PostgresConnectionString = await postgres.CreateDatabaseAsync("autocommit") };
        var logs = new RecordingLoggerProvider();
        using var factory = LoggerFactory.Create(builder => builder.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        var builder = new NpgsqlDataSourceBuilder(options.PostgresConnectionString);
        builder.UseLoggerFactory(factory);
        await using var dataSource = builder.Build();
        await using var store = new PostgresOpStore(dataSource, options);
        await store.InitializeAsync(default);

        // First ops: the document rows and the ops in one transaction.
        logs.Clear();
        await store.AppendAsync([StorageTestData.Op("auto/a", 1), StorageTestData.Op("auto/b", 1)], default);
        Assert.Equal(1, Transactions(logs, "CommittedTransaction"));
        Assert.Equal(2L, await CountAsync(dataSource, "SELECT count(*) FROM documents WHERE id LIKE 'auto/%'"));

        // Later ops only: one COPY, committed by itself.
        logs.Clear();
        List<OpRecord> later = [.. Enumerable.Range(2, 300).Select(v => StorageTestData.Op("auto/a", v)), StorageTestData.Op("auto/b", 2)];
        Assert.Empty((await store.AppendAsync(later, default)).ConflictedDocs);
        Assert.Equal(0, Transactions(logs, "StartedTransaction"));
        StorageTestData.AssertSame(later.Take(300).ToList(), await store.ReadOpsAsync("auto/a", 1, 1000, 1000, default));

        // Another writer took auto/a's version 303: the failed COPY leaves nothing behind, the retry writes auto/b's op
        // and none of auto/a's, still without a transaction.
        await store.AppendAsync([StorageTestData.Op("auto/a", 303, clientId: "rival")], default);
        logs.Clear();
        var clash = new List<OpRecord> { StorageTestData.Op("auto/a", 302), StorageTestData.Op("auto/b", 3), StorageTestData.Op("auto/a", 303) };
        var result = await store.AppendAsync(clash, default);

        Assert.Equal(["auto/a"], result.ConflictedDocs);
        Assert.Equal(0, Transactions(logs, "StartedTransaction"));
        Assert.Empty(await store.ReadOpsAsync("auto/a", 301, 302, 10, default));
        StorageTestData.AssertSame([clash[1]], await store.ReadOpsAsync("auto/b", 2, 3, 10, default));
    }

    private static async Task<long> CountAsync(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>How many transactions Npgsql logged with this event name since the last <c>Clear</c>.</summary>
    private static int Transactions(RecordingLoggerProvider logs, string eventName) =>
        logs.Entries.Count(e => e.Category == "Npgsql.Transaction" && e.Id.Name == eventName);
}
