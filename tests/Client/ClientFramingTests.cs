using System.Buffers;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using Collab.Client.Transport;
using Collab.Server.Tests.Transport.Infrastructure;

namespace Collab.Client.Tests;

/// <summary>The Pipelines transport's framing functions and its selection, alone.</summary>
public sealed class ClientFramingTests
{
    [Fact]
    public void Mask_MatchesTheRfcDefinitionAtEveryLengthAndOffset()
    {
        var random = new Random(6455);
        byte[] key = new byte[4];
        for (int length = 0; length < 200; length++)
        {
            byte[] source = new byte[length];
            random.NextBytes(source);
            random.NextBytes(key);
            uint maskKey = BitConverter.ToUInt32(key);
            for (int offset = 0; offset < 4; offset++)
            {
                byte[] masked = new byte[length];
                ClientFraming.Mask(source, masked, maskKey, offset);
                for (int i = 0; i < length; i++)
                {
                    // RFC 6455 5.3: transformed-octet-i = original-octet-i XOR masking-key-octet-(i MOD 4), i counted in the payload.
                    Assert.Equal((byte)(source[i] ^ key[(i + offset) % 4]), masked[i]);
                }
            }
        }
    }

    [Fact]
    public void Mask_InChunksEqualsMaskingTheWholePayload()
    {
        byte[] payload = Encoding.ASCII.GetBytes(new string('a', 1000));
        byte[] whole = new byte[payload.Length];
        ClientFraming.Mask(payload, whole, 0x11223344, 0);
        byte[] chunked = new byte[payload.Length];
        foreach ((int start, int length) in new[] { (0, 7), (7, 33), (40, 960) })
        {
            ClientFraming.Mask(payload.AsSpan(start, length), chunked.AsSpan(start), 0x11223344, start);
        }

        Assert.Equal(whole, chunked);
    }

    [Theory]
    [InlineData(0, 6)]
    [InlineData(125, 6)]
    [InlineData(126, 8)]
    [InlineData(65_535, 8)]
    [InlineData(65_536, 14)]
    public void ClientHeader_UsesTheShortestLengthEncodingAndAMask(int length, int headerLength)
    {
        byte[] header = new byte[14];
        Assert.Equal(headerLength, ClientFraming.WriteClientHeader(header, FrameOpcode.Binary, length, out uint key));
        Assert.Equal(0x82, header[0]);
        Assert.Equal(0x80, header[1] & 0x80);
        Assert.Equal(key, BitConverter.ToUInt32(header, headerLength - 4));
        long announced = (header[1] & 0x7F) switch
        {
            126 => (header[2] << 8) | header[3],
            127 => (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(2)),
            int n => n,
        };
        Assert.Equal(length, announced);
    }

    [Fact]
    public void ServerHeader_SplitAcrossSegments_ParsesAsInOneSpan()
    {
        byte[] frame = RawServerConnection.Frame(2, new byte[70_000]);
        for (int split = 1; split < 10; split++)
        {
            ReadOnlySequence<byte> sequence = Segments.TwoSegments(frame[..(split + 20)], split);
            Assert.Equal(HeaderParse.Valid, ClientFraming.TryParseHeader(sequence, out ServerFrameHeader header));
            Assert.Equal(new ServerFrameHeader(true, FrameOpcode.Binary, 70_000, 10), header);
        }

        Assert.Equal(HeaderParse.Incomplete, ClientFraming.TryParseHeader(new ReadOnlySequence<byte>(frame, 0, 9), out _));
    }

    [Fact]
    public void ServerHeader_ViolationsShowInTheFirstTwoBytes()
    {
        // A bad frame fails before its (maybe never arriving) extended length.
        Assert.Equal(HeaderParse.ReservedBits, ClientFraming.TryParseHeader([0xC2, 127], out _));
        Assert.Equal(HeaderParse.Masked, ClientFraming.TryParseHeader([0x82, 0xFF], out _));
        Assert.Equal(HeaderParse.ReservedOpcode, ClientFraming.TryParseHeader([0x8B, 0], out _));
        Assert.Equal(HeaderParse.BadControlFrame, ClientFraming.TryParseHeader([0x89, 126], out _));
        Assert.Equal(HeaderParse.BadControlFrame, ClientFraming.TryParseHeader([0x0A, 0], out _));
    }

