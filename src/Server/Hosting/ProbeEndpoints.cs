using System.Text;
using Collab.Server.Transport;
using Prometheus;

namespace Collab.Server.Hosting;

/// <summary>
/// /healthz (process alive), /readyz (every <see cref="IReadinessCheck"/> ready) and /metrics
/// (Prometheus text format from prometheus-net's default registry), served on the WebSocket port and, when
/// configured, on the management port (<see cref="ManagementListener"/>).
/// </summary>
internal sealed class ProbeEndpoints : IPlainHttpRoutes
{
    private const string TextPlain = "text/plain; charset=utf-8";
    private const string PrometheusText = "text/plain; version=0.0.4; charset=utf-8";
    private static readonly ReadOnlyMemory<byte> s_ok = "ok\n"u8.ToArray();

    private readonly ReadinessRegistry _readiness;

    public ProbeEndpoints(ReadinessRegistry readiness)
    {
        _readiness = readiness;

        // Before the first scrape, also for hosts built without CollabServerHost (tests): which default series exist.
        MetricsDefaults.Apply();
        Routes = new Dictionary<string, PlainHttpRoute>(StringComparer.Ordinal)
        {
            ["/healthz"] = PlainHttpRoute.Get(HealthzAsync),
            ["/readyz"] = PlainHttpRoute.Get(ReadyzAsync),
            ["/metrics"] = PlainHttpRoute.Get(MetricsAsync),
        };
    }

    public IReadOnlyDictionary<string, PlainHttpRoute> Routes { get; }

    private static ValueTask<PlainHttpResponse> HealthzAsync(PlainHttpRequest request, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new PlainHttpResponse(200, TextPlain, s_ok));

    private ValueTask<PlainHttpResponse> ReadyzAsync(PlainHttpRequest request, CancellationToken cancellationToken)
    {
        bool ready = _readiness.Evaluate(out IReadOnlyList<(string Name, ReadinessResult Result)> results);
        var body = new StringBuilder(ready ? "ready\n" : "not ready\n");
        foreach ((string name, ReadinessResult result) in results)
        {
            body.Append(name).Append(": ").Append(result.IsReady ? "ok" : result.Reason ?? "not ready").Append('\n');
        }

        return ValueTask.FromResult(new PlainHttpResponse(ready ? 200 : 503, TextPlain, Encoding.UTF8.GetBytes(body.ToString())));
    }

    private static async ValueTask<PlainHttpResponse> MetricsAsync(PlainHttpRequest request, CancellationToken cancellationToken)
    {
        using var stream = new MemoryStream();
        await Metrics.DefaultRegistry.CollectAndExportAsTextAsync(stream, cancellationToken).ConfigureAwait(false);
        return new PlainHttpResponse(200, PrometheusText, stream.GetBuffer().AsMemory(0, (int)stream.Length));
    }
}
