using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Collab.Server.Hosting;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

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

    [Theory]
    [InlineData(4)]
    [InlineData(40)]
    public async Task Idle_connections_from_one_address_leave_the_probe_answerable(int idle)
    {
        // A long request deadline: what keeps the probe answerable is the slot policy, not idle connections timing out.
        using ManagementListener listener = await StartOwnListenerAsync(TimeSpan.FromSeconds(60));
        var holders = new List<Socket>();
        try
        {
            for (int i = 0; i < idle; i++)
            {
                holders.Add(await ConnectFromAsync(Attacker, listener.BoundPort)); // connect and say nothing
            }

            // From another address, and from the idle connections' own address (a node's kubelet shares its address).
            Assert.Equal(200, (await GetFromAsync(Prober, listener.BoundPort, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);
            Assert.Equal(200, (await GetFromAsync(Attacker, listener.BoundPort, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);
            Assert.Equal(200, (await GetFromAsync(Prober, listener.BoundPort, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);
        }
        finally
        {
            holders.ForEach(h => h.Dispose());
            await listener.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task One_address_cannot_take_every_slot_and_a_full_pool_answers_503_at_once()
    {
        // Requests held in service by a readiness check that blocks until released.
        using var release = new ManualResetEventSlim();
        var blocking = new BlockingCheck(release);
        using ManagementListener listener = await StartOwnListenerAsync(TimeSpan.FromSeconds(60), new ProbeEndpoints(new ReadinessRegistry([blocking])));
        var held = new List<Task<RawHttpResponse>>();
        try
        {
            // The attacker's address gets its share of the slots, all of them busy answering...
            for (int i = 0; i < ManagementListener.MaxConnectionsPerAddress; i++)
            {
                held.Add(GetFromAsync(Attacker, listener.BoundPort, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"));
            }

            await WaitForAsync(() => Task.FromResult(blocking.Waiting == ManagementListener.MaxConnectionsPerAddress));

            // ...so its next connection is refused at once, while another address is served.
            Assert.Equal(503, (await GetFromAsync(Attacker, listener.BoundPort, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);
            Assert.Equal(200, (await GetFromAsync(Prober, listener.BoundPort, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);

            // Every slot answering a request: a new connection gets 503 at once instead of waiting in a queue.
            for (int i = ManagementListener.MaxConnectionsPerAddress; i < ManagementListener.MaxConcurrentConnections; i++)
            {
                held.Add(GetFromAsync(Prober, listener.BoundPort, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"));
            }

            await WaitForAsync(() => Task.FromResult(blocking.Waiting == ManagementListener.MaxConcurrentConnections));
            Assert.Equal(503, (await GetFromAsync(Third, listener.BoundPort, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);
        }
        finally
        {
            release.Set();
        }

        Assert.All(await Task.WhenAll(held), r => Assert.Equal(200, r.StatusCode));
        Assert.Equal(200, (await GetFromAsync(Third, listener.BoundPort, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);
        await listener.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task A_client_trickling_its_request_is_cut_off_at_the_deadline()
    {
        using ManagementListener listener = await StartOwnListenerAsync(TimeSpan.FromMilliseconds(500));
        using var slow = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await slow.ConnectAsync("127.0.0.1", listener.BoundPort);
        var closed = System.Diagnostics.Stopwatch.StartNew();
        byte[] buffer = new byte[64];
        Task<int> ended = slow.ReceiveAsync(buffer, SocketFlags.None);
        foreach (char c in "GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        {
            if (ended.IsCompleted)
            {
                break;
            }

            try
            {
                await slow.SendAsync(new[] { (byte)c }, SocketFlags.None); // a byte every 50 ms: each read is quick, the head never ends
            }
            catch (SocketException)
            {
                break; // already closed by the server
            }

            await Task.Delay(50);
        }

        // The server closed it (no answer: end of stream, or a reset if our last bytes crossed the close) around the
        // deadline, well before the trickle would have ended.
        int answered;
        try
        {
            answered = await ended.WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (SocketException)
        {
            answered = 0;
        }

        Assert.Equal(0, answered);
        Assert.InRange(closed.Elapsed, TimeSpan.FromMilliseconds(400), TimeSpan.FromSeconds(3.5));
        Assert.Equal(200, (await RawWebSocketClient.SendHttpAsync(listener.BoundPort, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);
        await listener.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task Without_a_management_port_nothing_extra_listens()
    {
        await using TestTransportServer plain = await TestTransportServer.StartAsync(new TestApplication());
        Assert.Equal(0, plain.Services.GetRequiredService<ManagementListener>().BoundPort);
    }

    [Fact]
    public async Task With_private_management_endpoints_metrics_and_readiness_leave_the_public_port()
    {
        var options = new TransportOptions { ManagementPort = 0, ManagementEndpointsPrivate = true };
        await using TestTransportServer server = await TestTransportServer.StartAsync(new TestApplication(), options);
        int management = server.Services.GetRequiredService<ManagementListener>().BoundPort;

        // The public port: liveness only.
        Assert.Equal(404, (await RawWebSocketClient.SendHttpAsync(server.Port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);
        Assert.Equal(404, (await RawWebSocketClient.SendHttpAsync(server.Port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);
        Assert.Equal(200, (await RawWebSocketClient.SendHttpAsync(server.Port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);

        // The management port: all three.
        RawHttpResponse metrics = await RawWebSocketClient.SendHttpAsync(management, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(200, metrics.StatusCode);
        Assert.Contains("collab_ws_connections_open", metrics.Body);
        Assert.Equal(200, (await RawWebSocketClient.SendHttpAsync(management, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")).StatusCode);

        // Without a management port the option would hide them everywhere: refused at start-up.
        Microsoft.Extensions.Options.OptionsValidationException error = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => new TransportOptions { ManagementEndpointsPrivate = true }.Validate());
        Assert.Contains("ManagementEndpointsPrivate", error.Message);
    }

    [Fact]
    public async Task Disposing_without_stopping_ends_the_accept_thread_quietly()
    {
        // Before the fix the accept thread's Accept threw ObjectDisposedException on a thread nobody catches for, which
        // killed the whole test host (and would kill a server disposed after a failed start).
        ManagementListener listener = await StartOwnListenerAsync(TimeSpan.FromSeconds(5));
        int port = listener.BoundPort;
        listener.Dispose();
        await Task.Delay(500);
        using var probe = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await Assert.ThrowsAsync<SocketException>(() => probe.ConnectAsync("127.0.0.1", port));
    }

    [Fact]
    public void The_management_port_must_differ_from_the_websocket_port()
    {
        Assert.Throws<OptionsValidationException>(() => new TransportOptions { Port = 9000, ManagementPort = 9000 }.Validate());
        Assert.Throws<OptionsValidationException>(() => new TransportOptions { ManagementPort = 70_000 }.Validate());
        new TransportOptions { Port = 9000, ManagementPort = 9090 }.Validate();
    }

    /// <summary>Client addresses: Linux routes all of 127.0.0.0/8 to loopback, so each is a distinct client address.</summary>
    private const string Attacker = "127.0.0.1";
    private const string Prober = "127.0.0.2";
    private const string Third = "127.0.0.3";

    /// <summary>A second listener over the same probes (or <paramref name="probes"/>) with its own request deadline, on a free loopback port.</summary>
    private async Task<ManagementListener> StartOwnListenerAsync(TimeSpan requestTimeout, ProbeEndpoints? probes = null)
    {
        var listener = new ManagementListener(
            new TransportOptions { ManagementPort = 0, ListenAddress = "127.0.0.1" },
            probes ?? _server.Services.GetRequiredService<ProbeEndpoints>(),
            Microsoft.Extensions.Logging.Abstractions.NullLogger<ManagementListener>.Instance,
            requestTimeout);
        await listener.StartAsync(CancellationToken.None);
        return listener;
    }

    private Task<RawHttpResponse> GetAsync(string request) => RawWebSocketClient.SendHttpAsync(_port, request);

    private static async Task<Socket> ConnectFromAsync(string localAddress, int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Parse(localAddress), 0));
        await socket.ConnectAsync(IPAddress.Loopback, port);
        return socket;
    }

    /// <summary>One request from <paramref name="localAddress"/>; the response is read to the end (the listener closes after it).</summary>
    private static async Task<RawHttpResponse> GetFromAsync(string localAddress, int port, string request)
    {
        using Socket socket = await ConnectFromAsync(localAddress, port);
        await socket.SendAsync(Encoding.ASCII.GetBytes(request), SocketFlags.None);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var received = new MemoryStream();
        byte[] buffer = new byte[16 * 1024];
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token)) > 0)
        {
            received.Write(buffer, 0, read);
        }

        string text = Encoding.UTF8.GetString(received.ToArray());
        int split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.True(split > 0, "no response: " + text);
        return new RawHttpResponse(int.Parse(text.AsSpan(9, 3), CultureInfo.InvariantCulture), text[..(split + 4)], text[(split + 4)..]);
    }

    /// <summary>A readiness check that blocks every /readyz until released, holding its request in service.</summary>
    private sealed class BlockingCheck(ManualResetEventSlim release) : IReadinessCheck
    {
        private int _waiting;

        public string Name => "blocking";

        public int Waiting => Volatile.Read(ref _waiting);

        public ReadinessResult Check()
        {
            Interlocked.Increment(ref _waiting);
            release.Wait(TimeSpan.FromSeconds(30));
            return ReadinessResult.Ready;
        }
    }

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
