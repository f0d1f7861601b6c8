using Collab.Engine;
using Collab.Engine.RichText;
using Collab.Engine.Text;
using Collab.LoadTest.Client;
using CsCheck;

namespace Collab.LoadTest.Tests;

/// <summary>
/// The replica must end with the server's text whatever the interleaving of its own pipelined submits (several
/// in flight, each against the version it knew) and other clients' ops. The server is modelled as the protocol
/// specifies: a submit is transformed with side Left against every op sequenced after its base version.
/// </summary>
[Trait("Category", "Slow")]
public sealed class DocReplicaTests
{
    private static readonly string[] s_seeds = ["9UTurB-iDMo1", "3NKYTb_BfwL2", "dGCriNZTTh63"];

    [Fact]
    public void Replica_converges_with_the_server_under_pipelined_submits()
    {
        Gen<(int[] Actions, int Seed)> scenarios = Gen.Select(Gen.Int[0, 3].Array[1, 80], Gen.Int);
        foreach (string? seed in s_seeds.Append(null))
        {
            scenarios.Sample(
                s => Run(s.Actions, s.Seed),
                seed: seed,
                iter: 1500,
                threads: 1);
        }
    }

    [Fact]
    public void Reset_replaces_the_text_and_forgets_pending_history()
    {
        var replica = new TextReplica();
        replica.Reset("hello");
        Assert.True(replica.Document.ContentEquals("hello"));
        replica.ApplyOwn(1, TextOp.Insert(5, "!"), baseVersion: 0, oldestPendingBase: -1);
        Assert.True(replica.Document.ContentEquals("hello!"));
        replica.Reset(string.Empty);
        Assert.True(replica.Document.ContentEquals(string.Empty));
    }

    [Fact]
    public void An_op_that_does_not_fit_throws()
    {
        var replica = new TextReplica();
        replica.Reset("ab");
        var encoded = new System.Buffers.ArrayBufferWriter<byte>();
        TextOpCodec.Encode(TextOp.Delete(1, 5), encoded);
        Assert.Throws<OtException>(() => replica.ApplySequenced(1, new WireOp(encoded.WrittenSpan, WireOpFormat.Protobuf), -1));
    }

    [Fact]
    public void Rich_replica_and_tracked_pending_ops_converge_with_the_server_under_pipelined_submits()
    {
        Gen<(int[] Actions, int Seed)> scenarios = Gen.Select(Gen.Int[0, 3].Array[1, 80], Gen.Int);
        foreach (string? seed in s_seeds.Append(null))
        {
            scenarios.Sample(
                s => RunRich(s.Actions, s.Seed),
                seed: seed,
                iter: 800,
                threads: 1);
        }
    }

    [Fact]
    public void Rich_ops_mix_formatted_inserts_formats_deletes_and_embeds_and_the_server_accepts_them()
    {
        ulong random = 12345;
        RichDocument document = RichDocument.FromOp(RichOp.Insert(0, new string('.', 64)));
        int inserts = 0, formats = 0, deletes = 0, embeds = 0, attributed = 0;
        for (int i = 0; i < 2000; i++)
        {
            var own = (RichOwnOp)RichModel.Instance.NewOp(ref random, document.Length);
            RichOp op = RichOpCodec.Decode(own.Encoded); // the bytes a submit carries
            Assert.Equal(own.Current, op);
            RichTextType.Default.ValidateLimits(op); // what the server checks before sequencing
            RichTextType.Validate(op, document);
            foreach (RichComponent c in op)
            {
                inserts += c.IsInsert && c.IsText ? 1 : 0;
                embeds += c.IsEmbed ? 1 : 0;
                formats += c.IsRetain && c.Attributes is not null ? 1 : 0;
                deletes += c.IsDelete ? 1 : 0;
                attributed += c.IsInsert && c.Attributes is not null ? 1 : 0;
            }

            int before = document.Length;
            document = RichTextType.Apply(document, op);
            Assert.Equal(before + own.LengthDelta, document.Length);
        }

        Assert.All(new[] { inserts, formats, deletes, embeds, attributed }, n => Assert.True(n > 100, $"{inserts} inserts, {formats} formats, {deletes} deletes, {embeds} embeds, {attributed} with attributes"));
    }

