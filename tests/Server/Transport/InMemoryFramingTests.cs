using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using CsCheck;

namespace Collab.Server.Tests.Transport;

/// <summary>
/// The read path against arbitrary TCP chunking and arbitrary fragmentation: whatever way the bytes of
/// a message stream arrive, the application sees exactly the messages that were sent.
/// </summary>
[Trait("Category", "Slow")]
public sealed class InMemoryFramingTests
{
    [Fact]
    public Task Any_fragmentation_and_any_chunking_deliver_the_same_messages() => Task.Run(() =>
    {
        Gen<(bool Text, byte[] Payload, int[] FragmentCuts)> message = Gen.Select(
            Gen.Bool,
            Gen.OneOf(Gen.Byte.Array[0, 300], Gen.Byte.Array[60_000, 140_000]),
            Gen.Int[0, 150_000].Array[0, 4]);
        Gen<((bool Text, byte[] Payload, int[] FragmentCuts)[] Messages, int[] Chunks, bool Pings)> gen =
            Gen.Select(message.Array[1, 4], Gen.Int[1, 9000].Array[1, 8], Gen.Bool);

        Property.Check(gen, t =>
        {
            var received = new List<(bool Text, byte[] Payload)>();
            var app = new TestApplication
            {
                OnMessage = (_, payload, isText) =>
                {
                    received.Add((isText, payload.ToArray()));
                    return ValueTask.CompletedTask;
                },
            };
            var connection = new InMemoryConnection(app);
            connection.Handshake();

            var expected = new List<(bool Text, byte[] Payload)>();
            var stream = new List<byte>();
            foreach ((bool isText, byte[] raw, int[] cuts) in t.Messages)
            {
                // Text messages carry valid UTF-8 (with multibyte characters to split inside).
                byte[] payload = isText ? Encoding.UTF8.GetBytes(Convert.ToBase64String(raw) + "é€😀") : raw;
                expected.Add((isText, payload));
                int[] bounds = cuts.Select(c => Math.Min(c, payload.Length)).Distinct().Order().Where(c => c > 0 && c < payload.Length).ToArray();
                int start = 0;
                byte opcode = isText ? (byte)0x1 : (byte)0x2;
                foreach (int end in bounds.Append(payload.Length))
                {
                    stream.AddRange(RawWebSocketClient.EncodeFrame(opcode, payload.AsSpan(start, end - start), fin: end == payload.Length));
                    if (t.Pings && end != payload.Length)
                    {
                        stream.AddRange(RawWebSocketClient.EncodeFrame(0x9, "p"u8));
                    }

                    opcode = 0x0;
                    start = end;
                }
            }

            byte[] bytes = stream.ToArray();
            int offset = 0;
            for (int i = 0; offset < bytes.Length; i++)
            {
                int n = Math.Min(t.Chunks[i % t.Chunks.Length], bytes.Length - offset);
                connection.Write(bytes.AsSpan(offset, n));
                connection.Discard();
                offset += n;
            }

            Assert.Null(connection.Connection.EndReason);
            Assert.Equal(expected.Count, received.Count);
            for (int i = 0; i < expected.Count; i++)
            {
                Assert.Equal(expected[i].Text, received[i].Text);
                Assert.Equal(expected[i].Payload, received[i].Payload);
            }

            connection.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }, iterations: 1_000);
    });

    [Fact]
    public Task Close_handshake_echoes_the_code_and_ends_the_connection() => Task.Run(async () =>
    {
        var app = new TestApplication();
        var connection = new InMemoryConnection(app);
        connection.Handshake();
        connection.Write(RawWebSocketClient.EncodeFrame(0x8, new byte[] { 0x0F, 0xA0, (byte)'b', (byte)'y', (byte)'e' })); // 4000 "bye"
        byte[] reply = connection.ReadAll();
        Assert.Equal(new byte[] { 0x88, 2, 0x0F, 0xA0 }, reply);
        await connection.Run.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(ConnectionEndReason.ClientClosed, await app.NextClosedAsync());
        Assert.True(connection.Connection.Closed.IsCancellationRequested);
        await connection.DisposeAsync();
    });

    [Fact]
    public Task Empty_close_is_answered_with_an_empty_close() => Task.Run(async () =>
    {
        var app = new TestApplication();
        var connection = new InMemoryConnection(app);
        connection.Handshake();
        connection.Write(RawWebSocketClient.EncodeFrame(0x8, ReadOnlySpan<byte>.Empty));
        Assert.Equal(new byte[] { 0x88, 0 }, connection.ReadAll());
        await connection.DisposeAsync();
    });

    [Fact]
    public Task Nothing_is_sent_after_our_close_frame() => Task.Run(async () =>
    {
        var app = new TestApplication();
        var connection = new InMemoryConnection(app);
        connection.Handshake();
        IWebSocketConnection handle = await app.NextOpenedAsync();
        handle.Close(1000, "bye");
        Assert.False(handle.TrySendBinary("late"u8));
        connection.Write(RawWebSocketClient.EncodeFrame(0x9, "ping"u8)); // no pong after our Close
        connection.Write(RawWebSocketClient.EncodeFrame(0x2, "data"u8)); // not delivered while closing
        byte[] output = connection.ReadAll();
        Assert.Equal(0x88, output[0]);
        Assert.Equal(1000, BinaryPrimitives.ReadUInt16BigEndian(output.AsSpan(2)));
        Assert.Equal(2 + 2 + 3, output.Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => handle.Close(1005, "reserved"));
        Assert.Throws<InvalidOperationException>(() => handle.TrySend(OutboundMessage.CreateBinary()));
        await connection.DisposeAsync();
        Assert.Equal(ConnectionEndReason.ServerClosed, await app.NextClosedAsync());
    });
}
