using System.Globalization;
using Collab.LoadTest.Client;
using Collab.LoadTest.Hosting;
using Collab.LoadTest.Metrics;
using Collab.LoadTest.Reporting;

namespace Collab.LoadTest.Scenarios;

/// <summary>
/// Once a second: what happened in the last second (offered/acked/delivered ops, latency percentiles, errors,
/// generator and server CPU), printed as a progress line and kept as the time series behind the chart.
/// </summary>
internal sealed class Sampler : IAsyncDisposable
{
    private readonly RunContext _ctx;
    private readonly Func<int> _live;
    private readonly ServerProbe _probe;
    private readonly TextWriter? _console;
    private readonly CancellationTokenSource _stop = new();
    private readonly long _origin;
    private Task? _loop;

    public Sampler(RunContext ctx, Func<int> live, ServerProbe probe, TextWriter? console)
    {
        _ctx = ctx;
        _live = live;
        _probe = probe;
        _console = console;
        _origin = Clock.Now;
    }

    private volatile string _phase = "connect";

    /// <summary>What the run is doing (shown in the progress and used to shade the chart's measured windows).</summary>
    public string Phase
    {
        get => _phase;
        set => _phase = value;
    }

    public List<Sample> Samples { get; } = [];

    /// <summary>Seconds since the run started (the time axis of samples and chart).</summary>
    public double Elapsed(long timestamp) => Clock.ToSeconds(timestamp - _origin);

    public void Start() => _loop = RunAsync(_stop.Token);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            try
            {
                await _loop.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopped.
            }
        }

        _stop.Dispose();
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        CounterSnapshot previous = _ctx.Counters.Snapshot();
        ProcessSample generator = ProcessStats.Self();
        ServerPoint server = _probe.Latest(cancellationToken);
        long last = Clock.Now;
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            long now = Clock.Now;
            double seconds = Clock.ToSeconds(now - last);
            CounterSnapshot counters = _ctx.Counters.Snapshot();
            CounterSnapshot delta = counters - previous;
            ProcessSample self = ProcessStats.Self();
            ServerPoint point = _probe.Latest(cancellationToken);
            LatencySummary ack = _ctx.AckLatency.TakeInterval();
            LatencySummary broadcast = _ctx.BroadcastLatency.TakeInterval();
            var sample = new Sample(
                Math.Round(Elapsed(now), 2),
                Phase,
                Math.Round(delta.Offered / seconds, 1),
                Math.Round(delta.Acked / seconds, 1),
                Math.Round(delta.Delivered / seconds, 1),
                ack.P50,
                ack.P99,
                broadcast.P50,
                broadcast.P99,
                _ctx.Errors.Total,
                Math.Round(100 * (self.CpuSeconds - generator.CpuSeconds) / seconds, 1),
                Math.Round(100 * (point.CpuSeconds - server.CpuSeconds) / Math.Max(1e-9, Clock.ToSeconds(point.Timestamp - server.Timestamp)), 1),
                Math.Round(point.RssBytes / (1024 * 1024), 1),
                _live());
            Samples.Add(sample);
            _console?.WriteLine(Format(sample));
            previous = counters;
            generator = self;
            server = point;
            last = now;
        }
    }

    private static string Format(Sample s) => string.Create(
        CultureInfo.InvariantCulture,
        $"[{s.T,6:F0}s] {s.Phase,-8} live {s.Live,6:N0} | offered {s.OfferedPerSec,9:N0}/s acked {s.AckedPerSec,9:N0}/s deliv {s.DeliveredPerSec,10:N0}/s | ack p50 {s.AckP50,7:F3} p99 {s.AckP99,8:F3} ms | bcast p99 {s.BroadcastP99,8:F3} ms | err {s.Errors,5:N0} | gen {s.GeneratorCpuPercent,5:F0}% srv {s.ServerCpuPercent,5:F0}% {s.ServerRssMb,7:F1} MB");
}
