using System.Text;
using Collab.Server.Transport;
using Prometheus;

namespace Collab.Server.Hosting;

/// <summary>
/// /healthz (process alive), /readyz (every <see cref="IReadinessCheck"/> ready) and /metrics (Prometheus text format
/// from prometheus-net's default registry): on the public port through the HTTP pipeline (<see cref="Map"/>), and, when
/// configured, on the management port (<see cref="ManagementListener"/>), which answers from the same methods.
/// </summary>
internal sealed class ProbeEndpoints
{
    public const string HealthzPath = "/healthz";
    public const string ReadyzPath = "/readyz";
    public const string MetricsPath = "/metrics";

    private const string TextPlain = "text/plain; charset=utf-8";
    private const string PrometheusText = "text/plain; version=0.0.4; charset=utf-8";
    private static readonly ReadOnlyMemory<byte> s_ok = "ok\n"u8.ToArray();

    private readonly ReadinessRegistry _readiness;

    public ProbeEndpoints(ReadinessRegistry readiness)
    {
        _readiness = readiness;

        // Before the first scrape, also for hosts built without CollabServerHost (tests): which default series exist.
        MetricsDefaults.Apply();
    }

    /// <summary>Whether <paramref name="path"/> is one of the probes.</summary>
    public static bool IsProbe(string path) => path is HealthzPath or ReadyzPath or MetricsPath;

    /// <summary>The response for a probe path (one <see cref="IsProbe"/> accepts).</summary>
    public ValueTask<PlainHttpResponse> ServeAsync(string path, CancellationToken cancellationToken)
    {
        switch (path)
        {
            case HealthzPath:
                return ValueTask.FromResult(new PlainHttpResponse(200, TextPlain, s_ok));
            case ReadyzPath:
                return ValueTask.FromResult(Readyz());
            case MetricsPath:
                return MetricsAsync(cancellationToken);
            default:
                throw new ArgumentOutOfRangeException(nameof(path), path, "Not a probe path.");
        }
    }

    /// <summary>
    /// Maps the probes on the public port's pipeline (GET and HEAD). With <see cref="TransportOptions.ManagementEndpointsPrivate"/>
    /// only /healthz is mapped there: /readyz and /metrics are then served on the management port alone.
    /// </summary>
    public static void Map(IEndpointRouteBuilder endpoints, TransportOptions options)
    {
        string[] paths = options.ManagementEndpointsPrivate ? [HealthzPath] : [HealthzPath, ReadyzPath, MetricsPath];
        foreach (string path in paths)
        {
            endpoints.MapMethods(path, [HttpMethods.Get, HttpMethods.Head], (HttpContext context, ProbeEndpoints probes) => probes.WriteAsync(context, path))
                .ExcludeFromDescription();
        }
    }

    private async Task WriteAsync(HttpContext context, string path)
    {
        PlainHttpResponse answer = await ServeAsync(path, context.RequestAborted).ConfigureAwait(false);
        await answer.WriteToAsync(context.Response, context.RequestAborted).ConfigureAwait(false);
    }

    private PlainHttpResponse Readyz()
    {
        bool ready = _readiness.Evaluate(out IReadOnlyList<(string Name, ReadinessResult Result)> results);
        var body = new StringBuilder(ready ? "ready\n" : "not ready\n");
        foreach ((string name, ReadinessResult result) in results)
        {
            body.Append(name).Append(": ").Append(result.IsReady ? "ok" : result.Reason ?? "not ready").Append('\n');
        }

        return new PlainHttpResponse(ready ? 200 : 503, TextPlain, Encoding.UTF8.GetBytes(body.ToString()));
    }

    private static async ValueTask<PlainHttpResponse> MetricsAsync(CancellationToken cancellationToken)
    {
        using var stream = new MemoryStream();
        await Metrics.DefaultRegistry.CollectAndExportAsTextAsync(stream, cancellationToken).ConfigureAwait(false);
        return new PlainHttpResponse(200, PrometheusText, stream.GetBuffer().AsMemory(0, (int)stream.Length));
    }
}
