using Collab.Integration.Tests.Infrastructure;
using Collab.Server.Storage;

namespace Collab.Integration.Tests.Storage;

/// <summary>The group-commit stage over the embedded SQLite store.</summary>
public sealed class SqliteGroupCommitStageTests : GroupCommitStageTests
{
    private readonly string _directory = StorageTestData.TempDirectory();

    protected override bool StoreCommitsSynchronously => true;

    protected override async Task<IOpStore> OpenInnerStoreAsync()
    {
        var store = new SqliteOpStore(new StorageOptions { DataDirectory = _directory });
        await store.InitializeAsync(default);
        return store;
    }

    protected override Task CleanupAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }
}

/// <summary>The group-commit stage over PostgreSQL (a fresh database per test on the shared cluster).</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresGroupCommitStageTests(PostgresFixture postgres) : GroupCommitStageTests
{
    protected override async Task<IOpStore> OpenInnerStoreAsync()
    {
        var store = new PostgresOpStore(new StorageOptions
        {
            Provider = StorageProvider.Postgres,
            PostgresConnectionString = await postgres.CreateDatabaseAsync("stage"),
            PostgresPartitions = 4,
        });
        await store.InitializeAsync(default);
        return store;
    }
}
