using System.Text;
using Collab.Engine.Sequencing;
using Collab.Protocol.V1;
using Collab.Server.Sessions;
using Collab.Server.Transport;
using Google.Protobuf;

namespace Collab.Server.Tests.Sessions;

/// <summary>
/// The hot frames (Ops, Ack) are written by hand, without protobuf message objects: their bytes must be exactly what
/// Google.Protobuf writes for the same ServerMessage, for every value a field can take (defaults left out, negative
/// int64s as ten-byte varints, multi-byte UTF-8, multi-byte lengths).
/// </summary>
public sealed class ServerFramesTests
{
    private static readonly string[] Strings = ["", "d", "docs/ä€😀", new string('x', 127), new string('y', 128), new string('é', 9_000)];
    private static readonly long[] Longs = [0, 1, 127, 128, 16_383, 16_384, long.MaxValue, -1, long.MinValue];

    [Fact]
    public void Ack_frames_are_the_bytes_protobuf_writes()
    {
        foreach (string docId in Strings)
        {
            foreach (long clientSeq in Longs)
            {
                foreach (long version in Longs)
                {
                    foreach (bool duplicate in new[] { false, true })
                    {
                        foreach (ulong requestId in new ulong[] { 0, 1, 300, ulong.MaxValue })
                        {
                            var expected = new ServerMessage
                            {
                                RequestId = requestId,
                                Ack = new Ack { DocId = docId, ClientSeq = (ulong)clientSeq, Version = version, Duplicate = duplicate },
                            };
                            using OutboundMessage frame = ServerFrames.Ack(docId, clientSeq, version, duplicate, requestId);
                            AssertSameBytes(expected, frame);
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void Ops_frames_are_the_bytes_protobuf_writes()
    {
        var random = new Random(16);
        for (int i = 0; i < 2_000; i++)
        {
            int count = random.Next(0, 5);
            var records = new OpRecord[count];
            for (int k = 0; k < count; k++)
            {
                byte[] op = new byte[random.Next(0, 3) switch { 0 => 0, 1 => random.Next(1, 20), _ => random.Next(100, 20_000) }];
                random.NextBytes(op);
                records[k] = new OpRecord(
                    Pick(random, Strings),
                    Pick(random, Longs),
                    Pick(random, Strings),
                    Pick(random, Longs),
                    random.Next(3) == 0 ? null : Pick(random, Strings),
                    op,
                    Pick(random, Longs));
            }

            string docId = Pick(random, Strings);
            ulong requestId = random.Next(2) == 0 ? 0 : (ulong)random.NextInt64();
            var expected = new ServerMessage { RequestId = requestId, Ops = new Ops { DocId = docId } };
            foreach (OpRecord record in records)
            {
                expected.Ops.Ops_.Add(ServerFrames.ToWire(record));
            }

            using OutboundMessage frame = ServerFrames.Ops(docId, records, requestId);
            AssertSameBytes(expected, frame);
        }
    }

    [Fact]
    public void An_ops_frame_decodes_to_its_records()
    {
        OpRecord[] records =
        [
            new("docs/a", 7, "client-ä", 3, "alice", Encoding.UTF8.GetBytes("op one"), 1_700_000_000_000),
            new("docs/a", 8, "client-b", 1, null, Encoding.UTF8.GetBytes("op two"), 1_700_000_000_001),
        ];
        using OutboundMessage frame = ServerFrames.Ops("docs/a", records, requestId: 5);

        ServerMessage decoded = ServerMessage.Parser.ParseFrom(frame.Payload.ToArray());

        Assert.Equal(5ul, decoded.RequestId);
        Assert.Equal("docs/a", decoded.Ops.DocId);
        Assert.Equal([7L, 8L], decoded.Ops.Ops_.Select(static o => o.Version));
        Assert.Equal("client-ä", decoded.Ops.Ops_[0].ClientId);
        Assert.Equal("alice", decoded.Ops.Ops_[0].Author);
        Assert.Equal(string.Empty, decoded.Ops.Ops_[1].Author);
        Assert.Equal("op two", decoded.Ops.Ops_[1].Op.ToStringUtf8());
        Assert.Equal(1_700_000_000_001, decoded.Ops.Ops_[1].TimestampMs);
    }

    private static T Pick<T>(Random random, T[] values) => values[random.Next(values.Length)];

    private static void AssertSameBytes(ServerMessage expected, OutboundMessage frame)
    {
        Assert.True(frame.IsCompleted);
        Assert.Equal(expected.ToByteArray(), frame.Payload.ToArray());
    }
}
