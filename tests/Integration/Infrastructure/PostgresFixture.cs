namespace Collab.Integration.Tests.Infrastructure;

/// <summary>One PostgreSQL cluster for every test in the <see cref="PostgresCollection"/>; each test creates its own database.</summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private PostgresServer? _server;

    /// <summary>The shared cluster.</summary>
    public PostgresServer Server => _server ?? throw new InvalidOperationException("The PostgreSQL fixture is not started.");

    /// <summary>A fresh database on the shared cluster.</summary>
    public Task<string> CreateDatabaseAsync(string prefix = "collab") => Server.CreateDatabaseAsync(prefix);

    public async Task InitializeAsync() => _server = await PostgresServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>Tests sharing one PostgreSQL cluster (they run one after another; other collections run alongside).</summary>
[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>
{
    public const string Name = "PostgreSQL";
}
