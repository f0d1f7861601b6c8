using Collab.Engine.Client;
using Collab.Engine.Sequencing;
using Collab.Engine.Text;
using CsCheck;

namespace Collab.Engine.Tests.Sequencing;

/// <summary>
/// The end-to-end OT property: replicas running <see cref="OtClientState{TSnapshot, TOp}"/> edit concurrently against stale
/// versions, with random delays, batching, reconnects (dropping or delivering what was in transit) and acknowledgements
/// arriving either as the own op in the stream or as an explicit ack; everything passes through one sequencer. Once all
/// messages are delivered, every replica holds exactly the sequencer's document.
/// </summary>
public sealed class ConvergenceSimulationTests
{
    [Theory]
    [InlineData(1, 2, 200)]
    [InlineData(2, 3, 300)]
    [InlineData(3, 4, 300)]
    [InlineData(4, 5, 400)]
    [InlineData(5, 3, 500)]
    [InlineData(42, 2, 600)]
    [InlineData(1234, 5, 600)]
    [InlineData(99_999, 4, 800)]
    public Task Replicas_converge_for_fixed_seeds(int seed, int replicas, int steps) => Simulation.RunAsync(seed, replicas, steps);

    [Fact]
    public Task Replicas_converge_for_random_seeds() =>
        // A fresh CsCheck seed each run; on failure CsCheck prints it (and the shrunk simulation parameters) to rerun.
        Gen.Select(Gen.Int, Gen.Int[2, 5], Gen.Int[5, 120])
            .SampleAsync((seed, replicas, steps) => Simulation.RunAsync(seed, replicas, steps), iter: 1000);

    private sealed class Replica(int index, Random random)
    {
        public OtClientState<Rope, TextOp> State { get; } = new(TextType.Instance, "r" + index, Rope.Empty, 0);

        /// <summary>What the editor shows: the ops returned by the client state applied one by one.</summary>
        public Rope Editor { get; set; } = Rope.Empty;

        public List<OutgoingOp<TextOp>> InTransit { get; } = [];

        /// <summary>Explicit acknowledgements received on the current connection (versions).</summary>
        public List<long> Acks { get; } = [];

        public int Connection { get; set; }

        public Random Random { get; } = random;

        public void TakeOutgoing()
        {
            while (State.TryTakeOutgoing(out OutgoingOp<TextOp> outgoing))
            {
                InTransit.Add(outgoing);
            }
        }

        public void CheckEditor(int seed)
        {
            if (!Editor.ContentEquals(State.Snapshot.ToString()))
            {
                throw new InvalidOperationException($"seed {seed}: editor of {State.ClientId} diverged from its state: '{Editor}' vs '{State.Snapshot}'.");
            }
        }
    }

    private static class Simulation
    {
        private static readonly string[] Alphabet = ["a", "b", "c", "é", "😀", "xy"];

        public static async Task RunAsync(int seed, int replicaCount, int steps)
        {
            var random = new Random(seed);
            var options = new SequencerOptions
            {
                // A tiny window half of the time: stale submissions then go through the history source.
                HistoryMaxOps = random.Next(2) == 0 ? 3 : 1024,
                RunContinuationsAsynchronously = false,
            };
            var stage = new RecordingDurabilityStage();
            var history = new MemoryHistorySource((after, to) => stage.OpsAfter("sim", after, to));
            var listener = new RecordingListener<Rope, TextOp>();
            await using var sequencer = new DocumentSequencer<Rope, TextOp>(
                "sim", TextType.Instance, DocumentState.Empty(TextType.Instance, options), stage, history, listener, options);

            Replica[] replicas = [.. Enumerable.Range(0, replicaCount).Select(i => new Replica(i, new Random(seed * 31 + i)))];
            for (int step = 0; step < steps; step++)
            {
                Replica replica = replicas[random.Next(replicas.Length)];
                int action = random.Next(100);
                if (action < 40)
                {
                    Edit(replica);
                }
                else if (action < 60)
                {
                    await DeliverSubmissionsAsync(sequencer, replicas, random, seed, all: false);
                }
                else if (action < 92)
                {
                    DeliverStream(replica, listener.Records, random.Next(1, 4), seed);
                }
                else
                {
                    // Reconnect: what was in transit either reached the server before the drop or is lost with the connection.
                    if (random.Next(2) == 0)
                    {
                        await DeliverSubmissionsAsync(sequencer, [replica], random, seed, all: true);
                    }

                    replica.InTransit.Clear();
                    replica.Acks.Clear();
                    replica.Connection++;
                    replica.State.OnReconnect();
                    replica.TakeOutgoing();
                }
            }

            // Quiesce: deliver everything until no replica has anything pending.
            for (int round = 0; ; round++)
            {
                if (round > 10_000)
                {
                    throw new InvalidOperationException($"seed {seed}: the simulation did not quiesce.");
                }

                await DeliverSubmissionsAsync(sequencer, replicas, random, seed, all: true);
                OpRecord[] log = listener.Records;
                foreach (Replica replica in replicas)
                {
                    DeliverStream(replica, log, int.MaxValue, seed);
                }

                if (replicas.All(r => !r.State.HasPending && r.InTransit.Count == 0 && r.State.Version == log.Length))
                {
                    break;
                }
            }

            (Rope document, long version) = await sequencer.RunExclusiveAsync(view => (view.Snapshot, view.Version));
            string expected = document.ToString();
            Assert.Empty(listener.Violations);
            Assert.Equal(listener.Records.Length, version);
            foreach (Replica replica in replicas)
            {
                replica.CheckEditor(seed);
                if (replica.State.Snapshot.ToString() != expected)
                {
                    throw new InvalidOperationException(
                        $"seed {seed}: replica {replica.State.ClientId} has '{replica.State.Snapshot}' but the sequencer has '{expected}'.");
                }
            }

            // The stored log alone rebuilds the same document.
            Rope replayed = DocumentState.Load(TextType.Instance, null, stage.OpsAfter("sim", 0), options).Snapshot;
            Assert.Equal(expected, replayed.ToString());
        }