    [Fact]
    public void ClosePayload_RoundTripsAndRejectsWhatTheRfcForbids()
    {
        byte[] payload = new byte[ClientFraming.MaxControlPayload];
        int length = ClientFraming.WriteClosePayload(payload, (WebSocketCloseStatus)4009, "session replaced");
        Assert.Null(ClientFraming.ReadClosePayload(new ReadOnlySequence<byte>(payload, 0, length), out WebSocketCloseStatus status, out string reason));
        Assert.Equal(((WebSocketCloseStatus)4009, "session replaced"), (status, reason));

        Assert.Equal(0, ClientFraming.WriteClosePayload(payload, WebSocketCloseStatus.Empty, null));
        Assert.Null(ClientFraming.ReadClosePayload(ReadOnlySequence<byte>.Empty, out status, out _));
        Assert.Equal(WebSocketCloseStatus.Empty, status);

        Assert.Equal(WebSocketCloseStatus.ProtocolError, ClientFraming.ReadClosePayload(new ReadOnlySequence<byte>([3]), out _, out _));
        foreach (int code in new[] { 0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000 })
        {
            Assert.Equal(WebSocketCloseStatus.ProtocolError, ClientFraming.ReadClosePayload(new ReadOnlySequence<byte>([(byte)(code >> 8), (byte)code]), out _, out _));
        }

        Assert.Equal(WebSocketCloseStatus.InvalidPayloadData, ClientFraming.ReadClosePayload(new ReadOnlySequence<byte>([0x03, 0xE8, 0xFF]), out _, out _));
    }

    [Fact]
    public void Selection_ExplicitKindsAreHonoured()
    {
        var uri = new Uri("ws://collab.test/ws");
        var proxy = new WebProxy("http://proxy.test:3128");
        Assert.Same(PipelinesTransportFactory.Instance, SelectingTransportFactory.Select(TransportKind.Pipelines, uri, proxy));
        Assert.Same(WebSocketTransportFactory.Instance, SelectingTransportFactory.Select(TransportKind.ClientWebSocket, uri, null));
    }

    [Fact]
    public void Selection_AutomaticFallsBackToClientWebSocketWhereAProxyApplies()
    {
        var proxy = new WebProxy("http://proxy.test:3128") { BypassList = [@"internal\.test"] };
        Assert.Same(WebSocketTransportFactory.Instance, SelectingTransportFactory.Select(TransportKind.Automatic, new Uri("wss://collab.test/ws"), proxy));
        Assert.Same(WebSocketTransportFactory.Instance, SelectingTransportFactory.Select(TransportKind.Automatic, new Uri("ws://collab.test:8080/ws"), proxy));
        Assert.Same(PipelinesTransportFactory.Instance, SelectingTransportFactory.Select(TransportKind.Automatic, new Uri("ws://internal.test/ws"), proxy));
        Assert.Same(PipelinesTransportFactory.Instance, SelectingTransportFactory.Select(TransportKind.Automatic, new Uri("ws://collab.test/ws"), null));
        Assert.Same(PipelinesTransportFactory.Instance, SelectingTransportFactory.Select(TransportKind.Automatic, new Uri("ws://collab.test/ws"), new WebProxy()));
    }

    [Fact]
    public void Selection_AutomaticIsTheDefault()
    {
        var options = new CollabClientOptions();
        Assert.Equal(TransportKind.Automatic, options.Transport);
        Assert.Equal(TransportKind.Automatic, Assert.IsType<SelectingTransportFactory>(options.TransportFactory).Kind);
        Assert.Equal(TransportKind.ClientWebSocket, Assert.IsType<SelectingTransportFactory>(new CollabClientOptions { Transport = TransportKind.ClientWebSocket }.TransportFactory).Kind);
        Assert.Throws<ArgumentOutOfRangeException>(() => new CollabClientOptions { Transport = (TransportKind)7 }.Validate());
    }
}
