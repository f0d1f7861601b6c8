using Collab.LoadTest.Client;
using Collab.LoadTest.Hosting;
using Collab.LoadTest.Scenarios;

namespace Collab.LoadTest.Tests;

public sealed class LoadTestOptionsTests
{
    [Fact]
    public void Scenarios_start_from_the_shapes_of_the_issue()
    {
        LoadTestOptions small = LoadTestOptions.Parse(["small"]);
        Assert.Equal((200, 5, 5), (small.Docs, small.ClientsPerDoc, small.EffectiveWriters));
        Assert.Equal([1.0], small.Rates);
        Assert.Equal((20.0, 5.0), (small.DurationSeconds, small.WarmupSeconds));
        Assert.Equal(SubmitMode.Pipelined, small.Submit);
        Assert.Equal(VerifyMode.Light, small.Verify);

        LoadTestOptions big = LoadTestOptions.Parse(["big"]);
        Assert.Equal((1, 200), (big.Docs, big.ClientsPerDoc));

        LoadTestOptions idle = LoadTestOptions.Parse(["idle", "--connections", "19000"]);
        Assert.Equal((1900, 10, 19000), (idle.Docs, idle.ClientsPerDoc, idle.Connections));
        Assert.Equal(8, idle.EffectiveSourceAddresses);
        Assert.Equal((65.0, 5.0), (idle.DurationSeconds, idle.WarmupSeconds)); // past two ping rounds
    }

    [Fact]
    public void Options_override_the_defaults()
    {
        LoadTestOptions o = LoadTestOptions.Parse([
            "small", "--docs=5", "--clients", "2", "--rate", "1,2.5,10", "--duration", "3", "--warmup", "0",
            "--submit", "one-in-flight", "--verify", "full", "--writers", "1", "--url", "ws://127.0.0.1:9000/ws", "--seed", "42",
        ]);
        Assert.Equal((5, 2, 1), (o.Docs, o.ClientsPerDoc, o.EffectiveWriters));
        Assert.Equal([1.0, 2.5, 10.0], o.Rates);
        Assert.Equal(SubmitMode.OneInFlight, o.Submit);
        Assert.Equal(VerifyMode.Full, o.Verify);
        Assert.Equal(new Uri("ws://127.0.0.1:9000/ws"), Assert.Single(o.Servers));
        Assert.Equal(42, o.Seed);
        Assert.Null(o.GeneratorCpus);
    }

    [Fact]
    public void Spawn_server_pins_the_generator_to_cpu_1_unless_told_otherwise()
    {
        LoadTestOptions spawned = LoadTestOptions.Parse(["small", "--spawn-server"]);
        Assert.Equal(Environment.ProcessorCount >= 2 ? "1" : null, spawned.GeneratorCpus);
        Assert.Equal("0", spawned.ServerCpus);
        LoadTestOptions unpinned = LoadTestOptions.Parse(["small", "--spawn-server", "--generator-cpus", "none", "--server-cpus", "none"]);
        Assert.Null(unpinned.GeneratorCpus);
        Assert.Null(unpinned.ServerCpus);
    }

    [Theory]
    [InlineData("nope")]
    [InlineData("small", "--bogus")]
    [InlineData("small", "--docs")]
    [InlineData("small", "--docs", "0")]
    [InlineData("small", "--rate", "0")]
    [InlineData("small", "--rate", "abc")]
    [InlineData("small", "--url", "http://x/ws")]
    [InlineData("small", "--url", "wss://x/ws")]
    [InlineData("small", "--spawn-server", "--url", "ws://x/ws")]
    [InlineData("small", "--postgres", "Host=x")]
    [InlineData("cluster", "--url", "ws://x/ws")]
    [InlineData("durable", "--spawn-server")]
    [InlineData("idle", "--rate", "1")]
    [InlineData("storm", "--rate", "1,2")]
    [InlineData("storm", "--storm-at", "30")]
    [InlineData("small", "--writers", "0")]
    [InlineData("small", "--submit", "sometimes")]
    [InlineData("small", "--source-ips", "300")]
    [InlineData("small", "--target", "etherpad")]
    [InlineData("small", "--target", "sharedb", "--submit", "pipelined")]
    [InlineData("small", "--target", "collab,sharedb")]
    [InlineData("small", "--target", "collab,collab", "--spawn-server")]
    [InlineData("small", "--target", "collab,sharedb", "--spawn-server", "--server-cmd", "x")]
    [InlineData("durable", "--target", "sharedb", "--postgres", "Host=x", "--spawn-server")]
    [InlineData("cluster", "--target", "sharedb", "--servers", "ws://x:1/,ws://x:2/")]
    [InlineData("small", "--target", "sharedb", "--metrics", "http://x/metrics")]
    [InlineData("small", "--repeat", "0")]
    [InlineData("small", "--type", "json0")]
    [InlineData("small", "--type", "rich-text", "--target", "sharedb")]
    public void Invalid_command_lines_are_refused_with_a_message(params string[] args)
    {
        var ex = Assert.Throws<OptionsException>(() => LoadTestOptions.Parse(args));
        Assert.False(ex.IsHelp);
        Assert.False(string.IsNullOrWhiteSpace(ex.Message));
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("text", false)]
    [InlineData("rich-text", true)]
    [InlineData("rich", true)]
    public void Type_selects_the_documents_ot_type(string? type, bool rich)
    {
        LoadTestOptions options = LoadTestOptions.Parse(type is null ? ["small"] : ["small", "--type", type]);
        Assert.Equal(rich ? DocumentKind.Rich : DocumentKind.Text, options.Document);
    }

