using System.Text;
using Collab.LoadTest.Client;
using CsCheck;

namespace Collab.LoadTest.Tests;

public sealed class WebSocketFramingTests
{
    [Theory]
    [InlineData(0, 6)]
    [InlineData(125, 6)]
    [InlineData(126, 8)]
    [InlineData(65535, 8)]
    [InlineData(65536, 14)]
    public void Client_header_length_follows_the_payload_length_encoding(int payload, int expected)
    {
        Assert.Equal(expected, WebSocketFraming.ClientHeaderLength(payload));
        var header = new byte[WebSocketFraming.MaxClientHeaderLength];
        Assert.Equal(expected, WebSocketFraming.WriteClientHeader(header, WsOpcode.Binary, payload, 0x11223344));
    }

    [Fact]
    public void Client_header_sets_fin_mask_bit_opcode_length_and_key()
    {
        var header = new byte[14];
        int length = WebSocketFraming.WriteClientHeader(header, WsOpcode.Binary, 300, 0xDDCCBBAA);
        Assert.Equal(8, length);
        Assert.Equal(0x82, header[0]);
        Assert.Equal(0x80 | 126, header[1]);
        Assert.Equal(300, (header[2] << 8) | header[3]);
        Assert.Equal(new byte[] { 0xAA, 0xBB, 0xCC, 0xDD }, header[4..8]);
    }

    [Fact]
    public void Mask_xors_every_byte_with_the_key_byte_at_its_offset_mod_4()
    {
        Gen.Select(Gen.Byte.Array[0, 100], Gen.UInt).Sample(
            (payload, key) =>
            {
                byte[] masked = [.. payload];
                WebSocketFraming.Mask(masked, key);
                var header = new byte[14];
                int h = WebSocketFraming.WriteClientHeader(header, WsOpcode.Binary, payload.Length, key);
                byte[] keyBytes = header[(h - 4)..h];
                for (int i = 0; i < payload.Length; i++)
                {
                    Assert.Equal((byte)(payload[i] ^ keyBytes[i % 4]), masked[i]);
                }
            },
            iter: 2000);
    }

    [Fact]
    public void Server_header_needs_the_whole_header_before_it_parses()
    {
        Assert.False(WebSocketFraming.TryReadServerHeader([], out _));
        Assert.False(WebSocketFraming.TryReadServerHeader([0x82], out _));
        Assert.False(WebSocketFraming.TryReadServerHeader([0x82, 126, 0x01], out _));
        Assert.False(WebSocketFraming.TryReadServerHeader([0x82, 127, 0, 0, 0, 0, 0, 0, 1], out _));
    }

    [Fact]
    public void Server_header_reads_the_three_length_forms()
    {
        Assert.True(WebSocketFraming.TryReadServerHeader([0x82, 5], out ServerFrameHeader small));
        Assert.Equal(new ServerFrameHeader(true, WsOpcode.Binary, 2, 5), small);

        Assert.True(WebSocketFraming.TryReadServerHeader([0x02, 126, 0x01, 0x2C], out ServerFrameHeader medium));
        Assert.Equal(new ServerFrameHeader(false, WsOpcode.Binary, 4, 300), medium);

        Assert.True(WebSocketFraming.TryReadServerHeader([0x80, 127, 0, 0, 0, 0, 0, 1, 0, 0], out ServerFrameHeader large));
        Assert.Equal(new ServerFrameHeader(true, WsOpcode.Continuation, 10, 65536), large);
        Assert.Equal(65546, large.FrameLength);
    }

    [Theory]
    [InlineData(new byte[] { 0x82, 0x85 }, "masked")]
    [InlineData(new byte[] { 0xC2, 0x05 }, "reserved")]
    [InlineData(new byte[] { 0x83, 0x05 }, "opcode")]
    [InlineData(new byte[] { 0x89, 126, 0, 126 }, "control")]
    [InlineData(new byte[] { 0x09, 0x01 }, "control")]
    [InlineData(new byte[] { 0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0 }, "limit")]
    public void Server_header_rejects_frames_no_server_may_send(byte[] frame, string reason)
    {
        var ex = Assert.Throws<WebSocketProtocolException>(() => WebSocketFraming.TryReadServerHeader(frame, out _));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Accept_key_matches_the_rfc_6455_example()
    {
        Assert.Equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", WebSocketFraming.ExpectedAccept("dGhlIHNhbXBsZSBub25jZQ=="));
    }

    [Fact]
    public void Upgrade_request_names_host_path_version_key_and_subprotocol()
    {
        string request = Encoding.ASCII.GetString(WebSocketFraming.BuildUpgradeRequest(new Uri("ws://127.0.0.1:8080/ws"), "k3y=="));
        Assert.StartsWith("GET /ws HTTP/1.1\r\n", request, StringComparison.Ordinal);
        Assert.Contains("Host: 127.0.0.1:8080\r\n", request, StringComparison.Ordinal);
        Assert.Contains("Sec-WebSocket-Key: k3y==\r\n", request, StringComparison.Ordinal);
        Assert.Contains("Sec-WebSocket-Version: 13\r\n", request, StringComparison.Ordinal);
        Assert.Contains("Sec-WebSocket-Protocol: collab.v1\r\n", request, StringComparison.Ordinal);
        Assert.EndsWith("\r\n\r\n", request, StringComparison.Ordinal);
    }

    [Fact]
    public void Upgrade_response_is_accepted_only_with_101_and_the_right_accept_key()
    {
        const string Key = "dGhlIHNhbXBsZSBub25jZQ==";
        byte[] good = Encoding.ASCII.GetBytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
        Assert.Equal(good.Length, WebSocketFraming.FindHeadEnd(good));
        WebSocketFraming.ValidateUpgradeResponse(good, Key);

        Assert.Equal(-1, WebSocketFraming.FindHeadEnd(good.AsSpan(0, good.Length - 1)));
        Assert.Throws<WebSocketProtocolException>(() => WebSocketFraming.ValidateUpgradeResponse(Encoding.ASCII.GetBytes("HTTP/1.1 503 Service Unavailable\r\n\r\n"), Key));
        Assert.Throws<WebSocketProtocolException>(() => WebSocketFraming.ValidateUpgradeResponse(Encoding.ASCII.GetBytes("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: AAAA\r\n\r\n"), Key));
        Assert.Throws<WebSocketProtocolException>(() => WebSocketFraming.ValidateUpgradeResponse(Encoding.ASCII.GetBytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"), Key));
        Assert.Throws<WebSocketProtocolException>(() => WebSocketFraming.ValidateUpgradeResponse(Encoding.ASCII.GetBytes("SSH-2.0-OpenSSH\r\n\r\n"), Key));
    }
}
