using System.Buffers;
using System.Text;
using Collab.Engine.Text;
using Collab.LoadTest.Client;
using Collab.Protocol.V1;
using CsCheck;
using Google.Protobuf;

namespace Collab.LoadTest.Tests;

/// <summary>The generator's hand-written encoders and decoders agree byte for byte with Google.Protobuf and TextOpCodec.</summary>
public sealed class CollabWireTests
{
    private static readonly string[] s_seeds = ["9UTurB-iDMo1", "3NKYTb_BfwL2", "dGCriNZTTh63"];

    private static readonly Gen<(string Doc, ulong Seq, long Base, int Position, string Token)> s_submits =
        Gen.Select(
            Gen.String[Gen.Char["abcdefghij/-0123456789"], 1, 140],
            Gen.ULong[1, ulong.MaxValue],
            Gen.OneOf(Gen.Const(0L), Gen.Long[1, long.MaxValue]),
            Gen.OneOf(Gen.Const(0), Gen.Int[1, int.MaxValue >> 2]),
            Gen.String[Gen.Char.AlphaNumeric, 1, 200]);

    [Fact]
    public void Submit_insert_is_what_google_protobuf_writes()
    {
        foreach (string? seed in s_seeds.Append(null))
        {
            s_submits.Sample(
                t =>
                {
                    byte[] doc = Encoding.UTF8.GetBytes(t.Doc);
                    byte[] token = Encoding.ASCII.GetBytes(t.Token);
                    int length = CollabWire.SubmitInsertLength(doc.Length, t.Seq, t.Base, t.Position, token.Length);
                    var ours = new byte[length];
                    Assert.Equal(length, CollabWire.WriteSubmitInsert(ours, doc, t.Seq, t.Base, t.Position, token));

                    var op = new ArrayBufferWriter<byte>();
                    TextOpCodec.Encode(TextOp.Insert(t.Position, t.Token), op);
                    byte[] expected = new ClientMessage
                    {
                        Submit = new Submit { DocId = t.Doc, ClientSeq = t.Seq, BaseVersion = t.Base, Op = ByteString.CopyFrom(op.WrittenSpan) },
                    }.ToByteArray();
                    Assert.Equal(expected, ours);
                },
                seed: seed,
                iter: 2000,
                threads: 1);
        }
    }

    [Fact]
    public void Ack_and_ops_decode_like_the_generated_parser_and_skip_unknown_fields()
    {
        Gen.Select(Gen.ULong, Gen.Long[0, long.MaxValue], Gen.Bool, Gen.String[Gen.Char.AlphaNumeric, 1, 30]).Sample(
            (seq, version, duplicate, clientId) =>
            {
                byte[] ack = WithUnknownField(new ServerMessage { RequestId = 7, Ack = new Ack { DocId = "d/1", ClientSeq = seq, Version = version, Duplicate = duplicate } });
                Assert.Equal(ServerBody.Ack, CollabWire.ReadEnvelope(ack, out ReadOnlySpan<byte> body));
                AckView view = CollabWire.ReadAck(body);
                Assert.Equal("d/1"u8.ToArray(), view.DocId.ToArray());
                Assert.Equal(seq, view.ClientSeq);
                Assert.Equal(version, view.Version);
                Assert.Equal(duplicate, view.Duplicate);

                var ops = new Ops { DocId = "d/1" };
                ops.Ops_.Add(new SequencedOp { Version = version, ClientId = clientId, ClientSeq = seq, Op = ByteString.CopyFrom(1, 2, 3), TimestampMs = 99, Author = "who" });
                ops.Ops_.Add(new SequencedOp { Version = 1, ClientId = "x", ClientSeq = 2 });
                byte[] message = WithUnknownField(new ServerMessage { Ops = ops });
                Assert.Equal(ServerBody.Ops, CollabWire.ReadEnvelope(message, out ReadOnlySpan<byte> opsBody));
                Assert.Equal("d/1"u8.ToArray(), CollabWire.ReadOpsDocId(opsBody).ToArray());
                var reader = new ProtoReader(opsBody);
                var seen = new List<(long, string, ulong, string)>();
                while (reader.TryReadTag(out int field, out WireType wireType))
                {
                    if (field == 2)
                    {
                        SequencedOpView op = CollabWire.ReadSequencedOp(reader.ReadLengthDelimited());
                        seen.Add((op.Version, Encoding.UTF8.GetString(op.ClientId), op.ClientSeq, Convert.ToHexString(op.Op)));
                    }
                    else
                    {
                        reader.Skip(wireType);
                    }
                }

                Assert.Equal([(version, clientId, seq, "010203"), (1L, "x", 2UL, string.Empty)], seen);
            },
            iter: 1000);
    }

