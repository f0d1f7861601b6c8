using Collab.LoadTest.Hosting;
using Collab.LoadTest.Metrics;
using Collab.LoadTest.Reporting;

namespace Collab.LoadTest.Scenarios;

/// <summary>
/// Server-side state at one instant, over every server of the run: CPU and memory (from /proc for spawned servers,
/// at <see cref="Timestamp"/>), and each server's last /metrics scrape (each with its own timestamp).
/// </summary>
internal sealed record ServerPoint(long Timestamp, double CpuSeconds, double RssBytes, double PeakRssBytes, MetricsSnapshot[] Metrics)
{
    /// <summary>A metric summed over the servers that reported it (NaN when none did).</summary>
    public double Sum(string name)
    {
        double total = double.NaN;
        foreach (MetricsSnapshot snapshot in Metrics)
        {
            double value = snapshot.Get(name);
            if (!double.IsNaN(value))
            {
                total = double.IsNaN(total) ? value : total + value;
            }
        }

        return total;
    }
}

/// <summary>
/// Reads the servers: CPU and memory from /proc for servers the tool spawned or was given the pid of (exact, and available even when
/// /metrics is slow), otherwise from the process_* metrics; everything else from /metrics. A loaded server can
/// take seconds to answer a scrape, so the per-second sampler never waits for one (<see cref="Latest"/>); step
/// boundaries do (<see cref="SampleAsync"/>), and rates use each scrape's own arrival time.
/// </summary>
internal sealed class ServerProbe
{
    private readonly IReadOnlyList<int> _serverPids;
    private readonly MetricsScraper _scraper;
    private readonly Lock _merge = new();
    private MetricsSnapshot[] _latest;
    private int _scraping;
    private long _lastScrapeStarted;

    /// <param name="serverPids">Server processes to read from /proc (spawned ones, or given with --server-pid); empty: process_* metrics.</param>
    /// <param name="scraper">The servers' /metrics endpoints (none for ShareDB).</param>
    public ServerProbe(IReadOnlyList<int> serverPids, MetricsScraper scraper)
    {
        _serverPids = serverPids;
        _scraper = scraper;
        _latest = [.. scraper.MetricsUris.Select(static _ => MetricsSnapshot.Empty)];
    }

    /// <summary>A fresh scrape of every server.</summary>
    public async Task<ServerPoint> SampleAsync(CancellationToken cancellationToken)
    {
        MetricsSnapshot[] metrics = await _scraper.ScrapeAsync(cancellationToken).ConfigureAwait(false);
        Remember(metrics);
        return Point(metrics);
    }

    /// <summary>
    /// Least time between the background scrapes that <see cref="Latest"/> starts (zero: one per call). The idle
    /// scenario sets it near Prometheus's usual interval: a scrape makes garbage in the server, and once a second over
    /// a long hold that garbage is part of the memory being measured.
    /// </summary>
    public TimeSpan MinScrapeInterval { get; set; }

    /// <summary>/proc now and the most recent scrapes; starts a new scrape in the background unless one is running or the last began under <see cref="MinScrapeInterval"/> ago.</summary>
    public ServerPoint Latest(CancellationToken cancellationToken)
    {
        long now = Clock.Now;
        long last = Volatile.Read(ref _lastScrapeStarted);
        if ((last == 0 || now - last >= Clock.FromSeconds(MinScrapeInterval.TotalSeconds))
            && Interlocked.Exchange(ref _scraping, 1) == 0)
        {
            Volatile.Write(ref _lastScrapeStarted, now);
            _ = RefreshAsync(cancellationToken);
        }

        return Point(Volatile.Read(ref _latest));
    }

