using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Collab.Integration.Tests.Infrastructure;

namespace Collab.Integration.Tests.Deploy;

/// <summary>
/// A real Prometheus (Debian's <c>prometheus</c>) on a free loopback port with its own temporary storage, running
/// deploy/prometheus/prometheus.yml as shipped except for what a test must change: the targets (the nodes under test
/// instead of the compose host names), the intervals (1 s, so a test needs seconds rather than minutes) and absolute
/// rule paths. Relabelling, job names and rules are the deployment's own.
/// </summary>
internal sealed class PrometheusServer : IAsyncDisposable
{
    private static readonly TimeSpan s_interval = TimeSpan.FromSeconds(1);

    private readonly string _root;
    private readonly ConcurrentQueue<string> _log = new();
    private readonly HttpClient _http;
    private Process? _process;

    private PrometheusServer(string root, int port)
    {
        _root = root;
        Port = port;
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(10) };
    }

    public int Port { get; }

    /// <summary>Starts Prometheus scraping <paramref name="collabTargets"/> (host:port of the nodes' /metrics) as job "collab".</summary>
    public static async Task<PrometheusServer> StartAsync(IReadOnlyList<string> collabTargets)
    {
        string prometheus = Tool.Require("prometheus");
        string root = System.IO.Directory.CreateTempSubdirectory("collab-prometheus-").FullName;
        var server = new PrometheusServer(root, InProcessServer.FreePort());
        try
        {
            string config = Path.Combine(root, "prometheus.yml");
            await File.WriteAllTextAsync(config, DeployAssets.ToYaml(TestConfig(collabTargets, $"127.0.0.1:{server.Port}")));
            var start = new ProcessStartInfo(prometheus)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = root,
            };
            foreach (string argument in new[]
            {
                "--config.file=" + config,
                "--storage.tsdb.path=" + Path.Combine(root, "data"),
                $"--web.listen-address=127.0.0.1:{server.Port}",
                "--log.level=warn",
            })
            {
                start.ArgumentList.Add(argument);
            }

            Process process = Process.Start(start) ?? throw new InvalidOperationException("prometheus did not start");
            process.OutputDataReceived += (_, e) => server.Record(e.Data);
            process.ErrorDataReceived += (_, e) => server.Record(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            server._process = process;
            await server.WaitReadyAsync(TimeSpan.FromSeconds(60));
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>deploy/prometheus/prometheus.yml with the test's targets, intervals and absolute rule paths.</summary>
    private static Dictionary<object, object> TestConfig(IReadOnlyList<string> collabTargets, string self)
    {
        var config = DeployAssets.Map(DeployAssets.LoadYaml(DeployAssets.PrometheusConfig), "prometheus.yml");
        var global = DeployAssets.Map(config.Get("global"), "global");
        string interval = $"{(int)s_interval.TotalSeconds}s";
        global["scrape_interval"] = interval;
        global["scrape_timeout"] = interval;
        global["evaluation_interval"] = interval;
        config["rule_files"] = DeployAssets.RuleFiles().Cast<object>().ToList();
        var jobs = DeployAssets.Seq(config.Get("scrape_configs"), "scrape_configs").Select(j => DeployAssets.Map(j, "scrape_config")).ToList();
        Dictionary<object, object> collab = jobs.Single(j => DeployAssets.Str(j.Get("job_name"), "job_name") == DeployAssets.Job);
        collab["static_configs"] = new List<object> { new Dictionary<object, object> { ["targets"] = collabTargets.Cast<object>().ToList() } };
        foreach (Dictionary<object, object> job in jobs.Where(j => !ReferenceEquals(j, collab)))
        {
            job["static_configs"] = new List<object> { new Dictionary<object, object> { ["targets"] = new List<object> { self } } };
        }

        return config;
    }

    private async Task WaitReadyAsync(TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (_process is { HasExited: true } process)
            {
                throw new InvalidOperationException($"prometheus exited with {process.ExitCode}:\n{LogTail()}");
            }

            try
            {
                using HttpResponseMessage response = await _http.GetAsync("-/ready");
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }

            if (deadline.Elapsed > timeout)
            {
                throw new TimeoutException($"prometheus was not ready within {timeout}:\n{LogTail()}");
            }

            await Task.Delay(100);
        }
    }

    /// <summary>GET /api/v1/{path}: the <c>data</c> of a successful answer; an error answer throws with Prometheus's message.</summary>
    public async Task<JsonElement> ApiAsync(string path)
    {
        using HttpResponseMessage response = await _http.GetAsync("api/v1/" + path);
        string body = await response.Content.ReadAsStringAsync();
        using JsonDocument document = JsonDocument.Parse(body);
        JsonElement root = document.RootElement;
        if (root.GetProperty("status").GetString() != "success")
        {
            throw new PrometheusQueryException($"{path}: {root.GetProperty("errorType").GetString()}: {root.GetProperty("error").GetString()}");
        }

        return root.GetProperty("data").Clone();
    }

    /// <summary>An instant query: the result vector's samples as (labels, value).</summary>
    public async Task<IReadOnlyList<(IReadOnlyDictionary<string, string> Labels, double Value)>> QueryAsync(string expr)
    {
        JsonElement data = await ApiAsync("query?query=" + Uri.EscapeDataString(expr));
        string type = data.GetProperty("resultType").GetString()!;
        if (type == "scalar")
        {
            return [(new Dictionary<string, string>(), ParseValue(data.GetProperty("result")))];
        }

        if (type != "vector")
        {
            throw new PrometheusQueryException($"{expr}: a {type}, not an instant vector");
        }

        return data.GetProperty("result").EnumerateArray()
            .Select(s => ((IReadOnlyDictionary<string, string>)s.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!, StringComparer.Ordinal), ParseValue(s.GetProperty("value"))))
            .ToList();
    }

    /// <summary>The series matching a selector (any time in the retained data).</summary>
    public async Task<IReadOnlyList<IReadOnlyDictionary<string, string>>> SeriesAsync(string selector)
    {
        JsonElement data = await ApiAsync("series?match[]=" + Uri.EscapeDataString(selector));
        return data.EnumerateArray()
            .Select(s => (IReadOnlyDictionary<string, string>)s.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!, StringComparer.Ordinal))
            .ToList();
    }

    /// <summary>Every loaded rule with its health ("ok", "err", "unknown" before its first evaluation) and last error.</summary>
    public async Task<IReadOnlyList<(string Name, string Health, string? Error)>> RulesAsync()
    {
        JsonElement data = await ApiAsync("rules");
        return data.GetProperty("groups").EnumerateArray()
            .SelectMany(g => g.GetProperty("rules").EnumerateArray())
            .Select(r => (r.GetProperty("name").GetString()!, r.GetProperty("health").GetString()!, r.TryGetProperty("lastError", out JsonElement e) ? e.GetString() : null))
            .ToList();
    }

    /// <summary>Active alerts: name, state ("pending", "firing") and labels.</summary>
    public async Task<IReadOnlyList<(string Name, string State, IReadOnlyDictionary<string, string> Labels)>> AlertsAsync()
    {
        JsonElement data = await ApiAsync("alerts");
        return data.GetProperty("alerts").EnumerateArray()
            .Select(a =>
            {
                var labels = a.GetProperty("labels").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!, StringComparer.Ordinal);
                return (labels["alertname"], a.GetProperty("state").GetString()!, (IReadOnlyDictionary<string, string>)labels);
            })
            .ToList();
    }

    /// <summary>Active scrape targets: their labels after relabelling and their health ("up", "down", "unknown").</summary>
    public async Task<IReadOnlyList<(IReadOnlyDictionary<string, string> Labels, string Health, string ScrapeUrl)>> TargetsAsync()
    {
        JsonElement data = await ApiAsync("targets?state=active");
        return data.GetProperty("activeTargets").EnumerateArray()
            .Select(t => ((IReadOnlyDictionary<string, string>)t.GetProperty("labels").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!, StringComparer.Ordinal),
                t.GetProperty("health").GetString()!, t.GetProperty("scrapeUrl").GetString()!))
            .ToList();
    }

    /// <summary>Polls <paramref name="check"/> (which returns what is still missing) until it returns nothing, else fails with what was missing.</summary>
    public async Task WaitForAsync(string what, Func<Task<IReadOnlyCollection<string>>> check, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        IReadOnlyCollection<string> missing;
        while ((missing = await check()).Count > 0)
        {
            if (deadline.Elapsed > timeout)
            {
                Assert.Fail($"{what} within {timeout}; still missing:\n  {string.Join("\n  ", missing)}\nprometheus log:\n{LogTail()}");
            }

            await Task.Delay(500);
        }
    }

    public string LogTail(int lines = 30) => string.Join('\n', _log.TakeLast(lines));

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill();
            await process.WaitForExitAsync();
        }

        _process?.Dispose();
        _http.Dispose();
        try
        {
            System.IO.Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    // Prometheus writes values as Go formats them: "NaN", "+Inf" and "-Inf" besides numbers.
    private static double ParseValue(JsonElement pair) => pair[1].GetString() switch
    {
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        string text => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture),
        null => throw new InvalidDataException("a sample without a value"),
    };

    private void Record(string? line)
    {
        if (line is null)
        {
            return;
        }

        _log.Enqueue(line);
        while (_log.Count > 500)
        {
            _log.TryDequeue(out _);
        }
    }
}

/// <summary>Prometheus answered a query with an error (a bad expression, a failed evaluation).</summary>
internal sealed class PrometheusQueryException(string message) : Exception(message);
