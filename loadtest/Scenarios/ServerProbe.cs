using Collab.LoadTest.Hosting;
using Collab.LoadTest.Metrics;
using Collab.LoadTest.Reporting;

namespace Collab.LoadTest.Scenarios;

/// <summary>Server-side state at one instant, summed over every server of the run.</summary>
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
/// Reads the servers: CPU and memory from /proc for servers the tool spawned (exact, and available even if
/// /metrics is slow), otherwise from the process_* metrics; everything else from /metrics.
/// </summary>
internal sealed class ServerProbe(IReadOnlyList<ServerProcess> spawned, MetricsScraper scraper)
{
    public async Task<ServerPoint> SampleAsync(CancellationToken cancellationToken)
    {
        MetricsSnapshot[] metrics = await scraper.ScrapeAsync(cancellationToken).ConfigureAwait(false);
        long now = Clock.Now;
        double cpu = 0;
        double rss = 0;
        double peak = 0;
        if (spawned.Count > 0)
        {
            foreach (ServerProcess server in spawned)
            {
                ProcessSample sample = server.Sample();
                if (sample.IsValid)
                {
                    cpu += sample.CpuSeconds;
                    rss += sample.RssBytes;
                    peak += sample.PeakRssBytes;
                }
            }
        }
        else
        {
            cpu = double.NaN;
            rss = double.NaN;
            peak = double.NaN;
            foreach (MetricsSnapshot snapshot in metrics)
            {
                cpu = Add(cpu, snapshot.Get("process_cpu_seconds_total"));
                rss = Add(rss, snapshot.ResidentBytes);
            }
        }

        return new ServerPoint(now, cpu, rss, peak, metrics);
    }

    /// <summary>The server figures between two points (rates over the elapsed time; 100 % CPU = one core).</summary>
    public static ServerReport Between(ServerPoint start, ServerPoint end)
    {
        double seconds = Math.Max(1e-9, Clock.ToSeconds(end.Timestamp - start.Timestamp));
        double Delta(string name) => end.Sum(name) - start.Sum(name);
        double Ratio(double numerator, double denominator) => denominator > 0 ? numerator / denominator : double.NaN;
        return new ServerReport
        {
            CpuPercent = Round(100 * (end.CpuSeconds - start.CpuSeconds) / seconds, 1),
            RssMb = Round(end.RssBytes / (1024 * 1024), 1),
            PeakRssMb = Round(end.PeakRssBytes / (1024 * 1024), 1),
            CommittedOpsPerSec = Round(Delta("collab_ops_committed_total") / seconds, 1),
            FramesSentPerSec = Round(Delta("collab_ws_frames_sent_total") / seconds, 1),
            FramesPerFlush = Round(Ratio(Delta("collab_ws_frames_sent_total"), Delta("collab_ws_flushes_total")), 2),
            OpsPerStorageBatch = Round(Ratio(Delta("collab_storage_ops_total"), Delta("collab_storage_batches_total")), 2),
            StorageCommitMeanMs = Round(1000 * Ratio(Delta("collab_storage_commit_seconds_sum"), Delta("collab_storage_commit_seconds_count")), 3),
            SubmitAckMeanMs = Round(1000 * Ratio(Delta("collab_submit_ack_seconds_sum"), Delta("collab_submit_ack_seconds_count")), 3),
            ConnectionsOpen = end.Sum("collab_ws_connections_open"),
            ErrorsSent = Delta("collab_errors_sent_total"),
        };
    }

    private static double Add(double total, double value) =>
        double.IsNaN(value) ? total : double.IsNaN(total) ? value : total + value;

    private static double Round(double value, int digits) => double.IsFinite(value) ? Math.Round(value, digits) : double.NaN;
}
