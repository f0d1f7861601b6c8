using System.Buffers.Binary;
using System.Text;
using Collab.Server.Transport;

namespace Collab.Server.Tests.Transport;

public sealed class OutboundMessageTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(125)]
    [InlineData(126)]
    [InlineData(70_000)]
    [InlineData(1_000_000)]
    public void Payload_written_in_small_pieces_is_framed_once_with_the_right_header(int length)
    {
        using OutboundMessage message = OutboundMessage.CreateBinary();
        OutboundMessage writer = message; // written through its IBufferWriter<byte> members
        for (int i = 0; i < length; i++)
        {
            writer.GetSpan(1)[0] = (byte)i;
            writer.Advance(1);
        }

        message.Complete();
        ReadOnlySpan<byte> frame = message.Frame.Span;
        Assert.Equal(0x82, frame[0]);
        int headerLength = WebSocketFrame.ServerHeaderLength(length);
        Assert.Equal(headerLength + length, frame.Length);
        Assert.Equal(headerLength + length, message.FrameLength);
        long declared = headerLength switch
        {
            2 => frame[1],
            4 => BinaryPrimitives.ReadUInt16BigEndian(frame[2..]),
            _ => (long)BinaryPrimitives.ReadUInt64BigEndian(frame[2..]),
        };
        Assert.Equal(length, declared);
        for (int i = 0; i < length; i++)
        {
            Assert.Equal((byte)i, frame[headerLength + i]);
        }
    }

    [Fact]
    public void Text_is_encoded_as_utf8_with_the_text_opcode()
    {
        using OutboundMessage message = OutboundMessage.CreateText("héllo 😀");
        Assert.True(message.IsText);
        Assert.Equal(0x81, message.Frame.Span[0]);
        Assert.Equal("héllo 😀", Encoding.UTF8.GetString(message.Payload));
    }

    [Fact]
    public void Misuse_is_reported()
    {
        using OutboundMessage open = OutboundMessage.CreateBinary();
        var connection = new RecordingConnection();
        Assert.Throws<InvalidOperationException>(() => ((IWebSocketConnection)connection).TrySend(open));
        open.Complete();
        Assert.Throws<InvalidOperationException>(() => open.Complete());
        Assert.Throws<InvalidOperationException>(() => open.GetSpan());
        Assert.Throws<ArgumentOutOfRangeException>(() => OutboundMessage.CreateBinary(-1));
    }

    [Fact]
    public void Last_reference_recycles_and_earlier_ones_keep_the_bytes_alive()
    {
        OutboundMessage message = OutboundMessage.CreateBinary("abc"u8);
        message.AddReference();          // a connection's queue
        message.Dispose();               // the creator is done
        message.Dispose();               // a second Dispose is a no-op, not a double release
        Assert.Equal("abc"u8.ToArray(), message.Payload.ToArray()); // still owned by the queue
        message.Release();               // written: back to the pool
        Assert.Throws<ObjectDisposedException>(() => message.AddReference());
    }

    [Fact]
    public void Close_reason_is_truncated_to_fit_without_splitting_a_character()
    {
        string reason = new string('x', 122) + "€€";
        using OutboundMessage close = OutboundMessage.CreateClose(1001, reason);
        Assert.Equal(WebSocketOpcode.Close, close.Opcode);
        ReadOnlySpan<byte> payload = close.Payload;
        Assert.True(payload.Length <= 125);
        Assert.Equal(1001, BinaryPrimitives.ReadUInt16BigEndian(payload));
        Assert.True(System.Text.Unicode.Utf8.IsValid(payload[2..]));
        Assert.Equal(new string('x', 122), Encoding.UTF8.GetString(payload[2..]));
    }

    [Fact]
    public void Send_helpers_frame_one_off_replies()
    {
        var connection = new RecordingConnection();
        Assert.True(connection.TrySendBinary("bin"u8));
        Assert.True(connection.TrySendText("txt"));
        Assert.Equal(new byte[] { 0x82, 3, (byte)'b', (byte)'i', (byte)'n' }, connection.Frames[0]);
        Assert.Equal(new byte[] { 0x81, 3, (byte)'t', (byte)'x', (byte)'t' }, connection.Frames[1]);
    }

    private sealed class RecordingConnection : IWebSocketConnection
    {
        public List<byte[]> Frames { get; } = new();

        public long Id => 1;

        public System.Net.IPEndPoint? RemoteEndPoint => null;

        public CancellationToken Closed => CancellationToken.None;

        public bool TrySend(OutboundMessage message)
        {
            if (!message.IsCompleted)
            {
                throw new InvalidOperationException("not completed");
            }

            Frames.Add(message.Frame.ToArray());
            return true;
        }

        public void Close(ushort statusCode, string reason)
        {
        }
    }
}
