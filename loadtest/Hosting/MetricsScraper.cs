using System.Globalization;

namespace Collab.LoadTest.Hosting;

/// <summary>One scrape of one server's /metrics: every sample by series ("name" or "name{labels}").</summary>
internal sealed class MetricsSnapshot
{
    public MetricsSnapshot(long timestamp, IReadOnlyDictionary<string, double> values)
    {
        Timestamp = timestamp;
        Values = values;
    }

    public static MetricsSnapshot Empty { get; } = new(0, new Dictionary<string, double>());

    public long Timestamp { get; }

    public IReadOnlyDictionary<string, double> Values { get; }

    public bool IsEmpty => Values.Count == 0;

    /// <summary>The value of an unlabelled series, or the sum over all label sets of <paramref name="name"/>; NaN if absent.</summary>
    public double Get(string name)
    {
        if (Values.TryGetValue(name, out double value))
        {
            return value;
        }

        double sum = 0;
        bool found = false;
        foreach ((string series, double v) in Values)
        {
            if (series.Length > name.Length && series[name.Length] == '{' && series.StartsWith(name, StringComparison.Ordinal))
            {
                sum += v;
                found = true;
            }
        }

        return found ? sum : double.NaN;
    }

    /// <summary>Resident memory: process_resident_memory_bytes, else the working set prometheus-net reports on Linux.</summary>
    public double ResidentBytes
    {
        get
        {
            double rss = Get("process_resident_memory_bytes");
            return double.IsNaN(rss) ? Get("process_working_set_bytes") : rss;
        }
    }
}

/// <summary>
/// Scrapes the servers' Prometheus endpoints (GET /metrics on the WebSocket port) and parses the text format.
/// Server-side figures in the report (CPU, RSS, committed ops, frames per flush, storage batches) come from here,
/// so they are available for servers the tool did not start.
/// </summary>
internal sealed class MetricsScraper : IDisposable
{
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };

    /// <param name="metricsUris">One /metrics URL per server, in the order of the servers.</param>
    public MetricsScraper(IReadOnlyList<Uri> metricsUris)
    {
        MetricsUris = metricsUris;
    }

    public IReadOnlyList<Uri> MetricsUris { get; }

    /// <summary>http(s)://host:port/metrics for ws(s)://host:port/....</summary>
    public static Uri MetricsUriFor(Uri webSocket)
    {
        var builder = new UriBuilder(webSocket)
        {
            Scheme = webSocket.Scheme == "wss" ? "https" : "http",
            Path = "/metrics",
            Query = string.Empty,
        };
        return builder.Uri;
    }

    /// <summary>Scrapes every server; a server that does not answer yields <see cref="MetricsSnapshot.Empty"/>.</summary>
    public async Task<MetricsSnapshot[]> ScrapeAsync(CancellationToken cancellationToken)
    {
        var tasks = new Task<MetricsSnapshot>[MetricsUris.Count];
        for (int i = 0; i < tasks.Length; i++)
        {
            tasks[i] = ScrapeOneAsync(MetricsUris[i], cancellationToken);
        }

        return await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    public void Dispose() => _http.Dispose();

    private async Task<MetricsSnapshot> ScrapeOneAsync(Uri uri, CancellationToken cancellationToken)
    {
        try
        {
            string text = await _http.GetStringAsync(uri, cancellationToken).ConfigureAwait(false);
            return new MetricsSnapshot(Metrics.Clock.Now, Parse(text));
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return MetricsSnapshot.Empty;
        }
    }

    /// <summary>Parses the Prometheus text exposition format (comments skipped, optional timestamps ignored).</summary>
    public static Dictionary<string, double> Parse(string text)
    {
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (string rawLine in text.Split('\n'))
        {
            string line = rawLine.Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            // The series ends at the closing brace of the labels (label values may hold spaces), else at the first space.
            int seriesEnd = line.IndexOf('{', StringComparison.Ordinal) is int brace and >= 0 && line.IndexOf(' ', StringComparison.Ordinal) > brace
                ? line.LastIndexOf('}') + 1
                : line.IndexOf(' ', StringComparison.Ordinal);
            if (seriesEnd <= 0 || seriesEnd >= line.Length)
            {
                continue;
            }

            string series = line[..seriesEnd];
            string[] rest = line[seriesEnd..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (rest.Length == 0)
            {
                continue;
            }

            double value = rest[0] switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                "NaN" => double.NaN,
                string number when double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed) => parsed,
                _ => double.NaN,
            };
            if (!double.IsNaN(value))
            {
                values[series] = value;
            }
        }

        return values;
    }
}