    /// <summary>The server figures between two points (rates per second; 100 % CPU = one core).</summary>
    public static ServerReport Between(ServerPoint start, ServerPoint end)
    {
        double seconds = Math.Max(1e-9, Clock.ToSeconds(end.Timestamp - start.Timestamp));
        double Rate(string name) => SumOverServers(start, end, (a, b) =>
        {
            double dt = Clock.ToSeconds(b.Timestamp - a.Timestamp);
            return dt > 0 ? (b.Get(name) - a.Get(name)) / dt : double.NaN;
        });
        // A labelled counter has no series until its first event: absent at the start means zero.
        double Delta(string name) => SumOverServers(start, end, (a, b) => b.Get(name) - (double.IsNaN(a.Get(name)) ? 0 : a.Get(name)));
        double Ratio(double numerator, double denominator) => denominator > 0 ? numerator / denominator : double.NaN;
        return new ServerReport
        {
            CpuPercent = Round(100 * (end.CpuSeconds - start.CpuSeconds) / seconds, 1),
            RssMb = Round(end.RssBytes / (1024 * 1024), 1),
            PeakRssMb = Round(end.PeakRssBytes / (1024 * 1024), 1),
            CommittedOpsPerSec = Round(Rate("collab_ops_committed_total"), 1),
            FramesSentPerSec = Round(Rate("collab_ws_frames_sent_total"), 1),
            FramesPerFlush = Round(Ratio(Delta("collab_ws_frames_sent_total"), Delta("collab_ws_flushes_total")), 2),
            OpsPerStorageBatch = Round(Ratio(Delta("collab_storage_ops_total"), Delta("collab_storage_batches_total")), 2),
            StorageCommitMeanMs = Round(1000 * Ratio(Delta("collab_storage_commit_seconds_sum"), Delta("collab_storage_commit_seconds_count")), 3),
            SubmitAckMeanMs = Round(1000 * Ratio(Delta("collab_submit_ack_seconds_sum"), Delta("collab_submit_ack_seconds_count")), 3),
            ConnectionsOpen = end.Sum("collab_ws_connections_open"),
            ErrorsSent = Delta("collab_errors_sent_total"),
        };
    }

    private ServerPoint Point(MetricsSnapshot[] metrics)
    {
        long now = Clock.Now;
        if (_serverPids.Count > 0)
        {
            double cpu = 0;
            double rss = 0;
            double peak = 0;
            foreach (int pid in _serverPids)
            {
                ProcessSample sample = ProcessStats.Of(pid);
                if (sample.IsValid)
                {
                    cpu += sample.CpuSeconds;
                    rss += sample.RssBytes;
                    peak += sample.PeakRssBytes;
                }
            }

            return new ServerPoint(now, cpu, rss, peak, metrics);
        }

        // Not ours: CPU and RSS from the servers' own process metrics, as of their scrapes.
        double cpuSeconds = double.NaN;
        double resident = double.NaN;
        long stamp = 0;
        foreach (MetricsSnapshot snapshot in metrics)
        {
            cpuSeconds = Add(cpuSeconds, snapshot.Get("process_cpu_seconds_total"));
            resident = Add(resident, snapshot.ResidentBytes);
            stamp = Math.Max(stamp, snapshot.Timestamp);
        }

        return new ServerPoint(stamp == 0 ? now : stamp, cpuSeconds, resident, double.NaN, metrics);
    }

    private async Task RefreshAsync(CancellationToken cancellationToken)
    {
        try
        {
            Remember(await _scraper.ScrapeAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
            // The run is ending.
        }
        finally
        {
            Volatile.Write(ref _scraping, 0);
        }
    }

    /// <summary>Keeps the newest answer per server (a server that did not answer keeps its previous scrape).</summary>
    private void Remember(MetricsSnapshot[] metrics)
    {
        lock (_merge)
        {
            MetricsSnapshot[] merged = [.. _latest];
            for (int i = 0; i < metrics.Length; i++)
            {
                if (!metrics[i].IsEmpty && metrics[i].Timestamp >= merged[i].Timestamp)
                {
                    merged[i] = metrics[i];
                }
            }

            Volatile.Write(ref _latest, merged);
        }
    }

    private static double SumOverServers(ServerPoint start, ServerPoint end, Func<MetricsSnapshot, MetricsSnapshot, double> value)
    {
        double total = double.NaN;
        for (int i = 0; i < Math.Min(start.Metrics.Length, end.Metrics.Length); i++)
        {
            if (start.Metrics[i].IsEmpty || end.Metrics[i].IsEmpty)
            {
                continue;
            }

            total = Add(total, value(start.Metrics[i], end.Metrics[i]));
        }

        return total;
    }

    private static double Add(double total, double value) =>
        double.IsNaN(value) ? total : double.IsNaN(total) ? value : total + value;

    private static double Round(double value, int digits) => double.IsFinite(value) ? Math.Round(value, digits) : double.NaN;
}
