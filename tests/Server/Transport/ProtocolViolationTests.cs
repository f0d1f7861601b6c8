using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;

namespace Collab.Server.Tests.Transport;

/// <summary>
/// Each RFC 6455 violation, sent over a raw socket, must fail that connection with the exact close
/// code the RFC names, close the TCP connection at once without waiting for the peer's Close (section 7.1.7:
/// the peer's byte stream can no longer be parsed), and the server must go on serving a fresh connection.
/// The close timeout is long here, so a server that waited for the peer's Close would miss the bound by far.
/// </summary>
[Trait("Category", "Slow")]
public sealed class ProtocolViolationTests : IAsyncLifetime
{
    /// <summary>How soon after its Close the server must have closed TCP: well under <see cref="CloseTimeout"/>, with room for a loaded machine.</summary>
    private static readonly TimeSpan PromptClose = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(60);

    private readonly TestApplication _app = new();
    private TestTransportServer _server = null!;

    public async Task InitializeAsync() => _server = await TestTransportServer.StartAsync(_app, new TransportOptions
    {
        MaxMessageBytes = 64 * 1024,
        HeartbeatInterval = TimeSpan.FromMilliseconds(50),
        CloseTimeout = CloseTimeout,
    });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    public static TheoryData<string, byte[], ushort, ConnectionEndReason> Violations()
    {
        byte[] hello = "hello"u8.ToArray();
        return new TheoryData<string, byte[], ushort, ConnectionEndReason>
        {
            { "unmasked frame", RawWebSocketClient.EncodeFrame(0x2, hello, mask: false), 1002, ConnectionEndReason.ProtocolError },
            { "RSV1 set", RawWebSocketClient.EncodeFrame(0x2, hello, reserved: 0b100), 1002, ConnectionEndReason.ProtocolError },
            { "RSV2 set", RawWebSocketClient.EncodeFrame(0x2, hello, reserved: 0b010), 1002, ConnectionEndReason.ProtocolError },
            { "RSV3 set", RawWebSocketClient.EncodeFrame(0x1, hello, reserved: 0b001), 1002, ConnectionEndReason.ProtocolError },
            { "reserved data opcode 3", RawWebSocketClient.EncodeFrame(0x3, hello), 1002, ConnectionEndReason.ProtocolError },
            { "reserved data opcode 7", RawWebSocketClient.EncodeFrame(0x7, hello), 1002, ConnectionEndReason.ProtocolError },
            { "reserved control opcode B", RawWebSocketClient.EncodeFrame(0xB, hello), 1002, ConnectionEndReason.ProtocolError },
            { "reserved control opcode F", RawWebSocketClient.EncodeFrame(0xF, hello), 1002, ConnectionEndReason.ProtocolError },
            { "fragmented ping", RawWebSocketClient.EncodeFrame(0x9, hello, fin: false), 1002, ConnectionEndReason.ProtocolError },
            { "fragmented close", RawWebSocketClient.EncodeFrame(0x8, new byte[] { 0x03, 0xE8 }, fin: false), 1002, ConnectionEndReason.ProtocolError },
            { "ping payload of 126 bytes", RawWebSocketClient.EncodeFrame(0x9, new byte[126]), 1002, ConnectionEndReason.ProtocolError },
            { "continuation without a start", RawWebSocketClient.EncodeFrame(0x0, hello), 1002, ConnectionEndReason.ProtocolError },
            {
                "new message inside a fragmented one",
                Concat(RawWebSocketClient.EncodeFrame(0x1, "a"u8, fin: false), RawWebSocketClient.EncodeFrame(0x1, "b"u8)),
                1002,
                ConnectionEndReason.ProtocolError
            },
            { "invalid UTF-8 in a text frame", RawWebSocketClient.EncodeFrame(0x1, new byte[] { 0x61, 0xC3, 0x28 }), 1007, ConnectionEndReason.InvalidPayload },
            { "overlong UTF-8 encoding", RawWebSocketClient.EncodeFrame(0x1, new byte[] { 0xC0, 0xAF }), 1007, ConnectionEndReason.InvalidPayload },
            { "UTF-16 surrogate encoded in UTF-8", RawWebSocketClient.EncodeFrame(0x1, new byte[] { 0xED, 0xA0, 0x80 }), 1007, ConnectionEndReason.InvalidPayload },
            { "text ending inside a code point", RawWebSocketClient.EncodeFrame(0x1, new byte[] { 0x61, 0xE2, 0x82 }), 1007, ConnectionEndReason.InvalidPayload },
            {
                "invalid UTF-8 across fragments",
                Concat(RawWebSocketClient.EncodeFrame(0x1, new byte[] { 0x61, 0xE2 }, fin: false), RawWebSocketClient.EncodeFrame(0x0, new byte[] { 0x28, 0xA1 })),
                1007,
                ConnectionEndReason.InvalidPayload
            },
            { "close code 1005 on the wire", RawWebSocketClient.EncodeFrame(0x8, new byte[] { 0x03, 0xED }), 1002, ConnectionEndReason.ProtocolError },
            { "close code 999", RawWebSocketClient.EncodeFrame(0x8, new byte[] { 0x03, 0xE7 }), 1002, ConnectionEndReason.ProtocolError },
            { "close code 2999", RawWebSocketClient.EncodeFrame(0x8, new byte[] { 0x0B, 0xB7 }), 1002, ConnectionEndReason.ProtocolError },
            { "close code 5000", RawWebSocketClient.EncodeFrame(0x8, new byte[] { 0x13, 0x88 }), 1002, ConnectionEndReason.ProtocolError },
            { "close frame with a 1-byte payload", RawWebSocketClient.EncodeFrame(0x8, new byte[] { 0x03 }), 1002, ConnectionEndReason.ProtocolError },
            { "close frame with a 126-byte payload", RawWebSocketClient.EncodeFrame(0x8, CloseFramePayload(126)), 1002, ConnectionEndReason.ProtocolError },
            { "close frame with RSV1 set", RawWebSocketClient.EncodeFrame(0x8, new byte[] { 0x03, 0xE8 }, reserved: 0b100), 1002, ConnectionEndReason.ProtocolError },
            { "close frame with RSV3 set", RawWebSocketClient.EncodeFrame(0x8, new byte[] { 0x03, 0xE8 }, reserved: 0b001), 1002, ConnectionEndReason.ProtocolError },
            { "close reason not UTF-8", RawWebSocketClient.EncodeFrame(0x8, new byte[] { 0x03, 0xE8, 0xFF }), 1007, ConnectionEndReason.InvalidPayload },
            { "declared length of 2^31", RawWebSocketClient.EncodeFrame(0x2, hello, declaredLength: 1UL << 31), 1009, ConnectionEndReason.MessageTooBig },
            { "declared length of 2^32", RawWebSocketClient.EncodeFrame(0x2, hello, declaredLength: 1UL << 32), 1009, ConnectionEndReason.MessageTooBig },
            { "declared length of 2^40", RawWebSocketClient.EncodeFrame(0x2, hello, declaredLength: 1UL << 40), 1009, ConnectionEndReason.MessageTooBig },
            { "declared length of 2^63-1", RawWebSocketClient.EncodeFrame(0x2, hello, declaredLength: long.MaxValue), 1009, ConnectionEndReason.MessageTooBig },
            { "64-bit length with the top bit set", RawWebSocketClient.EncodeFrame(0x2, hello, declaredLength: 1UL << 63), 1002, ConnectionEndReason.ProtocolError },
            { "64-bit length of all ones", RawWebSocketClient.EncodeFrame(0x2, hello, declaredLength: ulong.MaxValue), 1002, ConnectionEndReason.ProtocolError },
            { "single frame over the limit", RawWebSocketClient.EncodeFrame(0x2, new byte[(64 * 1024) + 1]), 1009, ConnectionEndReason.MessageTooBig },
            {
                "fragments adding up over the limit",
                Concat(RawWebSocketClient.EncodeFrame(0x2, new byte[40 * 1024], fin: false), RawWebSocketClient.EncodeFrame(0x0, new byte[40 * 1024])),
                1009,
                ConnectionEndReason.MessageTooBig
            },
        };
    }

