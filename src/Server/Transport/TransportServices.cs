using System.Collections.Frozen;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Collab.Server.Transport;

/// <summary>A plain HTTP response served on the transport port (probes, metrics).</summary>
internal readonly record struct PlainHttpResponse(int StatusCode, string ContentType, ReadOnlyMemory<byte> Body);

/// <summary>Produces the response for one plain HTTP path.</summary>
internal delegate ValueTask<PlainHttpResponse> PlainHttpHandler(CancellationToken cancellationToken);

/// <summary>Everything a connection needs, shared by all connections of one server (one allocation, not one per connection).</summary>
internal sealed class TransportServices
{
    public TransportServices(
        TransportOptions options,
        IWebSocketApplication application,
        ConnectionRegistry registry,
        IReadOnlyDictionary<string, PlainHttpHandler>? httpRoutes = null,
        ILogger? logger = null,
        bool inlineOutput = false)
    {
        Options = options;
        Application = application;
        Registry = registry;
        HttpRoutes = (httpRoutes ?? new Dictionary<string, PlainHttpHandler>()).ToFrozenDictionary(StringComparer.Ordinal);
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

    public FrozenDictionary<string, PlainHttpHandler> HttpRoutes { get; }

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
