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
        services.AddSingleton(sp => new ApiCaller(sp.GetRequiredService<Security.SecurityServices>(), sp.GetRequiredService<Transport.TransportOptions>().AllowedOrigins));
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
        // Errors that routing answers itself (404 for an unknown /v1 path, 405, 415 for a body that is not JSON) come
        // without a body: under /v1 they get the problem details every other API error has.
        app.Use(async (context, next) =>
        {
            await next(context).ConfigureAwait(false);
            HttpResponse response = context.Response;
            if (response.StatusCode >= 400 && !response.HasStarted && response.ContentLength is null && response.ContentType is null
                && context.Request.Path.StartsWithSegments("/v1", StringComparison.Ordinal))
            {
                string detail = response.StatusCode switch
                {
                    StatusCodes.Status404NotFound => "No such API route.",
                    StatusCodes.Status405MethodNotAllowed => $"{context.Request.Method} is not allowed here.",
                    StatusCodes.Status415UnsupportedMediaType => "Send the body as application/json.",
                    _ => "The request was refused.",
                };
                response.Headers.CacheControl = "no-store";
                await ApiProblem.Http(response.StatusCode, response.StatusCode == StatusCodes.Status404NotFound ? "NOT_FOUND" : "BAD_MESSAGE", detail)
                    .ExecuteAsync(context).ConfigureAwait(false);
            }
        });
        ApiEndpoints.Map(app);
        app.MapOpenApi("/openapi/{documentName}.json");
        return app;
    }
}
