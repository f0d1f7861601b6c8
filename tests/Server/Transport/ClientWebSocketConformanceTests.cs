using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;

namespace Collab.Server.Tests.Transport;

/// <summary>Conformance against an independent client: .NET's ClientWebSocket over loopback.</summary>
[Trait("Category", "Slow")]
public sealed class ClientWebSocketConformanceTests : IAsyncLifetime
{
    private readonly TestApplication _app = new();
    private TestTransportServer _server = null!;

    public async Task InitializeAsync() => _server = await TestTransportServer.StartAsync(_app, new TransportOptions { HeartbeatInterval = TimeSpan.FromMilliseconds(50) });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(125)]
    [InlineData(126)]
    [InlineData(65535)]
    [InlineData(65536)]
    [InlineData(200_000)]
    [InlineData(1024 * 1024)]
    public async Task Binary_messages_of_every_length_class_echo_intact(int length)
    {
        using ClientWebSocket ws = await ConnectAsync();
        byte[] payload = RandomNumberGenerator.GetBytes(length);
        await ws.SendAsync(payload, WebSocketMessageType.Binary, endOfMessage: true, CancellationToken.None);
        (byte[] echoed, WebSocketMessageType type) = await ReceiveMessageAsync(ws);
        Assert.Equal(WebSocketMessageType.Binary, type);
        Assert.Equal(payload, echoed);
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, ws.CloseStatus);
        Assert.Equal(ConnectionEndReason.ClientClosed, await _app.NextClosedAsync());
    }

    [Fact]
    public async Task Text_with_multibyte_characters_echoes_as_text()
    {
        using ClientWebSocket ws = await ConnectAsync();
        string text = "héllo wörld — 你好 🎉";
        await ws.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, CancellationToken.None);
        (byte[] echoed, WebSocketMessageType type) = await ReceiveMessageAsync(ws);
        Assert.Equal(WebSocketMessageType.Text, type);
        Assert.Equal(text, Encoding.UTF8.GetString(echoed));
    }

    [Fact]
    public async Task Fragmented_text_split_inside_code_points_is_joined()
    {
        using ClientWebSocket ws = await ConnectAsync();
        byte[] utf8 = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("ab€😀", 5000)));
        for (int offset = 0; offset < utf8.Length; offset += 7)
        {
            int n = Math.Min(7, utf8.Length - offset);
            await ws.SendAsync(utf8.AsMemory(offset, n), WebSocketMessageType.Text, offset + n == utf8.Length, CancellationToken.None);
        }

        (byte[] echoed, WebSocketMessageType type) = await ReceiveMessageAsync(ws);
        Assert.Equal(WebSocketMessageType.Text, type);
        Assert.Equal(utf8, echoed);
    }

    [Fact]
    public async Task Many_messages_in_flight_arrive_in_order()
    {
        using ClientWebSocket ws = await ConnectAsync();
        const int count = 2000;
        Task sender = Task.Run(async () =>
        {
            for (int i = 0; i < count; i++)
            {
                await ws.SendAsync(BitConverter.GetBytes(i), WebSocketMessageType.Binary, true, CancellationToken.None);
            }
        });
        for (int i = 0; i < count; i++)
        {
            (byte[] echoed, _) = await ReceiveMessageAsync(ws);
            Assert.Equal(i, BitConverter.ToInt32(echoed));
        }

        await sender;
    }

    [Fact]
    public async Task Client_keepalive_pings_are_answered_with_pongs()
    {
        // .NET 9+ ClientWebSocket sends pings and aborts if no pong arrives within KeepAliveTimeout.
        using var ws = new ClientWebSocket();
        // A ping every 100 ms, each to be answered within 1 s; held for 3 s, so an unanswered ping aborts the socket
        // well inside the wait (the margins are for a loaded CI machine, where 500 ms pong deadlines were missed).
        ws.Options.KeepAliveInterval = TimeSpan.FromMilliseconds(100);
        ws.Options.KeepAliveTimeout = TimeSpan.FromSeconds(1);
        await ws.ConnectAsync(_server.WebSocketUri, CancellationToken.None);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var buffer = new byte[16];
        Task<WebSocketReceiveResult> receive = ws.ReceiveAsync(buffer, cts.Token);
        await Task.Delay(3000);
        Assert.Equal(WebSocketState.Open, ws.State);
        Assert.False(receive.IsFaulted);
        await ws.SendAsync("x"u8.ToArray(), WebSocketMessageType.Binary, true, CancellationToken.None);
        WebSocketReceiveResult result = await receive;
        Assert.Equal(1, result.Count);
    }

    [Fact]
    public async Task Sub_protocol_chosen_by_the_application_is_negotiated()
    {
        _app.Handshake = request => HandshakeDecision.Accept(request.SubProtocols.Contains("collab.v1") ? "collab.v1" : null);
        using var ws = new ClientWebSocket();
        ws.Options.AddSubProtocol("token.abc");
        ws.Options.AddSubProtocol("collab.v1");
        await ws.ConnectAsync(_server.WebSocketUri, CancellationToken.None);
        Assert.Equal("collab.v1", ws.SubProtocol);
        HandshakeRequest seen = Assert.Single(_app.Handshakes);
        Assert.Equal(new[] { "token.abc", "collab.v1" }, seen.SubProtocols);
    }

    [Fact]
    public async Task Server_close_reaches_the_client_with_code_and_reason()
    {
        using ClientWebSocket ws = await ConnectAsync();
        IWebSocketConnection connection = await _app.NextOpenedAsync();
        connection.Close(4001, "document deleted");
        var buffer = new byte[16];
        WebSocketReceiveResult result = await ws.ReceiveAsync(buffer, CancellationToken.None);
        Assert.Equal(WebSocketMessageType.Close, result.MessageType);
        Assert.Equal((WebSocketCloseStatus)4001, result.CloseStatus);
        Assert.Equal("document deleted", result.CloseStatusDescription);
        await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None);
        Assert.Equal(ConnectionEndReason.ServerClosed, await _app.NextClosedAsync());
        Assert.False(connection.TrySend(OutboundMessage.CreateBinary("late"u8)));
    }

    [Fact]
    public async Task Message_over_the_limit_is_refused_with_1009()
    {
        await using TestTransportServer small = await TestTransportServer.StartAsync(_app, new TransportOptions { MaxMessageBytes = 1000 });
        using var ws = new ClientWebSocket();
        await ws.ConnectAsync(small.WebSocketUri, CancellationToken.None);
        await ws.SendAsync(new byte[1001], WebSocketMessageType.Binary, true, CancellationToken.None);
        WebSocketReceiveResult result = await ws.ReceiveAsync(new byte[16], CancellationToken.None);
        Assert.Equal(WebSocketMessageType.Close, result.MessageType);
        Assert.Equal(WebSocketCloseStatus.MessageTooBig, result.CloseStatus);
        Assert.Equal(ConnectionEndReason.MessageTooBig, await _app.NextClosedAsync());
    }

    private async Task<ClientWebSocket> ConnectAsync()
    {
        var ws = new ClientWebSocket();
        await ws.ConnectAsync(_server.WebSocketUri, CancellationToken.None);
        return ws;
    }

    internal static async Task<(byte[] Payload, WebSocketMessageType Type)> ReceiveMessageAsync(WebSocket ws)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var stream = new MemoryStream();
        var buffer = new byte[64 * 1024];
        while (true)
        {
            WebSocketReceiveResult result = await ws.ReceiveAsync(buffer, cts.Token);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                throw new InvalidOperationException($"Closed: {result.CloseStatus} {result.CloseStatusDescription}");
            }

            stream.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return (stream.ToArray(), result.MessageType);
            }
        }
    }
}
