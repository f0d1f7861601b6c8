using System.Net.WebSockets;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using Microsoft.Extensions.DependencyInjection;

namespace Collab.Server.Tests.Transport;

/// <summary>Graceful drain: stop accepting, Close 1001 to every client, flush, exit within the deadline.</summary>
public sealed class ShutdownTests
{
    [Fact]
    public async Task Stop_sends_1001_to_every_client_and_completes_their_close_handshakes()
    {
        var app = new TestApplication();
        TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            ShutdownTimeout = TimeSpan.FromSeconds(5),
            HeartbeatInterval = TimeSpan.FromMilliseconds(50),
        });
        var clients = new List<ClientWebSocket>();
        for (int i = 0; i < 20; i++)
        {
            var ws = new ClientWebSocket();
            await ws.ConnectAsync(server.WebSocketUri, CancellationToken.None);
            clients.Add(ws);
        }

        // Each client reacts to the server's Close like a browser: it answers with its own Close.
        Task<WebSocketCloseStatus?>[] receivers = clients.Select(async ws =>
        {
            var buffer = new byte[64];
            WebSocketReceiveResult result = await ws.ReceiveAsync(buffer, CancellationToken.None);
            await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None);
            return result.CloseStatus;
        }).ToArray();

        // A message queued just before shutdown is still delivered ahead of the Close frame.
        IWebSocketConnection first = app.Open.Values.First();
        using (OutboundMessage last = OutboundMessage.CreateText("last words"))
        {
            Assert.True(first.TrySend(last));
        }

        var watch = System.Diagnostics.Stopwatch.StartNew();
        await server.StopAsync();
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"drain took {watch.Elapsed}");

        WebSocketCloseStatus?[] statuses = await Task.WhenAll(receivers.Select(async r =>
        {
            try
            {
                return await r;
            }
            catch (WebSocketException)
            {
                return null;
            }
        }));

        // The first client read "last words" as its first message, so its first receive was not the Close.
        Assert.Equal(19, statuses.Count(s => s == WebSocketCloseStatus.EndpointUnavailable));
        Assert.Equal(20, app.ClosedCount);
        await server.DisposeAsync();
        Assert.All(clients, ws => ws.Dispose());
    }

    [Fact]
    public async Task Clients_that_ignore_the_close_are_aborted_at_the_shutdown_deadline()
    {
        var app = new TestApplication();
        TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            ShutdownTimeout = TimeSpan.FromMilliseconds(500),
            HeartbeatInterval = TimeSpan.FromMilliseconds(50),
        });
        await using RawWebSocketClient deaf = await RawWebSocketClient.ConnectAsync(server.Port);
        await app.NextOpenedAsync();

        var watch = System.Diagnostics.Stopwatch.StartNew();
        await server.StopAsync();
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(4), $"stop took {watch.Elapsed}");
        Assert.Equal(1001, (await deaf.ReceiveCloseAsync()).CloseCode);
        Assert.True(await deaf.WaitForDisconnectAsync());
        Assert.Equal(ConnectionEndReason.ServerShutdown, await app.NextClosedAsync());

        // Nothing listens any more.
        await Assert.ThrowsAnyAsync<System.Net.Sockets.SocketException>(() => RawWebSocketClient.ConnectTcpAsync(server.Port));
        await server.DisposeAsync();
    }

    [Fact]
    public async Task While_draining_readiness_fails_and_new_upgrades_get_503_but_probes_answer()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app);
        await using RawWebSocketClient probe = await RawWebSocketClient.ConnectTcpAsync(server.Port); // opened before the drain
        await using RawWebSocketClient open = await RawWebSocketClient.ConnectAsync(server.Port);

        server.Services.GetRequiredService<ConnectionRegistry>().BeginShutdown(); // what ApplicationStopping triggers

        Assert.Equal(1001, (await open.ReceiveCloseAsync()).CloseCode);
        RawHttpResponse readyz = await RawWebSocketClient.SendHttpAsync(server.Port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(503, readyz.StatusCode);
        Assert.Contains("transport: draining for shutdown", readyz.Body);
        Assert.True(readyz.HasHeader("Connection: close"));
        InvalidOperationException refused = await Assert.ThrowsAsync<InvalidOperationException>(() => RawWebSocketClient.ConnectAsync(server.Port));
        Assert.Contains("503", refused.Message);

        // An idle keep-alive connection opened before the drain is ended rather than kept open.
        Assert.True(await probe.WaitForDisconnectAsync(TimeSpan.FromSeconds(5)));
    }
}
