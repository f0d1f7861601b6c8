using System.Buffers;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Collab.Client.Transport;

namespace Collab.Client.Tests;

/// <summary>
/// The Pipelines transport byte by byte against a scripted raw server: upgrade, token delivery, masking, fragmentation,
/// ping/pong, the close handshake both ways, the message limit, and servers that break the RFC.
/// </summary>
public sealed class PipelinesTransportTests : IAsyncLifetime
{
    private const int Limit = 64 * 1024;
    private readonly RawWebSocketServer _server = new();
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(20));

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _timeout.Dispose();
    }

    private CancellationToken Ct => _timeout.Token;

    private TransportConnectRequest Request(string? token = null, TokenDelivery delivery = TokenDelivery.AuthorizationHeader, int limit = Limit)
        => new(_server.Uri, token, delivery, CollabClientOptions.DefaultSubProtocol, limit);

    /// <summary>Connects a transport and returns it with the server end, after a valid 101.</summary>
    private async Task<(IClientTransport Client, RawServerConnection Server)> OpenAsync(int limit = Limit)
    {
        ValueTask<IClientTransport> connecting = PipelinesTransportFactory.Instance.ConnectAsync(Request(limit: limit), Ct);
        RawServerConnection server = await _server.AcceptAsync();
        await server.AcceptAsync();
        return (await connecting, server);
    }

    private async Task<byte[]?> ReceiveAsync(IClientTransport client)
    {
        var buffer = new ArrayBufferWriter<byte>();
        return await client.ReceiveAsync(buffer, Ct) ? buffer.WrittenSpan.ToArray() : null;
    }

    // ------------------------------------------------------------------ upgrade

    [Theory]
    [InlineData(TokenDelivery.AuthorizationHeader)]
    [InlineData(TokenDelivery.SubProtocol)]
    [InlineData(TokenDelivery.QueryParameter)]
    public async Task Upgrade_CarriesTheTokenAsConfiguredAndTheSubprotocol(TokenDelivery delivery)
    {
        ValueTask<IClientTransport> connecting = PipelinesTransportFactory.Instance.ConnectAsync(Request("tok.en-1", delivery), Ct);
        RawServerConnection server = await _server.AcceptAsync();
        await server.AcceptAsync();
        await using IClientTransport client = await connecting;

        Assert.Equal("websocket", server.Headers["Upgrade"]);
        Assert.Equal("Upgrade", server.Headers["Connection"]);
        Assert.Equal("13", server.Headers["Sec-WebSocket-Version"]);
        Assert.Equal(16, Convert.FromBase64String(server.Headers["Sec-WebSocket-Key"]).Length);
        Assert.Equal($"127.0.0.1:{_server.Port}", server.Headers["Host"]);
        switch (delivery)
        {
            case TokenDelivery.AuthorizationHeader:
                Assert.Equal("Bearer tok.en-1", server.Headers["Authorization"]);
                Assert.Equal("collab.v1", server.Headers["Sec-WebSocket-Protocol"]);
                Assert.Equal("GET /ws HTTP/1.1", server.RequestLine);
                break;
            case TokenDelivery.SubProtocol:
                Assert.False(server.Headers.ContainsKey("Authorization"));
                Assert.Equal("collab.v1, bearer.tok.en-1", server.Headers["Sec-WebSocket-Protocol"]);
                break;
            default:
                Assert.False(server.Headers.ContainsKey("Authorization"));
                Assert.Equal("GET /ws?access_token=tok.en-1 HTTP/1.1", server.RequestLine);
                break;
        }
    }

    [Fact]
    public async Task Upgrade_KeysAreFreshPerConnection()
    {
        var keys = new HashSet<string>();
        for (int i = 0; i < 3; i++)
        {
            (IClientTransport client, RawServerConnection server) = await OpenAsync();
            await using (client)
            {
                keys.Add(server.Headers["Sec-WebSocket-Key"]);
            }
        }

        Assert.Equal(3, keys.Count);
    }

    [Theory]
    [InlineData(401)]
    [InlineData(403)]
    [InlineData(503)]
    public async Task Upgrade_HttpErrorStatus_IsATransportConnectException(int status)
    {
        ValueTask<IClientTransport> connecting = PipelinesTransportFactory.Instance.ConnectAsync(Request(), Ct);
        RawServerConnection server = await _server.AcceptAsync();
        await server.WriteAsync($"HTTP/1.1 {status} Nope\r\nContent-Length: 5\r\n\r\nnope!");
        var error = await Assert.ThrowsAsync<TransportConnectException>(async () => await connecting);
        Assert.Equal(status, error.HttpStatusCode);
        Assert.True(await server.ClientClosedConnectionAsync());
    }

    [Theory]
    [InlineData(401)]
    [InlineData(403)]
    [InlineData(503)]
    public async Task Upgrade_HttpErrorStatus_ReachesTheApplicationWithItsStatus(int status)
    {
        // (Whether a reconnect gives up on it, as on 401, or retries, as on 503, is ClientConnectionTests' over each wire.)
        var options = new CollabClientOptions { Transport = TransportKind.Pipelines, ConnectTimeout = TimeSpan.FromSeconds(10) };
        Task<CollabClient> connecting = CollabClient.ConnectAsync(_server.Uri, options, Ct);
        RawServerConnection server = await _server.AcceptAsync();
        await server.WriteAsync($"HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\n\r\n");
        var error = await Assert.ThrowsAsync<CollabConnectionException>(() => connecting);
        Assert.Equal(status, error.HttpStatusCode);
        Assert.IsType<TransportConnectException>(error.InnerException);
    }

    [Theory]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n", "Sec-WebSocket-Accept")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n", "Upgrade: websocket")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\n\r\n", "Connection: Upgrade")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: chat\r\n\r\n", "chat")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", "extension")]
    [InlineData("SSH-2.0-OpenSSH_9.6\r\n\r\n", "HTTP/1.x")]
    public async Task Upgrade_AnInvalidAnswerFailsTheConnect(string response, string complaint)
    {
        ValueTask<IClientTransport> connecting = PipelinesTransportFactory.Instance.ConnectAsync(Request(), Ct);
        RawServerConnection server = await _server.AcceptAsync();
        await server.WriteAsync(response.Replace("{accept}", WebSocketUpgrade.ExpectedAccept(server.Headers["Sec-WebSocket-Key"]), StringComparison.Ordinal));
        var error = await Assert.ThrowsAsync<WebSocketException>(async () => await connecting);
        Assert.Contains(complaint, error.Message, StringComparison.Ordinal);
        Assert.True(await server.ClientClosedConnectionAsync());
    }

    [Fact]
    public async Task Upgrade_ConnectionClosedBeforeTheAnswer_FailsTheConnect()
    {
        ValueTask<IClientTransport> connecting = PipelinesTransportFactory.Instance.ConnectAsync(Request(), Ct);
        RawServerConnection server = await _server.AcceptAsync();
        await server.WriteAsync("HTTP/1.1 101 Switching");
        server.CloseSocket();
        var error = await Assert.ThrowsAsync<WebSocketException>(async () => await connecting);
        Assert.Equal(WebSocketError.ConnectionClosedPrematurely, error.WebSocketErrorCode);
    }

    [Fact]
    public async Task Upgrade_EndlessHeaders_AreCutOff()
    {
        ValueTask<IClientTransport> connecting = PipelinesTransportFactory.Instance.ConnectAsync(Request(), Ct);
        RawServerConnection server = await _server.AcceptAsync();
        await server.WriteAsync("HTTP/1.1 101 Switching Protocols\r\n" + string.Concat(Enumerable.Repeat("X-Filler: 0123456789abcdef0123456789abcdef\r\n", 500)));
        var error = await Assert.ThrowsAsync<WebSocketException>(async () => await connecting);
        Assert.Contains("exceed", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Connect_RefusedPort_IsAWebSocketException()
    {
        int port;
        using (var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        }

        var request = new TransportConnectRequest(new Uri($"ws://127.0.0.1:{port}/ws"), null, TokenDelivery.AuthorizationHeader, null, Limit);
        var error = await Assert.ThrowsAsync<WebSocketException>(async () => await PipelinesTransportFactory.Instance.ConnectAsync(request, Ct));
        Assert.IsType<System.Net.Sockets.SocketException>(error.InnerException);
    }

    [Fact]
    public async Task FramesRightAfterThe101_AreTheFirstMessages()
    {
        ValueTask<IClientTransport> connecting = PipelinesTransportFactory.Instance.ConnectAsync(Request(), Ct);
        RawServerConnection server = await _server.AcceptAsync();
        // The 101 and two messages in one write: the transport must not lose what followed the header block.
        byte[] answer = [.. Encoding.ASCII.GetBytes(RawWebSocketServer.SwitchingProtocols(server.Headers, "collab.v1")),
            .. RawServerConnection.Frame(2, "one"u8), .. RawServerConnection.Frame(2, "two"u8)];
        await server.WriteAsync(answer);
        await using IClientTransport client = await connecting;
        Assert.Equal("one"u8.ToArray(), await ReceiveAsync(client));
        Assert.Equal("two"u8.ToArray(), await ReceiveAsync(client));
    }

    // ------------------------------------------------------------------ messages

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(125)]
    [InlineData(126)]
    [InlineData(65_535)]
    [InlineData(65_536)]
    [InlineData(300_000)]
    public async Task Send_IsOneFinalMaskedBinaryFrame(int length)
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync();
        await using (client)
        {
            byte[] message = RandomNumberGenerator.GetBytes(length);
            await client.SendAsync(message, Ct);
            (bool fin, int opcode, byte[] payload) = await server.ReadFrameAsync();
            Assert.True(fin);
            Assert.Equal(2, opcode);
            Assert.Equal(message, payload);
        }
    }

    [Fact]
    public async Task Send_UsesAFreshMaskingKeyPerFrame()
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync();
        await using (client)
        {
            var keys = new HashSet<string>();
            for (int i = 0; i < 8; i++)
            {
                await client.SendAsync("same"u8.ToArray(), Ct);
                Assert.Equal("same"u8.ToArray(), (await server.ReadFrameAsync()).Payload);
                keys.Add(Convert.ToHexString(server.LastMaskKey));
            }

            // 8 random 32-bit keys collide with probability ~7e-9.
            Assert.Equal(8, keys.Count);
        }
    }

    [Fact]
    public async Task Receive_JoinsFragmentsAcrossInterleavedControlFrames_AndAnswersPings()
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync(limit: 1 << 20);
        await using (client)
        {
            byte[] tail = RandomNumberGenerator.GetBytes(70_000);
            await server.WriteAsync([
                .. RawServerConnection.Frame(2, "hel"u8, fin: false),
                .. RawServerConnection.Frame(9, "ping-1"u8),
                .. RawServerConnection.Frame(0, "lo "u8, fin: false),
                .. RawServerConnection.Frame(10, "unsolicited pong"u8),
                .. RawServerConnection.Frame(0, [], fin: false),
                .. RawServerConnection.Frame(0, tail),
            ]);

            byte[] expected = [.. "hello "u8, .. tail];
            Assert.Equal(expected, await ReceiveAsync(client));
            (bool fin, int opcode, byte[] payload) pong = await server.ReadFrameAsync();
            Assert.Equal((true, 10), (pong.fin, pong.opcode));
            Assert.Equal("ping-1"u8.ToArray(), pong.payload);
        }
    }

    [Fact]
    public async Task Receive_AMessageTrickledByteByByte()
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync();
        await using (client)
        {
            byte[] message = RandomNumberGenerator.GetBytes(300);
            Task<byte[]?> receiving = ReceiveAsync(client);
            foreach (byte b in RawServerConnection.Frame(2, message))
            {
                await server.WriteAsync([b]);
            }

            Assert.Equal(message, await receiving);
        }
    }

    [Fact]
    public async Task Receive_PingFromTheServer_IsAnsweredWithoutAMessage()
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync();
        await using (client)
        {
            Task<byte[]?> receiving = ReceiveAsync(client);
            byte[] nonce = RandomNumberGenerator.GetBytes(125);
            await server.WriteAsync(RawServerConnection.Frame(9, nonce));
            (bool _, int opcode, byte[] payload) = await server.ReadFrameAsync();
            Assert.Equal(10, opcode);
            Assert.Equal(nonce, payload);
            Assert.False(receiving.IsCompleted);

            await server.WriteAsync(RawServerConnection.Frame(2, "after"u8));
            Assert.Equal("after"u8.ToArray(), await receiving);
        }
    }

    [Fact]
    public async Task Receive_Oversized_IsRefusedWith1009BeforeItsPayloadArrives()
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync(limit: 1000);
        await using (client)
        {
            // Only the header of a 1,001-byte message: the limit is enforced on the announced length.
            await server.WriteAsync(RawServerConnection.Frame(2, new byte[1001])[..4]);
            var error = await Assert.ThrowsAsync<WebSocketException>(() => ReceiveAsync(client));
            Assert.Contains("1000-byte limit", error.Message, StringComparison.Ordinal);
            (bool _, int opcode, byte[] payload) = await server.ReadFrameAsync();
            Assert.Equal(8, opcode);
            Assert.Equal(RawServerConnection.ClosePayload(1009, "message too big"), payload);
            Assert.True(await server.ClientClosedConnectionAsync());
        }
    }

    [Fact]
    public async Task Receive_OversizedAcrossFragments_IsRefused()
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync(limit: 1000);
        await using (client)
        {
            await server.WriteAsync([.. RawServerConnection.Frame(2, new byte[600], fin: false), .. RawServerConnection.Frame(0, new byte[600])]);
            await Assert.ThrowsAsync<WebSocketException>(() => ReceiveAsync(client));
            Assert.Equal(8, (await server.ReadFrameAsync()).Opcode);
        }
    }

    [Fact]
    public async Task Receive_AMessageAtTheLimit_IsAccepted()
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync(limit: 1000);
        await using (client)
        {
            await server.WriteAsync([.. RawServerConnection.Frame(2, new byte[400], fin: false), .. RawServerConnection.Frame(0, new byte[600])]);
            Assert.Equal(1000, (await ReceiveAsync(client))!.Length);
        }
    }

    [Fact]
    public async Task Receive_TextMessage_IsRefusedAsTheWebSocketTransportDoes()
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync();
        await using (client)
        {
            await server.WriteAsync(RawServerConnection.Frame(1, "{\"json\":true}"u8));
            var error = await Assert.ThrowsAsync<WebSocketException>(() => ReceiveAsync(client));
            Assert.Equal(WebSocketError.InvalidMessageType, error.WebSocketErrorCode);
            Assert.Equal(RawServerConnection.ClosePayload(1003, "binary messages only"), (await server.ReadFrameAsync()).Payload);
        }
    }

    // ------------------------------------------------------------------ close handshake

    [Fact]
    public async Task Close_StartedByTheServer_IsAnsweredWithItsCode()
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync();
        await using (client)
        {
            await server.WriteAsync(RawServerConnection.Frame(8, RawServerConnection.ClosePayload(4001, "token expired")));
            Assert.Null(await ReceiveAsync(client));
            Assert.Equal((WebSocketCloseStatus)4001, client.CloseStatus);
            Assert.Equal("token expired", client.CloseStatusDescription);

            (bool _, int opcode, byte[] payload) = await server.ReadFrameAsync();
            Assert.Equal(8, opcode);
            Assert.Equal(RawServerConnection.ClosePayload(4001), payload);

            // Closed: further receives say so, sends fail, another close is a no-op.
            Assert.Null(await ReceiveAsync(client));
            var error = await Assert.ThrowsAsync<WebSocketException>(async () => await client.SendAsync("late"u8.ToArray(), Ct));
            Assert.Equal(WebSocketError.InvalidState, error.WebSocketErrorCode);
            await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "again", Ct);
        }

        Assert.True(await server.ClientClosedConnectionAsync());
    }

    [Fact]
    public async Task Close_StartedByTheClient_EndsWhenTheServerAnswers()
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync();
        await using (client)
        {
            Task<byte[]?> receiving = ReceiveAsync(client);
            await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "client closing", Ct);
            (bool _, int opcode, byte[] payload) = await server.ReadFrameAsync();
            Assert.Equal(8, opcode);
            Assert.Equal(RawServerConnection.ClosePayload(1000, "client closing"), payload);

            // Messages already in flight from the server are still delivered, then the server's close ends the receive.
            await server.WriteAsync([.. RawServerConnection.Frame(2, "in flight"u8), .. RawServerConnection.Frame(8, RawServerConnection.ClosePayload(1000))]);
            Assert.Equal("in flight"u8.ToArray(), await receiving);
            Assert.Null(await ReceiveAsync(client));
            Assert.Equal(WebSocketCloseStatus.NormalClosure, client.CloseStatus);
            await Assert.ThrowsAsync<WebSocketException>(async () => await client.SendAsync("late"u8.ToArray(), Ct));
        }

        // The answer was not answered again: the next thing the server sees is the end of the connection.
        Assert.True(await server.ClientClosedConnectionAsync());
        Assert.Equal(0, server.TrailingBytes);
    }

    [Fact]
    public async Task Close_WithoutACode_IsEmpty()
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync();
        await using (client)
        {
            await server.WriteAsync(RawServerConnection.Frame(8, []));
            Assert.Null(await ReceiveAsync(client));
            Assert.Equal(WebSocketCloseStatus.Empty, client.CloseStatus);
            Assert.Empty((await server.ReadFrameAsync()).Payload);
        }
    }

    [Fact]
    public async Task Close_ArgumentsAreCheckedAsClientWebSocketDoes()
    {
        (IClientTransport client, _) = await OpenAsync();
        await using (client)
        {
            await Assert.ThrowsAsync<ArgumentException>(async () => await client.CloseAsync(WebSocketCloseStatus.NormalClosure, new string('x', 124), Ct));
            await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await client.CloseAsync((WebSocketCloseStatus)1006, null, Ct));
            await Assert.ThrowsAsync<ArgumentException>(async () => await client.CloseAsync(WebSocketCloseStatus.Empty, "why", Ct));
        }
    }

    [Fact]
    public async Task EndOfStreamWithoutClose_IsAPrematureClose()
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync();
        await using (client)
        {
            await server.WriteAsync(RawServerConnection.Frame(2, "half"u8, fin: false));
            server.CloseSocket();
            var error = await Assert.ThrowsAsync<WebSocketException>(() => ReceiveAsync(client));
            Assert.Equal(WebSocketError.ConnectionClosedPrematurely, error.WebSocketErrorCode);
        }
    }

    [Fact]
    public async Task Abort_FailsAPendingReceiveAtOnce()
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync();
        await using (client)
        {
            Task<byte[]?> receiving = ReceiveAsync(client);
            await Task.Delay(50);
            client.Abort();
            await Assert.ThrowsAsync<WebSocketException>(() => receiving);
            await Assert.ThrowsAsync<WebSocketException>(async () => await client.SendAsync("x"u8.ToArray(), Ct));
        }

        Assert.True(await server.ClientClosedConnectionAsync());
    }

    // ------------------------------------------------------------------ adversarial servers

    public static TheoryData<string, byte[], int> Violations => new()
    {
        { "garbage after the 101", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"u8.ToArray(), 1002 },
        { "RSV bits", RawServerConnection.Frame(2, "x"u8, rsv: 4), 1002 },
        { "masked server frame", RawServerConnection.Frame(2, "x"u8, mask: true), 1002 },
        { "reserved opcode", RawServerConnection.Frame(3, "x"u8), 1002 },
        { "fragmented control frame", RawServerConnection.Frame(9, "x"u8, fin: false), 1002 },
        { "continuation without a message", RawServerConnection.Frame(0, "x"u8), 1002 },
        { "new message inside a fragmented one", [.. RawServerConnection.Frame(2, "a"u8, fin: false), .. RawServerConnection.Frame(2, "b"u8)], 1002 },
        { "64-bit length with the top bit", [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1], 1002 },
        { "close with a reserved code", RawServerConnection.Frame(8, RawServerConnection.ClosePayload(1005)), 1002 },
        { "close with a 1-byte payload", RawServerConnection.Frame(8, [3]), 1002 },
        { "close reason not UTF-8", RawServerConnection.Frame(8, [0x03, 0xE8, 0xC3, 0x28]), 1007 },
    };

    [Theory]
    [MemberData(nameof(Violations))]
    public async Task AnRfcViolation_FailsTheConnectionCleanly(string what, byte[] bytes, int closeCode)
    {
        (IClientTransport client, RawServerConnection server) = await OpenAsync();
        await using (client)
        {
            await server.WriteAsync(bytes);
            var error = await Assert.ThrowsAsync<WebSocketException>(() => ReceiveAsync(client));
            Assert.False(string.IsNullOrEmpty(error.Message), what);
            (bool _, int opcode, byte[] payload) = await server.ReadFrameAsync();
            Assert.Equal(8, opcode);
            Assert.Equal(closeCode, (payload[0] << 8) | payload[1]);
            Assert.True(await server.ClientClosedConnectionAsync(), what);
        }
    }

    [Fact]
    public async Task GarbageAfterThe101_FailsTheSdksConnectCleanly()
    {
        var options = new CollabClientOptions { Transport = TransportKind.Pipelines, ConnectTimeout = TimeSpan.FromSeconds(10) };
        Task<CollabClient> connecting = CollabClient.ConnectAsync(_server.Uri, options, Ct);
        RawServerConnection server = await _server.AcceptAsync();
        await server.AcceptAsync();
        await server.WriteAsync("\r\n<html>not a websocket</html>");
        var error = await Assert.ThrowsAsync<CollabConnectionException>(() => connecting);
        Assert.IsType<WebSocketException>(error.InnerException);
        Assert.True(await server.ClientClosedConnectionAsync());
    }
}
