using Collab.Engine.Client;
using Collab.Engine.RichText;
using Collab.Engine.Sequencing;
using Collab.Engine.Tests.Sequencing;
using CsCheck;

namespace Collab.Engine.Tests.RichText;

/// <summary>
/// The rich-text type in the generic sequencer and client state machine, unchanged: replicas type, delete, paste
/// embeds and format ranges (including removals with null) concurrently against stale versions; their ops travel
/// with random delays, batching, reconnects and explicit acks through one <see cref="DocumentSequencer{TSnapshot, TOp}"/>.
/// Once everything is delivered every replica holds exactly the sequencer's document, the op log alone rebuilds it,
/// and so does a snapshot (the document's JSON) plus the ops after it.
/// </summary>
public sealed class RichConvergenceTests
{
    [Theory]
    [InlineData(1, 2, 150)]
    [InlineData(7, 3, 300)]
    [InlineData(2024, 4, 400)]
    public Task Replicas_converge_for_fixed_seeds(int seed, int replicas, int steps) => RunAsync(seed, replicas, steps);

    [Fact]
    public Task Replicas_converge_for_random_seeds() =>
        // A fresh CsCheck seed each run; on failure CsCheck prints it and the shrunk parameters.
        Gen.Select(Gen.Int, Gen.Int[2, 4], Gen.Int[5, 100]).SampleAsync((seed, replicas, steps) => RunAsync(seed, replicas, steps), iter: 300);

    private static readonly string[] s_text = ["a", "b", " ", "\n", "é", "😀", "xy"];

    private static readonly AttributeMap?[] s_formats =
    [
        null, AttributeMap.Of("bold", true), AttributeMap.Of("bold", RichValue.Null), AttributeMap.Of("italic", true),
        AttributeMap.Of("color", "#f00"), AttributeMap.Of("color", "#00f"), AttributeMap.Of("header", 1),
        AttributeMap.Create(new("bold", true), new("color", RichValue.Null)), AttributeMap.Of("link", "https://example.test"),
    ];

    private static readonly RichEmbed[] s_embeds = [new("image", "cat.png"), new("formula", "x^2")];

    private static async Task RunAsync(int seed, int replicaCount, int steps)
    {
        var random = new Random(seed);
        var options = new SequencerOptions { HistoryMaxOps = random.Next(2) == 0 ? 3 : 1024, RunContinuationsAsynchronously = false };
        RichTextType type = RichTextType.Default;
        var stage = new RecordingDurabilityStage();
        var history = new MemoryHistorySource((after, to) => stage.OpsAfter("rich", after, to));
        var listener = new RecordingListener<RichDocument, RichOp>();
        await using var sequencer = new DocumentSequencer<RichDocument, RichOp>(
            "rich", type, DocumentState.Empty(type, options), stage, history, listener, options);

        Replica[] replicas = [.. Enumerable.Range(0, replicaCount).Select(i => new Replica(type, "r" + i, new Random(seed * 31 + i)))];
        for (int step = 0; step < steps; step++)
        {
            Replica replica = replicas[random.Next(replicas.Length)];
            switch (random.Next(100))
            {
                case < 40:
                    replica.Edit(seed);
                    break;
                case < 60:
                    await SubmitAsync(sequencer, replicas.Where(_ => random.Next(2) == 0), seed);
                    break;
                case < 92:
                    replica.Receive(listener.Records, random.Next(1, 4), seed);
                    break;
                default:
                    // Reconnect: what was in transit reached the server before the drop, or is lost with the connection.
                    if (random.Next(2) == 0)
                    {
                        await SubmitAsync(sequencer, [replica], seed);
                    }

                    replica.Reconnect();
                    break;
            }
        }

        for (int round = 0; ; round++)
        {
            Assert.True(round < 10_000, $"seed {seed}: the simulation did not quiesce.");
            await SubmitAsync(sequencer, replicas, seed);
            OpRecord[] log = listener.Records;
            foreach (Replica replica in replicas)
            {
                replica.Receive(log, int.MaxValue, seed);
            }

            if (replicas.All(r => !r.State.HasPending && r.InTransit.Count == 0 && r.State.Version == log.Length))
            {
                break;
            }
        }

        (RichDocument document, long version, SnapshotRecord snapshot) =
            await sequencer.RunExclusiveAsync(view => (view.Snapshot, view.Version, view.CreateSnapshotRecord()));
        document.CheckInvariants();
        Assert.Empty(listener.Violations);
        Assert.Equal(listener.Records.Length, version);
        foreach (Replica replica in replicas)
        {
            Assert.True(replica.Editor.Equals(replica.State.Snapshot), $"seed {seed}: {replica.Id}'s editor diverged from its state.");
            Assert.True(replica.State.Snapshot.Equals(document), $"seed {seed}: {replica.Id} has {replica.State.Snapshot} but the sequencer has {document}.");
        }

        // The log alone rebuilds the document; so does the snapshot (JSON) plus the ops after half of the log.
        Assert.Equal(document, DocumentState.Load(type, null, stage.OpsAfter("rich", 0), options).Snapshot);
        Assert.Equal(document, DocumentState.Load(type, snapshot, [], options).Snapshot);
        long half = version / 2;
        RichDocument atHalf = DocumentState.Load(type, null, stage.OpsAfter("rich", 0, half), options).Snapshot;
        var halfSnapshot = new SnapshotRecord("rich", half, ((IOtType<RichDocument, RichOp>)type).ToText(atHalf), new DedupeState(options).Encode(), 0);
        Assert.Equal(document, DocumentState.Load(type, halfSnapshot, stage.OpsAfter("rich", half), options).Snapshot);
    }

