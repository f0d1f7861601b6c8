using System.Collections.Frozen;
using Microsoft.Extensions.Logging.Abstractions;

namespace Collab.Server.Transport;

/// <summary>A plain HTTP response served on the transport port (probes, metrics).</summary>
internal readonly record struct PlainHttpResponse(int StatusCode, string ContentType, ReadOnlyMemory<byte> Body);

/// <summary>A plain HTTP request as a route handler sees it. There is never a body: the transport refuses request bodies.</summary>
internal readonly record struct PlainHttpRequest(string Method, string Path, string Query, string? Authorization);

/// <summary>Produces the response for one plain HTTP path.</summary>
internal delegate ValueTask<PlainHttpResponse> PlainHttpHandler(PlainHttpRequest request, CancellationToken cancellationToken);

/// <summary>
/// One plain HTTP path: either read-only (GET and HEAD: probes, metrics) or an action (POST without a
/// body, parameters in the query: admin commands). Other methods get 405 with the matching Allow header.
/// </summary>
internal sealed record PlainHttpRoute(PlainHttpHandler Handler, bool IsAction)
{
    public static PlainHttpRoute Get(PlainHttpHandler handler) => new(handler, IsAction: false);

    public static PlainHttpRoute Post(PlainHttpHandler handler) => new(handler, IsAction: true);

    public string AllowHeader => IsAction ? "Allow: POST\r\n" : "Allow: GET, HEAD\r\n";

    public bool Allows(HttpRequestHead request) => IsAction ? request.Method == "POST" : request.IsGet || request.IsHead;
}

/// <summary>A source of plain HTTP routes served on the transport port (registered in DI; paths must not collide).</summary>
internal interface IPlainHttpRoutes
{
    IReadOnlyDictionary<string, PlainHttpRoute> Routes { get; }
}

/// <summary>Everything a connection needs, shared by all connections of one server (one allocation, not one per connection).</summary>
internal sealed class TransportServices
{
    public TransportServices(
        TransportOptions options,
        IWebSocketApplication application,
        ConnectionRegistry registry,
        IReadOnlyDictionary<string, PlainHttpRoute>? httpRoutes = null,
        ILogger? logger = null,
        bool inlineOutput = false)
    {
        Options = options;
        Application = application;
        Registry = registry;
        HttpRoutes = (httpRoutes ?? new Dictionary<string, PlainHttpRoute>()).ToFrozenDictionary(StringComparer.Ordinal);
        Logger = logger ?? NullLogger.Instance;
        InlineOutput = inlineOutput;
        Metrics = TransportMetrics.Instance;
        PingIntervalMs = (long)options.PingInterval.TotalMilliseconds;
        HandshakeTimeoutMs = (long)options.HandshakeTimeout.TotalMilliseconds;
        CloseTimeoutMs = (long)options.CloseTimeout.TotalMilliseconds;
        AllowedOrigins = options.AllowedOrigins.ToFrozenSet(StringComparer.OrdinalIgnoreCase);
    }

    public TransportOptions Options { get; }

    public IWebSocketApplication Application { get; }

    public ConnectionRegistry Registry { get; }

    public FrozenDictionary<string, PlainHttpRoute> HttpRoutes { get; }

    public FrozenSet<string> AllowedOrigins { get; }

    public ILogger Logger { get; }

    public TransportMetrics Metrics { get; }

    /// <summary>
    /// Write queued frames on the thread that queued them instead of a thread-pool work item. Only
    /// for deterministic in-memory tests (allocation measurement on one thread).
    /// </summary>
    public bool InlineOutput { get; }

    public long PingIntervalMs { get; }

    public long HandshakeTimeoutMs { get; }

    public long CloseTimeoutMs { get; }
}