    [Fact]
    public void No_arguments_or_help_asks_for_the_usage()
    {
        Assert.True(Assert.Throws<OptionsException>(() => LoadTestOptions.Parse([])).IsHelp);
        Assert.True(Assert.Throws<OptionsException>(() => LoadTestOptions.Parse(["--help"])).IsHelp);
    }

    [Fact]
    public void Sharedb_target_takes_its_clients_discipline_and_its_default_url()
    {
        LoadTestOptions alone = LoadTestOptions.Parse(["small", "--target", "sharedb"]);
        Assert.Equal(ServerKind.ShareDb, alone.Target);
        Assert.Equal(SubmitMode.OneInFlight, alone.Submit); // ShareDB's client: one op in flight, queued, never composed
        Assert.Equal(new Uri("ws://127.0.0.1:9101/"), Assert.Single(alone.Servers));

        LoadTestOptions both = LoadTestOptions.Parse(["small", "--target", "collab,sharedb", "--spawn-server", "--repeat", "3"]);
        Assert.Equal([ServerKind.Collab, ServerKind.ShareDb], both.Targets);
        Assert.Equal(SubmitMode.OneInFlight, both.Submit); // Collab beside ShareDB runs under the same discipline
        Assert.Equal(6, both.RunCount);
        LoadTestOptions second = both.ForTarget(ServerKind.ShareDb, 2);
        Assert.Equal(ServerKind.ShareDb, second.Target);
        Assert.Equal("sharedb-2", second.RunTag);

        Assert.Equal(SubmitMode.Ping, LoadTestOptions.Parse(["small", "--target", "sharedb", "--submit", "ping"]).Submit);
        Assert.Null(LoadTestOptions.Parse(["small"]).RunTag);
    }

    [Fact]
    public void Several_runs_write_their_reports_apart()
    {
        LoadTestOptions both = LoadTestOptions.Parse(["small", "--target", "collab,sharedb", "--spawn-server", "--json", "/tmp/x/run.json"]);
        var started = new DateTime(2026, 12, 7, 10, 0, 0, DateTimeKind.Utc);
        Assert.Equal("/tmp/x/run-collab-1.json", Collab.LoadTest.Reporting.OutputPaths.Json(both.ForTarget(ServerKind.Collab, 1), started));
        Assert.Equal("/tmp/x/run-sharedb-1.json", Collab.LoadTest.Reporting.OutputPaths.Json(both.ForTarget(ServerKind.ShareDb, 1), started));
        LoadTestOptions single = LoadTestOptions.Parse(["small", "--target", "sharedb", "--label", "q"]);
        Assert.Equal("small-sharedb-20261207-100000-q", Collab.LoadTest.Reporting.OutputPaths.Stem(single, started));
    }

    [Fact]
    public void Cluster_spreads_over_every_listed_server()
    {
        LoadTestOptions o = LoadTestOptions.Parse(["cluster", "--servers", "ws://127.0.0.1:1/ws, ws://127.0.0.1:2/ws,ws://127.0.0.1:3/ws"]);
        Assert.Equal(3, o.Servers.Count);
    }
}

