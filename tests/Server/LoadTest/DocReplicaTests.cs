using Collab.Engine;
using Collab.Engine.Text;
using Collab.LoadTest.Client;
using CsCheck;

namespace Collab.Server.Tests.LoadTest;

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
        var replica = new DocReplica();
        replica.Reset("hello");
        Assert.True(replica.Text.ContentEquals("hello"));
        replica.ApplyOwn(1, TextOp.Insert(5, "!"), baseVersion: 0, oldestPendingBase: -1);
        Assert.True(replica.Text.ContentEquals("hello!"));
        replica.Reset(string.Empty);
        Assert.True(replica.Text.ContentEquals(string.Empty));
    }

    [Fact]
    public void An_op_that_does_not_fit_throws()
    {
        var replica = new DocReplica();
        replica.Reset("ab");
        var encoded = new System.Buffers.ArrayBufferWriter<byte>();
        TextOpCodec.Encode(TextOp.Delete(1, 5), encoded);
        Assert.Throws<OtException>(() => replica.ApplySequenced(1, encoded.WrittenSpan, -1));
    }

    private static void Run(int[] actions, int seed)
    {
        var random = new Random(seed);
        string server = "0123456789";
        var log = new List<TextOp>(); // log[v - 1] = op that made version v
        var replica = new DocReplica();
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
                replica.ApplySequenced(version, encoded.WrittenSpan, pending.Count > 0 ? pending.Peek().Base : -1);
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

        Assert.Equal(server, replica.Text.ToString());
        Assert.Equal(server.Length, knownLength);
    }
}
