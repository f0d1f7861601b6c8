using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;

namespace Collab.Server.Tests.Transport;

[CollectionDefinition(nameof(ManyConnectionsCollection), DisableParallelization = true)]
public sealed class ManyConnectionsCollection
{
}

/// <summary>Thousands of concurrent connections on loopback, one broadcast to all, and a clean close of each.</summary>
[Collection(nameof(ManyConnectionsCollection))]
[Trait("Category", "Slow")]
public sealed class ManyConnectionsTests
{
    private const int Connections = 5000;

    [Fact]
    public async Task Holds_5000_connections_broadcasts_to_all_and_closes_them_cleanly()
    {
        long limit = FileDescriptorLimit.EnsureAtLeast((Connections * 2) + 1000);
        Assert.True(limit >= (Connections * 2) + 500, $"the open-files limit ({limit}) is too low for {Connections} loopback connections");

        var app = new TestApplication();
        // No keep-alive pings during the test: on a loaded machine connecting 5,000 clients took over the 30 s default
        // interval, and the first frame a client read was the server's ping, not the broadcast.
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions { MaxConnections = Connections, PingInterval = TimeSpan.FromMinutes(10) });
        var clients = new RawWebSocketClient[Connections];
        try
        {
            // Connect in waves so the listen backlog is never the bottleneck.
            using var gate = new SemaphoreSlim(64);
            await Task.WhenAll(Enumerable.Range(0, Connections).Select(async i =>
            {
                await gate.WaitAsync();
                try
                {
                    clients[i] = await RawWebSocketClient.ConnectAsync(server.Port, bufferSize: 512);
                }
                finally
                {
                    gate.Release();
                }
            }));
            Assert.Equal(Connections, app.OpenedCount);

            // One frame, encoded once, written to every connection.
            using (OutboundMessage broadcast = OutboundMessage.CreateText("to everyone"))
            {
                foreach (IWebSocketConnection connection in app.Open.Values)
                {
                    Assert.True(connection.TrySend(broadcast));
                }
            }

            await Task.WhenAll(clients.Select(async client =>
            {
                await gate.WaitAsync();
                try
                {
                    Assert.Equal("to everyone", (await client.ReceiveFrameAsync(TimeSpan.FromSeconds(30))).Text);
                    await client.SendCloseAsync(1000);
                    RawFrame close = await client.ReceiveCloseAsync(TimeSpan.FromSeconds(30));
                    Assert.Equal(1000, close.CloseCode);
                    Assert.True(await client.WaitForDisconnectAsync(TimeSpan.FromSeconds(30)));
                }
                finally
                {
                    gate.Release();
                }
            }));

            for (int i = 0; i < Connections; i++)
            {
                Assert.Equal(ConnectionEndReason.ClientClosed, await app.NextClosedAsync(TimeSpan.FromSeconds(30)));
            }

            Assert.Empty(app.Open);
        }
        finally
        {
            foreach (RawWebSocketClient? client in clients)
            {
                if (client is not null)
                {
                    await client.DisposeAsync();
                }
            }
        }
    }
}