public sealed class MetricsScraperTests
{
    [Fact]
    public void Prometheus_text_is_parsed_by_series_with_labels()
    {
        const string Text = """
            # HELP collab_ops_committed_total Ops sequenced and durably committed.
            # TYPE collab_ops_committed_total counter
            collab_ops_committed_total 12345
            collab_errors_sent_total{code="Overloaded"} 3
            collab_errors_sent_total{code="Bad Message"} 4 1700000000000
            process_cpu_seconds_total 1.5e+01
            collab_storage_commit_seconds_bucket{le="+Inf"} 9
            weird_value NaN
            """;
        Dictionary<string, double> values = MetricsScraper.Parse(Text);
        Assert.Equal(12345, values["collab_ops_committed_total"]);
        Assert.Equal(4, values["collab_errors_sent_total{code=\"Bad Message\"}"]);
        Assert.Equal(15, values["process_cpu_seconds_total"]);
        Assert.Equal(9, values["collab_storage_commit_seconds_bucket{le=\"+Inf\"}"]);
        Assert.False(values.ContainsKey("weird_value"));

        var snapshot = new MetricsSnapshot(1, values);
        Assert.Equal(7, snapshot.Get("collab_errors_sent_total"));
        Assert.Equal(12345, snapshot.Get("collab_ops_committed_total"));
        Assert.True(double.IsNaN(snapshot.Get("collab_missing")));
        Assert.True(double.IsNaN(snapshot.ResidentBytes));
    }

    [Fact]
    public void Metrics_urls_name_one_endpoint_per_server_started_elsewhere()
    {
        LoadTestOptions o = LoadTestOptions.Parse(["cluster", "--servers", "ws://a:8080/ws,ws://b:8080/ws", "--metrics", "http://a:9090/metrics, http://b:9090/metrics"]);
        Assert.Equal([new Uri("http://a:9090/metrics"), new Uri("http://b:9090/metrics")], o.MetricsUrls);
        Assert.Empty(LoadTestOptions.Parse(["small"]).MetricsUrls);

        Assert.Throws<OptionsException>(() => LoadTestOptions.Parse(["small", "--metrics", "http://a:9090/metrics,http://b:9090/metrics"]));
        Assert.Throws<OptionsException>(() => LoadTestOptions.Parse(["small", "--spawn-server", "--metrics", "http://a:9090/metrics"]));
        Assert.Throws<OptionsException>(() => LoadTestOptions.Parse(["small", "--metrics", "ws://a:9090/metrics"]));
    }

    [Fact]
    public void Metrics_url_is_the_websocket_origin_with_the_metrics_path()
    {
        Assert.Equal(new Uri("http://10.0.0.1:8080/metrics"), MetricsScraper.MetricsUriFor(new Uri("ws://10.0.0.1:8080/ws?x=1")));
    }

    [Fact]
    public async Task The_probe_starts_at_most_one_background_scrape_per_minimum_interval()
    {
        // A bare HTTP endpoint that counts the scrapes it answers.
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        int scrapes = 0;
        using var stop = new CancellationTokenSource();
        Task serving = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using System.Net.Sockets.TcpClient client = await listener.AcceptTcpClientAsync(stop.Token);
                System.Net.Sockets.NetworkStream stream = client.GetStream();
                var buffer = new byte[4096];
                int read = 0;
                while (!System.Text.Encoding.ASCII.GetString(buffer, 0, read).Contains("\r\n\r\n", StringComparison.Ordinal))
                {
                    read += await stream.ReadAsync(buffer.AsMemory(read), stop.Token);
                }

                Interlocked.Increment(ref scrapes);
                const string Body = "collab_sessions 1\n";
                await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {Body.Length}\r\nConnection: close\r\n\r\n{Body}"), stop.Token);
            }
        });

        using var scraper = new MetricsScraper([new Uri($"http://127.0.0.1:{port}/metrics")]);
        var probe = new ServerProbe([], scraper) { MinScrapeInterval = TimeSpan.FromHours(1) };
        for (int i = 0; i < 5; i++)
        {
            probe.Latest(CancellationToken.None);
            await Task.Delay(100);
        }

        Assert.Equal(1, Volatile.Read(ref scrapes));
        Assert.Equal(1, probe.Latest(CancellationToken.None).Metrics[0].Get("collab_sessions"));

        // With no minimum, every call after the previous scrape finished starts another.
        probe.MinScrapeInterval = TimeSpan.Zero;
        for (int i = 0; i < 3; i++)
        {
            probe.Latest(CancellationToken.None);
            await Task.Delay(200);
        }

        Assert.True(Volatile.Read(ref scrapes) >= 3, $"{scrapes} scrapes");
        stop.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => serving);
    }
}