    private static void RunRich(int[] actions, int seed)
    {
        ulong random = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL | 1;
        RichDocument server = RichDocument.FromOp(RichOp.Insert(0, "0123456789"));
        var log = new List<RichOp>(); // log[v - 1] = op that made version v
        var replica = new RichReplica();
        replica.Reset(string.Empty, RichOpCodec.Encode(server.ToOp()));
        long known = 0;
        long knownLength = server.Length;
        var pending = new Queue<(RichOwnOp Op, long Base)>();    // the client's unacknowledged submits, tracked as LightClient does
        var inTransit = new Queue<(RichOp Op, long Base)>();     // submits the server has not processed yet
        var toClient = new Queue<(bool IsAck, long Version, RichOp Op)>();

        void ServerProcessOne()
        {
            (RichOp op, long baseVersion) = inTransit.Dequeue();
            for (long v = baseVersion + 1; v <= log.Count; v++)
            {
                op = RichTextType.Transform(op, log[(int)v - 1], TransformSide.Left);
            }

            server = RichTextType.Apply(server, op);
            log.Add(op);
            toClient.Enqueue((true, log.Count, op));
        }

        void ClientReceiveOne()
        {
            (bool isAck, long version, RichOp op) = toClient.Dequeue();
            if (isAck)
            {
                (RichOwnOp own, long baseVersion) = pending.Dequeue();
                Assert.Equal(op, own.Current); // tracked to exactly what the server applied
                knownLength += own.LengthDelta;
                foreach ((RichOwnOp later, _) in pending)
                {
                    later.TransformAgainst(own);
                }

                replica.ApplyOwn(version, own.Encoded, baseVersion, pending.Count > 0 ? pending.Peek().Base : -1);
            }
            else
            {
                byte[] encoded = RichOpCodec.Encode(op);
                var wire = new WireOp(encoded, WireOpFormat.RichText);
                knownLength += wire.LengthDelta();
                foreach ((RichOwnOp later, _) in pending)
                {
                    later.TransformAgainst(wire);
                }

                replica.ApplySequenced(version, wire, pending.Count > 0 ? pending.Peek().Base : -1);
            }

            known = version;
        }

        foreach (int action in actions)
        {
            switch (action)
            {
                case 0: // the client submits an op valid against what it knows
                    var own = (RichOwnOp)RichModel.Instance.NewOp(ref random, knownLength);
                    pending.Enqueue((own, known));
                    inTransit.Enqueue((own.Current, known));
                    break;
                case 1: // another client's op is sequenced
                    RichOp other = ((RichOwnOp)RichModel.Instance.NewOp(ref random, server.Length)).Current;
                    server = RichTextType.Apply(server, other);
                    log.Add(other);
                    toClient.Enqueue((false, log.Count, other));
                    break;
                case 2 when inTransit.Count > 0:
                    ServerProcessOne();
                    break;
                case 3 when toClient.Count > 0:
                    ClientReceiveOne();
                    break;
                default:
                    break;
            }
        }

        while (inTransit.Count > 0)
        {
            ServerProcessOne();
        }

        while (toClient.Count > 0)
        {
            ClientReceiveOne();
        }

        Assert.True(replica.Matches(string.Empty, RichOpCodec.Encode(server.ToOp())), $"replica {replica.Document} vs server {server}");
        Assert.Equal(server.Length, knownLength);
    }

    private static void Run(int[] actions, int seed)
    {
        var random = new Random(seed);
        string server = "0123456789";
        var log = new List<TextOp>(); // log[v - 1] = op that made version v
        var replica = new TextReplica();
        replica.Reset(server);
        long known = 0;
        int knownLength = server.Length;
        var pending = new Queue<(TextOp Op, long Base)>();      // the client's unacknowledged submits
        var inTransit = new Queue<(TextOp Op, long Base)>();    // submits the server has not processed yet
        var toClient = new Queue<(bool IsAck, long Version, TextOp Op)>();
        int token = 0;

        void ServerProcessOne()
        {
            (TextOp op, long baseVersion) = inTransit.Dequeue();
            for (long v = baseVersion + 1; v <= log.Count; v++)
            {
                op = TextType.Transform(op, log[(int)v - 1], TransformSide.Left);
            }

            server = TextType.Apply(server, op);
            log.Add(op);
            toClient.Enqueue((true, log.Count, op));
        }

        void ClientReceiveOne()
        {
            (bool isAck, long version, TextOp op) = toClient.Dequeue();
            if (isAck)
            {
                (TextOp original, long baseVersion) = pending.Dequeue();
                replica.ApplyOwn(version, original, baseVersion, pending.Count > 0 ? pending.Peek().Base : -1);
            }
            else
            {
                var encoded = new System.Buffers.ArrayBufferWriter<byte>();
                TextOpCodec.Encode(op, encoded);
                replica.ApplySequenced(version, new WireOp(encoded.WrittenSpan, WireOpFormat.Protobuf), pending.Count > 0 ? pending.Peek().Base : -1);
            }

            known = version;
            knownLength += op.TargetLength - op.BaseLength;
        }

        foreach (int action in actions)
        {
            switch (action)
            {
                case 0: // the client submits an insert valid against what it knows
                    var own = TextOp.Insert(random.Next(knownLength + 1), ((char)('a' + (token++ % 26))).ToString());
                    pending.Enqueue((own, known));
                    inTransit.Enqueue((own, known));
                    break;
                case 1: // another client's op is sequenced (an insert or a delete on the server's text)
                    TextOp other = server.Length > 0 && random.Next(2) == 0
                        ? TextOp.Delete(random.Next(server.Length), 1)
                        : TextOp.Insert(random.Next(server.Length + 1), "X");
                    server = TextType.Apply(server, other);
                    log.Add(other);
                    toClient.Enqueue((false, log.Count, other));
                    break;
                case 2 when inTransit.Count > 0:
                    ServerProcessOne();
                    break;
                case 3 when toClient.Count > 0:
                    ClientReceiveOne();
                    break;
                default:
                    break;
            }
        }

        while (inTransit.Count > 0)
        {
            ServerProcessOne();
        }

        while (toClient.Count > 0)
        {
            ClientReceiveOne();
        }

        Assert.Equal(server, replica.Document.ToString());
        Assert.Equal(server.Length, knownLength);
    }
}
