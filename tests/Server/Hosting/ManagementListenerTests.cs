using System.Net.Sockets;
using System.Text;
using Collab.Server.Hosting;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using Microsoft.Extensions.DependencyInjection;

namespace Collab.Server.Tests.Hosting;

/// <summary>Transport:ManagementPort: the probe routes on their own port and threads, and nothing else there.</summary>
public sealed class ManagementListenerTests : IAsyncLifetime
{
    private TestTransportServer _server = null!;
    private int _port;

    public async Task InitializeAsync()
    {
        _server = await TestTransportServer.StartAsync(new TestApplication(), new TransportOptions { ManagementPort = 0 });
        _port = _server.Services.GetRequiredService<ManagementListener>().BoundPort;
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task The_probes_and_metrics_answer_on_the_management_port()
    {
        Assert.NotEqual(0, _port);
        Assert.NotEqual(_server.Port, _port);

        RawHttpResponse health = await GetAsync("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(200, health.StatusCode);
        Assert.Equal("ok\n", health.Body);
        Assert.Contains("Connection: close", health.Head);

        RawHttpResponse ready = await GetAsync("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(200, ready.StatusCode);
        Assert.Contains("transport: ok", ready.Body);

        RawHttpResponse metrics = await GetAsync("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(200, metrics.StatusCode);
        Assert.Contains("collab_ws_connections_open", metrics.Body);
        Assert.Contains("process_cpu_seconds_total", metrics.Body);

        RawHttpResponse head = await GetAsync("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(200, head.StatusCode);
        Assert.Equal("", head.Body);
    }

    [Fact]
    public async Task Everything_else_gets_a_clear_error()
    {
        RawHttpResponse post = await GetAsync("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        Assert.Equal(405, post.StatusCode);
        Assert.Contains("Allow: GET, HEAD", post.Head);

        // No WebSocket and no admin actions here.
        Assert.Equal(404, (await GetAsync("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")).StatusCode);
        Assert.Equal(404, (await GetAsync("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);

        Assert.Equal(400, (await GetAsync("\u0001\u0002garbage\r\n\r\n")).StatusCode);
        Assert.Equal(400, (await GetAsync("GET /healthz HTTP/1.1\r\nX-Big: " + new string('a', 10_000) + "\r\n\r\n")).StatusCode);

        // The listener is still serving.
        Assert.Equal(200, (await GetAsync("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);
    }

    [Fact]
    public async Task Connections_beyond_the_limit_are_refused_at_once_and_served_again_once_others_leave()
    {
        // Silent connections hold their threads until the read timeout; the next one is answered 503, not queued.
        var holders = new List<Socket>();
        for (int i = 0; i < ManagementListener.MaxConcurrentConnections; i++)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync("127.0.0.1", _port);
            holders.Add(socket);
        }

        await WaitForAsync(async () => (await GetAsync("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode == 503);

        foreach (Socket holder in holders)
        {
            holder.Dispose();
        }

        await WaitForAsync(async () => (await GetAsync("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode == 200);
    }

    [Fact]
    public async Task Without_a_management_port_nothing_extra_listens()
    {
        await using TestTransportServer plain = await TestTransportServer.StartAsync(new TestApplication());
        Assert.Equal(0, plain.Services.GetRequiredService<ManagementListener>().BoundPort);
    }

    [Fact]
    public void The_management_port_must_differ_from_the_websocket_port()
    {
        Assert.Throws<TransportConfigurationException>(() => new TransportOptions { Port = 9000, ManagementPort = 9000 }.Validate());
        Assert.Throws<TransportConfigurationException>(() => new TransportOptions { ManagementPort = 70_000 }.Validate());
        new TransportOptions { Port = 9000, ManagementPort = 9090 }.Validate();
    }

    private Task<RawHttpResponse> GetAsync(string request) => RawWebSocketClient.SendHttpAsync(_port, request);

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(50);
        }
    }
}