        private static void Edit(Replica replica)
        {
            Random random = replica.Random;
            int length = replica.State.Snapshot.Length;
            string text = string.Concat(Enumerable.Range(0, random.Next(1, 3)).Select(_ => Alphabet[random.Next(Alphabet.Length)]));
            int position = random.Next(length + 1);
            int deletable = Math.Min(3, length - position);
            TextOp op = (random.Next(3), deletable) switch
            {
                (0, > 0) => TextOp.Delete(position, random.Next(1, deletable + 1)),
                (1, > 0) => TextOp.Replace(position, random.Next(1, deletable + 1), text),
                _ => TextOp.Insert(position, text),
            };

            replica.State.ApplyLocal(op);
            replica.Editor = TextType.Apply(replica.Editor, op);
            replica.TakeOutgoing();
            replica.CheckEditor(0);
        }

        private static async Task DeliverSubmissionsAsync(DocumentSequencer<Rope, TextOp> sequencer, Replica[] replicas, Random random, int seed, bool all)
        {
            // Several replicas' messages reach the server together: submit them all before awaiting any, so the
            // sequencer pipelines them.
            var sent = new List<(Replica Replica, int Connection, Task<SubmitResult> Result)>();
            foreach (Replica replica in replicas)
            {
                if (replica.InTransit.Count == 0 || (!all && random.Next(2) == 0))
                {
                    continue;
                }

                foreach (OutgoingOp<TextOp> outgoing in replica.InTransit)
                {
                    var submission = new Submission<TextOp>(replica.State.ClientId, outgoing.ClientSeq, outgoing.BaseVersion, outgoing.Op, null);
                    sent.Add((replica, replica.Connection, sequencer.SubmitAsync(submission).AsTask()));
                }

                replica.InTransit.Clear();
            }

            foreach ((Replica replica, int connection, Task<SubmitResult> pending) in sent)
            {
                SubmitResult result = await pending;
                if (!result.IsSuccess)
                {
                    throw new InvalidOperationException($"seed {seed}: submission of {replica.State.ClientId} was refused: {result}.");
                }

                if (connection == replica.Connection)
                {
                    replica.Acks.Add(result.Version);
                }
            }
        }

        private static void DeliverStream(Replica replica, OpRecord[] log, int count, int seed)
        {
            Random random = replica.Random;
            for (int i = 0; i < count && replica.State.Version < log.Length; i++)
            {
                OpRecord record = log[replica.State.Version];
                if (replica.Acks.Remove(record.Version) && random.Next(2) == 0)
                {
                    // The explicit acknowledgement arrives in the stream position of the op (the stream copy is then stale).
                    if (!replica.State.OnAck(record.Version))
                    {
                        throw new InvalidOperationException($"seed {seed}: ack {record.Version} was not taken by {replica.State.ClientId}.");
                    }
                }
                else if (replica.State.OnRemoteOp(record.Version, TextOpCodec.Decode(record.Op.Span), record.ClientId, record.ClientSeq, out TextOp local))
                {
                    replica.Editor = TextType.Apply(replica.Editor, local);
                }

                // A late duplicate ack (already seen in the stream) is ignored.
                if (replica.Acks.Count > 0 && replica.Acks[0] <= replica.State.Version && replica.State.OnAck(replica.Acks[0]))
                {
                    throw new InvalidOperationException($"seed {seed}: stale ack {replica.Acks[0]} was applied.");
                }

                replica.Acks.RemoveAll(v => v <= replica.State.Version);
                replica.TakeOutgoing();
                replica.CheckEditor(seed);
            }
        }
    }
}