    [Theory]
    [MemberData(nameof(Violations))]
    public async Task Violation_fails_the_connection_with_the_rfc_close_code_and_closes_tcp_at_once(string name, byte[] bytes, ushort expectedCode, ConnectionEndReason expectedReason)
    {
        await using (RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(_server.Port))
        {
            await client.SendRawAsync(bytes);
            RawFrame close = await client.ReceiveCloseAsync();
            Assert.True(close.CloseCode == expectedCode, $"{name}: expected {expectedCode}, got {close.CloseCode} ({close.CloseReason})");

            // No Close from us: the server must not wait for one (it waited CloseTimeout before).
            Assert.True(await client.WaitForDisconnectAsync(PromptClose), $"{name}: the server kept the TCP connection open after failing it");
        }

        Assert.Equal(expectedReason, await _app.NextClosedAsync());

        // The failure is confined to that connection: a fresh one works.
        await using RawWebSocketClient fresh = await RawWebSocketClient.ConnectAsync(_server.Port);
        await fresh.SendTextAsync("still serving");
        RawFrame echo = await fresh.ReceiveFrameAsync();
        Assert.Equal("still serving", echo.Text);
    }

    [Fact]
    public async Task Violation_byte_by_byte_is_detected_the_same_way()
    {
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(_server.Port);
        byte[] frame = RawWebSocketClient.EncodeFrame(0x1, new byte[] { 0x61, 0x62, 0xF0, 0x9F, 0x98, 0x80, 0xC3, 0x28 });
        foreach (byte b in frame)
        {
            await client.SendRawAsync(new[] { b });
        }

        RawFrame close = await client.ReceiveCloseAsync();
        Assert.Equal(1007, close.CloseCode);
    }

