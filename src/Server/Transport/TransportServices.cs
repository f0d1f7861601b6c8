using System.Collections.Frozen;
using Microsoft.Extensions.Logging.Abstractions;

namespace Collab.Server.Transport;

/// <summary>A small complete response (probes, metrics, admin commands): served by the HTTP pipeline and by the management port.</summary>
internal readonly record struct PlainHttpResponse(int StatusCode, string ContentType, ReadOnlyMemory<byte> Body)
{
    /// <summary>Writes it as the pipeline's response, with a Content-Length and never cached.</summary>
    public async Task WriteToAsync(HttpResponse response, CancellationToken cancellationToken)
    {
        response.StatusCode = StatusCode;
        response.ContentType = ContentType;
        response.ContentLength = Body.Length;
        response.Headers.CacheControl = "no-store";
        await response.Body.WriteAsync(Body, cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>Everything a connection needs, shared by all connections of one server (one allocation, not one per connection).</summary>
internal sealed class TransportServices
{
    public TransportServices(
        TransportOptions options,
        IWebSocketApplication application,
        ConnectionRegistry registry,
        ILogger? logger = null,
        bool inlineOutput = false)
    {
        Options = options;
        Application = application;
        Registry = registry;
        Logger = logger ?? NullLogger.Instance;
        InlineOutput = inlineOutput;
        PingIntervalMs = (long)options.PingInterval.TotalMilliseconds;
        HandshakeTimeoutMs = (long)options.HandshakeTimeout.TotalMilliseconds;
        CloseTimeoutMs = (long)options.CloseTimeout.TotalMilliseconds;
        AllowedOrigins = options.AllowedOrigins.ToFrozenSet(StringComparer.OrdinalIgnoreCase);
    }

    public TransportOptions Options { get; }

    public IWebSocketApplication Application { get; }

    public ConnectionRegistry Registry { get; }

    public FrozenSet<string> AllowedOrigins { get; }

    public ILogger Logger { get; }

    /// <summary>
    /// Write queued frames on the thread that queued them instead of a thread-pool work item. Only
    /// for deterministic in-memory tests (allocation measurement on one thread).
    /// </summary>
    public bool InlineOutput { get; }

    public long PingIntervalMs { get; }

    public long HandshakeTimeoutMs { get; }

    public long CloseTimeoutMs { get; }
}
