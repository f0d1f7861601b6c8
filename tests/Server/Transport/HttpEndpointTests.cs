using System.Net;
using System.Net.WebSockets;
using System.Text;
using Collab.Server.Hosting;
using Collab.Server.Tests.Transport.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Collab.Server.Tests.Transport;

/// <summary>/healthz, /readyz and /metrics on the WebSocket port (the HTTP pipeline), through a real HTTP client.</summary>
public sealed class HttpEndpointTests : IAsyncLifetime
{
    private readonly TestApplication _app = new();
    private readonly SwitchableCheck _storage = new();
    private TestTransportServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _server = await TestTransportServer.StartAsync(_app, configureServices: services => services.AddSingleton<IReadinessCheck>(_storage));
        _http = new HttpClient { BaseAddress = _server.HttpUri };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task Healthz_is_ok()
    {
        HttpResponseMessage response = await _http.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ok\n", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Readyz_reflects_every_registered_check_with_reasons()
    {
        HttpResponseMessage ready = await _http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        string body = await ready.Content.ReadAsStringAsync();
        Assert.Contains("transport: ok", body);
        Assert.Contains("storage: ok", body);

        _storage.Result = ReadinessResult.NotReady("database unreachable");
        HttpResponseMessage notReady = await _http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
        Assert.Contains("storage: database unreachable", await notReady.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Metrics_are_prometheus_text_and_count_transport_events()
    {
        using (var ws = new ClientWebSocket())
        {
            await ws.ConnectAsync(_server.WebSocketUri, CancellationToken.None);
            await ws.SendAsync("ping"u8.ToArray(), WebSocketMessageType.Binary, true, CancellationToken.None);
            await ClientWebSocketConformanceTests.ReceiveMessageAsync(ws);
            await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None);
        }

        await _app.NextClosedAsync();
        HttpResponseMessage response = await _http.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType!.ToString());
        string text = await response.Content.ReadAsStringAsync();
        foreach (string metric in new[]
        {
            "collab_ws_connections_open", "collab_ws_connections_total", "collab_ws_frames_received_total", "collab_ws_frames_sent_total",
            "collab_ws_bytes_received_total", "collab_ws_bytes_sent_total", "collab_ws_slow_consumer_closes_total", "collab_ws_pongs_missed_total",
            "collab_ws_connections_closed_total{reason=\"client_closed\"}", "collab_ws_handshake_failures_total{reason=\"origin_forbidden\"}",
            "collab_ws_connections_rejected_total{reason=\"max_connections\"}",
        })
        {
            Assert.Contains(metric, text);
        }

        Assert.Matches(@"collab_ws_connections_total [1-9]", text);

        // The process series keep prometheus-net's names (from our own collector), and Kestrel's per-connection
        // meter is not exported although a connection was just opened and closed.
        Assert.Matches(@"(?m)^process_open_handles [1-9]", text);
        Assert.Matches(@"(?m)^process_num_threads [1-9]", text);
        Assert.Matches(@"(?m)^process_cpu_seconds_total [0-9]", text);
        Assert.Matches(@"(?m)^process_working_set_bytes [1-9]", text);
        Assert.Matches(@"(?m)^process_start_time_seconds [1-9]", text);
        Assert.Matches(@"(?m)^dotnet_total_memory_bytes [1-9]", text);
        Assert.Matches(@"(?m)^dotnet_collection_count_total\{generation=""0""\} [0-9]", text);
        Assert.DoesNotMatch(@"(?m)^kestrel_", text);
        Assert.Single(text.Split('\n'), line => line.StartsWith("process_open_handles ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Keep_alive_serves_several_requests_on_one_connection()
    {
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectTcpAsync(_server.Port);
        for (int i = 0; i < 3; i++)
        {
            await client.SendRawAsync(Encoding.ASCII.GetBytes("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
            RawHttpResponse response = await client.ReadHttpResponseAsync();
            Assert.Equal(200, response.StatusCode);
            Assert.False(response.HasHeader("Connection: close"));
            Assert.True(response.HasHeader("Cache-Control: no-store"));
        }

        // Then the same connection may still upgrade (served by the raw framing over the pipeline's upgraded stream:
        // HttpSeamTests covers that path).
        await client.UpgradeAsync(_server.Port);
        await client.SendBinaryAsync("after keep-alive"u8);
        Assert.Equal("after keep-alive", (await client.ReceiveFrameAsync()).Text);
    }

    [Fact]
    public async Task Head_has_no_body_and_post_is_405_and_unknown_paths_are_404()
    {
        RawHttpResponse head = await RawWebSocketClient.SendHttpAsync(_server.Port, "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        Assert.Equal(200, head.StatusCode);
        Assert.True(head.HasHeader("Connection: close"));

        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await _http.PostAsync("/healthz", new StringContent(""))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("/favicon.ico")).StatusCode);
    }

    private sealed class SwitchableCheck : IReadinessCheck
    {
        public ReadinessResult Result { get; set; } = ReadinessResult.Ready;

        public string Name => "storage";

        public ReadinessResult Check() => Result;
    }
}
