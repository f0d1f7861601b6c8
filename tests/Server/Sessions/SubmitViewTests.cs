using Collab.Protocol.V1;
using Collab.Server.Sessions;
using Google.Protobuf;

namespace Collab.Server.Tests.Sessions;

/// <summary>
/// The in-place reading of a submit (the session's fast path) must read exactly what the generated parser reads, and
/// must decline (leaving the message to the parser) every shape it does not fully understand.
/// </summary>
public sealed class SubmitViewTests
{
    [Fact]
    public void Reads_what_the_parser_reads()
    {
        var random = new Random(13);
        ulong[] seqs = [0, 1, 127, 128, long.MaxValue, (ulong)long.MaxValue + 1, ulong.MaxValue];
        long[] versions = [0, 1, 300, long.MaxValue, -1, long.MinValue];
        for (int i = 0; i < 2_000; i++)
        {
            byte[] op = new byte[random.Next(0, 3) == 0 ? 0 : random.Next(1, 400)];
            random.NextBytes(op);
            var message = new ClientMessage
            {
                RequestId = random.Next(2) == 0 ? 0 : (ulong)random.NextInt64(),
                Submit = new Submit
                {
                    DocId = random.Next(5) == 0 ? string.Empty : "docs/" + random.Next(1_000_000),
                    ClientSeq = seqs[random.Next(seqs.Length)],
                    BaseVersion = versions[random.Next(versions.Length)],
                    Op = ByteString.CopyFrom(op),
                },
            };
            byte[] bytes = message.ToByteArray();

            Assert.True(SubmitView.TryRead(bytes, out SubmitView view));
            ClientMessage parsed = ClientMessage.Parser.ParseFrom(bytes);
            Assert.Equal(parsed.RequestId, view.RequestId);
            Assert.Equal(parsed.Submit.DocId, System.Text.Encoding.UTF8.GetString(view.DocId));
            Assert.Equal(parsed.Submit.ClientSeq, view.ClientSeq);
            Assert.Equal(parsed.Submit.BaseVersion, view.BaseVersion);
            Assert.Equal(parsed.Submit.Op.ToByteArray(), view.Op.ToArray());
        }
    }

    [Fact]
    public void A_repeated_scalar_field_keeps_its_last_value_as_protobuf_does()
    {
        // The same Submit with client_seq (field 2) appended again inside it: length of the submit grows by 2.
        var submit = new Submit { DocId = "a", ClientSeq = 5, BaseVersion = 2, Op = ByteString.CopyFromUtf8("x") }.ToByteArray().Concat(new byte[] { 2 << 3, 9 }).ToArray();
        byte[] bytes = new byte[] { 1 << 3, 1, (13 << 3) | 2, (byte)submit.Length }.Concat(submit).ToArray();

        Assert.True(SubmitView.TryRead(bytes, out SubmitView view));
        Assert.Equal(ClientMessage.Parser.ParseFrom(bytes).Submit.ClientSeq, view.ClientSeq);
        Assert.Equal(9ul, view.ClientSeq);
    }

    [Fact]
    public void Declines_every_other_shape()
    {
        byte[] submit = new ClientMessage { RequestId = 7, Submit = new Submit { DocId = "d", ClientSeq = 1, Op = ByteString.CopyFromUtf8("op") } }.ToByteArray();
        byte[][] declined =
        [
            [],
            new ClientMessage { Ping = new Ping { Nonce = 3 } }.ToByteArray(),
            new ClientMessage { Hello = new Hello { ProtocolVersion = 1 } }.ToByteArray(),
            new ClientMessage { RequestId = 4 }.ToByteArray(),
            submit[..^1],                                              // truncated
            [.. submit, .. submit[2..]],                               // the submit field twice (protobuf merges them)
            [.. submit, (20 << 3) | 0, 1],                             // an unknown envelope field
            [(13 << 3) | 2, 2, (9 << 3) | 0, 1],                       // an unknown submit field
            [(13 << 3) | 2, 3, (1 << 3) | 2, 5, (byte)'a'],            // a length past the end
            [(13 << 3) | 2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], // an over-long varint
        ];

        foreach (byte[] bytes in declined)
        {
            Assert.False(SubmitView.TryRead(bytes, out _));
        }
    }
}