    private static async Task SubmitAsync(DocumentSequencer<RichDocument, RichOp> sequencer, IEnumerable<Replica> replicas, int seed)
    {
        // Submit everything before awaiting anything, so that the sequencer pipelines the batch.
        var sent = new List<(Replica Replica, int Connection, Task<SubmitResult> Result)>();
        foreach (Replica replica in replicas)
        {
            foreach (OutgoingOp<RichOp> outgoing in replica.InTransit)
            {
                var submission = new Submission<RichOp>(replica.Id, outgoing.ClientSeq, outgoing.BaseVersion, outgoing.Op, null);
                sent.Add((replica, replica.Connection, sequencer.SubmitAsync(submission).AsTask()));
            }

            replica.InTransit.Clear();
        }

        foreach ((Replica replica, int connection, Task<SubmitResult> pending) in sent)
        {
            SubmitResult result = await pending;
            Assert.True(result.IsSuccess, $"seed {seed}: {replica.Id}'s submission was refused: {result}.");
            if (connection == replica.Connection)
            {
                replica.Acks.Add(result.Version);
            }
        }
    }

    private sealed class Replica(RichTextType type, string id, Random random)
    {
        public string Id { get; } = id;

        public OtClientState<RichDocument, RichOp> State { get; } = new(type, id, RichDocument.Empty, 0);

        /// <summary>What the editor shows: the ops the client state hands out, applied one by one.</summary>
        public RichDocument Editor { get; private set; } = RichDocument.Empty;

        public List<OutgoingOp<RichOp>> InTransit { get; } = [];

        public List<long> Acks { get; } = [];

        public int Connection { get; private set; }

        public void Edit(int seed)
        {
            RichDocument doc = State.Snapshot;
            int start = Boundary(doc, random.Next(doc.Length + 1));
            int end = Boundary(doc, Math.Min(doc.Length, start + random.Next(1, 5)));
            AttributeMap? format = s_formats[random.Next(s_formats.Length)];
            var builder = new RichOpBuilder();
            builder.Retain(start);
            switch (random.Next(5))
            {
                case 0 when end > start:
                    builder.Delete(end - start);
                    break;
                case 1 when end > start && format is not null:
                    builder.Retain(end - start, format);
                    break;
                case 2:
                    builder.Insert(s_embeds[random.Next(s_embeds.Length)], format);
                    builder.Delete(end - start);
                    break;
                default:
                    builder.Insert(string.Concat(Enumerable.Range(0, random.Next(1, 3)).Select(_ => s_text[random.Next(s_text.Length)])), format);
                    break;
            }

            RichOp op = builder.ToOp();
            State.ApplyLocal(op);
            Editor = RichTextType.Apply(Editor, op);
            TakeOutgoing();
            Assert.True(Editor.Equals(State.Snapshot), $"seed {seed}: {Id}'s editor diverged after a local edit.");
        }

        public void Receive(OpRecord[] log, int count, int seed)
        {
            for (int i = 0; i < count && State.Version < log.Length; i++)
            {
                OpRecord record = log[State.Version];
                if (Acks.Remove(record.Version) && random.Next(2) == 0)
                {
                    // The explicit ack arrives in the op's place in the stream.
                    Assert.True(State.OnAck(record.Version), $"seed {seed}: ack {record.Version} was not taken by {Id}.");
                }
                else if (State.OnRemoteOp(record.Version, RichOpCodec.Decode(record.Op.Span), record.ClientId, record.ClientSeq, out RichOp local))
                {
                    Editor = RichTextType.Apply(Editor, local);
                }

                Acks.RemoveAll(v => v <= State.Version);
                TakeOutgoing();
            }
        }

        public void Reconnect()
        {
            InTransit.Clear();
            Acks.Clear();
            Connection++;
            State.OnReconnect();
            TakeOutgoing();
        }

        private void TakeOutgoing()
        {
            while (State.TryTakeOutgoing(out OutgoingOp<RichOp> outgoing))
            {
                InTransit.Add(outgoing);
            }
        }

        /// <summary>A position that does not fall inside a surrogate pair (rich-text rejects ops that cut one).</summary>
        private static int Boundary(RichDocument doc, int position) => doc.SplitsSurrogatePair(position) ? position - 1 : position;
    }
}
