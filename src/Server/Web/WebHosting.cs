using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.FileProviders;
using Microsoft.Net.Http.Headers;

namespace Collab.Server.Web;

/// <summary>
/// Serves the browser page with ASP.NET Core's static files (content types, ETag and Last-Modified, If-None-Match and
/// If-Modified-Since answered 304, ranges) from <see cref="WebOptions.RootPath"/>, with one caching rule:
/// <list type="bullet">
/// <item>files under <c>/assets/</c> are content-hashed by the web build (their name changes with their content), so
/// they are <c>public, max-age=31536000, immutable</c>;</item>
/// <item>HTML (and <c>/</c> and <c>/d/{id}</c>, which serve index.html) is <c>no-store</c>: it names the current assets
/// and must never be served stale (the naive design's CDN served stale documents);</item>
/// <item>anything else (favicon.ico, robots.txt) is <c>no-cache</c>: cached, revalidated with its ETag every time.</item>
/// </list>
/// Every response carries <c>X-Content-Type-Options: nosniff</c>.
/// </summary>
internal static partial class WebHosting
{
    /// <summary>Where the web build puts content-hashed files.</summary>
    public const string AssetsPrefix = "/assets/";

    private const string Immutable = "public, max-age=31536000, immutable";

    public static void Map(WebApplication app, WebOptions options)
    {
        string root = options.ResolvedRootPath;
        ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Collab.Server.Web");
        string index = Path.Combine(root, "index.html");
        if (!File.Exists(index))
        {
            LogNotBuilt(logger, root);
        }
        else
        {
            LogServing(logger, root);
        }

        var contentTypes = new FileExtensionContentTypeProvider();
        contentTypes.Mappings[".mjs"] = "text/javascript";
        contentTypes.Mappings[".map"] = "application/json";
        contentTypes.Mappings[".webmanifest"] = "application/manifest+json";
        contentTypes.Mappings[".wasm"] = "application/wasm";
        if (Directory.Exists(root))
        {
            app.UseStaticFiles(new StaticFileOptions
            {
                FileProvider = new PhysicalFileProvider(root),
                ContentTypeProvider = contentTypes,
                OnPrepareResponse = context => SetCaching(context.Context.Response, context.Context.Request.Path, context.File.Name),
            });
        }

        app.MapMethods("/", [HttpMethods.Get, HttpMethods.Head], (HttpContext context) => ServeIndex(context, index)).ExcludeFromDescription();
        app.MapMethods("/d/{**id}", [HttpMethods.Get, HttpMethods.Head], (HttpContext context) => ServeIndex(context, index)).ExcludeFromDescription();
    }

    /// <summary>The page for <c>/</c> and <c>/d/{id}</c>: index.html, never cached.</summary>
    private static IResult ServeIndex(HttpContext context, string index)
    {
        var file = new FileInfo(index);
        context.Response.Headers.XContentTypeOptions = "nosniff";
        context.Response.Headers.CacheControl = "no-store";
        if (!file.Exists)
        {
            return TypedResults.Text("The page is not built: build web/ (its bundle goes to the server's wwwroot), or set Web:Enabled=false.\n", "text/plain; charset=utf-8", statusCode: StatusCodes.Status404NotFound);
        }

        // The same entity tag as the static files middleware gives the file (length and modification time).
        long ticks = file.LastWriteTimeUtc.ToFileTimeUtc() ^ file.Length;
        var tag = new EntityTagHeaderValue("\"" + Convert.ToString(ticks, 16) + "\"");
        return TypedResults.PhysicalFile(file.FullName, "text/html; charset=utf-8", lastModified: file.LastWriteTimeUtc, entityTag: tag);
    }

    private static void SetCaching(HttpResponse response, PathString path, string name)
    {
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers.CacheControl = path.StartsWithSegments(AssetsPrefix.TrimEnd('/'), StringComparison.Ordinal)
            ? Immutable
            : name.EndsWith(".html", StringComparison.OrdinalIgnoreCase) || name.EndsWith(".htm", StringComparison.OrdinalIgnoreCase)
                ? "no-store"
                : "no-cache";
    }

    [LoggerMessage(1400, LogLevel.Information, "Serving the page from {Root}")]
    private static partial void LogServing(ILogger logger, string root);

    [LoggerMessage(1401, LogLevel.Warning, "The page is enabled but {Root} holds no index.html: build web/ or set Web:Enabled=false")]
    private static partial void LogNotBuilt(ILogger logger, string root);
}
