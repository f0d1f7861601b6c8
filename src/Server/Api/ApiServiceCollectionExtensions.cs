using Collab.Server.Storage;

namespace Collab.Server.Api;

/// <summary>Registers and maps the HTTP API (docs/API.md).</summary>
internal static class ApiServiceCollectionExtensions
{
    /// <summary>
    /// The API's services, source-generated JSON for its bodies and the OpenAPI document. With
    /// <see cref="StorageOptions.ReadReplicaConnectionString"/> a second, read-only PostgreSQL store reads past versions
    /// from the replica.
    /// </summary>
    public static IServiceCollection AddCollabApi(this IServiceCollection services, ApiOptions options, StorageOptions storage)
    {
        options.Validate(storage.SnapshotEveryOps);
        services.AddSingleton(options);
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, ApiJsonContext.Default));
        services.AddOpenApi(ApiEndpoints.OpenApiDocument, openApi => openApi.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "Collab HTTP API";
            document.Info.Description = "Documents, history, time travel and server-side edits. Errors are RFC 9457 problem details with the wire protocol's error codes (docs/API.md).";
            return Task.CompletedTask;
        }));
        services.AddSingleton(sp => new ApiCaller(sp.GetRequiredService<Security.SecurityServices>()));
        if (!string.IsNullOrWhiteSpace(storage.ReadReplicaConnectionString))
        {
            services.AddKeyedSingleton<IOpStore>("replica", (sp, _) => new PostgresOpStore(
                new StorageOptions { Provider = StorageProvider.Postgres, PostgresConnectionString = storage.ReadReplicaConnectionString, PostgresPartitions = storage.PostgresPartitions },
                sp.GetRequiredService<ILogger<PostgresOpStore>>()));
        }

        services.AddSingleton(sp => new HistoryReader(
            sp.GetRequiredService<IOpStore>(),
            options,
            sp.GetRequiredService<ILogger<HistoryReader>>(),
            sp.GetKeyedService<IOpStore>("replica")));
        services.AddSingleton<DocumentApi>();
        return services;
    }

    /// <summary>Maps <c>/v1</c> and <c>/openapi/v1.json</c>.</summary>
    public static WebApplication MapCollabApi(this WebApplication app)
    {
        ApiEndpoints.Map(app);
        app.MapOpenApi("/openapi/{documentName}.json");
        return app;
    }
}