    [Fact]
    public async Task Client_that_keeps_sending_after_a_violation_is_still_dropped_at_once()
    {
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(_server.Port);
        await client.SendFrameAsync(0x2, "x"u8, mask: false);
        Assert.Equal(1002, (await client.ReceiveCloseAsync()).CloseCode);

        // More frames (valid or not) change nothing: nothing after the violation is read.
        try
        {
            await client.SendTextAsync("after the violation");
            await client.SendFrameAsync(0x2, "y"u8, mask: false);
        }
        catch (System.Net.Sockets.SocketException)
        {
            // The server may already have closed.
        }

        Assert.True(await client.WaitForDisconnectAsync(PromptClose));
        Assert.Equal(ConnectionEndReason.ProtocolError, await _app.NextClosedAsync());
    }

    [Fact]
    public async Task A_clean_close_by_the_server_still_waits_for_the_peers_close()
    {
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(_server.Port);
        IWebSocketConnection connection = await _app.NextOpenedAsync();
        connection.Close(1000, "bye");
        Assert.Equal(1000, (await client.ReceiveCloseAsync()).CloseCode);

        // The closing handshake (RFC 6455 section 7.1.2): the server keeps TCP open for our Close...
        Assert.False(await client.WaitForDisconnectAsync(TimeSpan.FromMilliseconds(500)), "the server closed TCP before the client's Close");

        // ...and closes it once the Close arrives.
        await client.SendCloseAsync(1000);
        Assert.True(await client.WaitForDisconnectAsync(PromptClose));
        Assert.Equal(ConnectionEndReason.ServerClosed, await _app.NextClosedAsync());
    }

    [Fact]
    public async Task A_clean_close_whose_peer_never_answers_ends_at_the_close_timeout()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            CloseTimeout = TimeSpan.FromMilliseconds(600),
            HeartbeatInterval = TimeSpan.FromMilliseconds(50),
        });
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(server.Port);
        IWebSocketConnection connection = await app.NextOpenedAsync();
        long started = Environment.TickCount64;
        connection.Close(1000, "bye");
        Assert.Equal(1000, (await client.ReceiveCloseAsync()).CloseCode);
        Assert.True(await client.WaitForDisconnectAsync(TimeSpan.FromSeconds(10)));
        Assert.InRange(Environment.TickCount64 - started, 500, 10_000);
    }

    /// <summary>A Close payload of <paramref name="length"/> bytes: code 1000 and a reason of 'x's (over 125 is illegal).</summary>
    private static byte[] CloseFramePayload(int length)
    {
        byte[] payload = new byte[length];
        payload[0] = 0x03;
        payload[1] = 0xE8;
        payload.AsSpan(2).Fill((byte)'x');
        return payload;
    }

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();
}
