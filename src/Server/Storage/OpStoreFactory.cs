namespace Collab.Server.Storage;

/// <summary>Creates the configured <see cref="IOpStore"/>.</summary>
public static class OpStoreFactory
{
    /// <summary>
    /// Validates <paramref name="options"/> and creates the store it names. The store is not initialised yet: call
    /// <see cref="IOpStore.InitializeAsync"/> (runs migrations) before use.
    /// </summary>
    public static IOpStore Create(StorageOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return options.Provider switch
        {
            StorageProvider.Postgres => new PostgresOpStore(options, loggerFactory?.CreateLogger<PostgresOpStore>()),
            _ => new SqliteOpStore(options, loggerFactory?.CreateLogger<SqliteOpStore>()),
        };
    }
}