    [Fact]
    public void Envelope_reports_cold_bodies_by_kind()
    {
        Assert.Equal(ServerBody.Welcome, CollabWire.ReadEnvelope(new ServerMessage { Welcome = new Welcome { ClientId = "c" } }.ToByteArray(), out _));
        Assert.Equal(ServerBody.Error, CollabWire.ReadEnvelope(new ServerMessage { Error = new Error { Code = ErrorCode.Overloaded } }.ToByteArray(), out _));
        Assert.Equal(ServerBody.None, CollabWire.ReadEnvelope(new ServerMessage { RequestId = 3 }.ToByteArray(), out _));
    }

    [Fact]
    public void Length_delta_equals_target_minus_base_length_of_any_op()
    {
        // ASCII, two- and three-byte UTF-8 and a surrogate pair (one code point, two UTF-16 units, four bytes).
        Gen<string> text = Gen.OneOf(Gen.Const("a"), Gen.Const("é"), Gen.Const("日"), Gen.Const("😀"), Gen.String[Gen.Char.AlphaNumeric, 1, 6])
            .List[1, 4]
            .Select(static parts => string.Concat(parts));
        Gen<TextOp> ops = Gen.OneOf(
                Gen.Int[1, 50].Select(static n => TextComponent.Retain(n)),
                Gen.Int[1, 50].Select(static n => TextComponent.Delete(n)),
                text.Select(static s => TextComponent.Insert(s)))
            .List[0, 8]
            .Select(static list => TextOp.Create([.. list]));
        ops.Sample(
            op =>
            {
                var encoded = new ArrayBufferWriter<byte>();
                TextOpCodec.Encode(op, encoded);
                Assert.Equal(op.TargetLength - op.BaseLength, CollabWire.LengthDelta(encoded.WrittenSpan));
            },
            iter: 3000);
    }

    [Fact]
    public void Insert_op_encoding_is_what_the_codec_writes()
    {
        foreach ((int position, string token) in new[] { (0, "abcd"), (1, "x"), (63, "Zz"), (64, "tok"), (1 << 20, "abcd") })
        {
            var expected = new ArrayBufferWriter<byte>();
            TextOpCodec.Encode(TextOp.Insert(position, token), expected);
            var ours = new byte[CollabWire.InsertOpLength(position, token.Length)];
            Assert.Equal(ours.Length, CollabWire.WriteInsertOp(ours, position, Encoding.ASCII.GetBytes(token)));
            Assert.Equal(expected.WrittenSpan.ToArray(), ours);
        }
    }

    [Theory]
    [InlineData(new byte[] { 0x80 }, "truncated")]
    [InlineData(new byte[] { 0x09, (byte)'a' }, "past the end")]
    [InlineData(new byte[] { 0x07 }, "kind 3")]
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 }, "ten bytes")]
    public void Length_delta_rejects_malformed_ops(byte[] op, string reason)
    {
        var ex = Assert.Throws<WireFormatException>(() => CollabWire.LengthDelta(op));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new byte[] { 0x6A, 0x05, 0x0A }, "past the end")]
    [InlineData(new byte[] { 0x6A }, "truncated")]
    [InlineData(new byte[] { 0x00 }, "tag")]
    [InlineData(new byte[] { 0x0B }, "wire type")]
    public void Envelope_rejects_malformed_messages(byte[] message, string reason)
    {
        var ex = Assert.Throws<WireFormatException>(() => CollabWire.ReadEnvelope(message, out _));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Code_points_count_utf8_lead_bytes()
    {
        Assert.Equal(0, CollabWire.CountCodePoints([]));
        Assert.Equal(4, CollabWire.CountCodePoints(Encoding.UTF8.GetBytes("aé日😀")));
    }

    /// <summary>Appends a field a newer server might send (number 99, and one inside the body is covered by Author/Timestamp).</summary>
    private static byte[] WithUnknownField(ServerMessage message)
    {
        byte[] bytes = message.ToByteArray();
        return [.. bytes, (99 << 3 & 0x7F) | 0x80 | 0, 99 >> 4, 0x2A];
    }
}
