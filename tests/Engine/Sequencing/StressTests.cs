using Collab.Engine.Sequencing;
using static Collab.Engine.Tests.Sequencing.DocumentSequencerTests;

namespace Collab.Engine.Tests.Sequencing;

[Trait("Category", "Slow")]
public sealed class StressTests
{
    [Theory]
    [InlineData(true, 256)]
    [InlineData(false, 256)]
    [InlineData(true, 3)]
    public async Task Concurrent_submitters_with_stale_bases_and_resends_keep_every_invariant(bool asyncContinuations, int itemsPerTurn)
    {
        const int Threads = 8;
        const int OpsPerThread = 1500;
        var stage = new RecordingDurabilityStage();
        var listener = new RecordingListener<string, ListOp>();
        var options = new SequencerOptions
        {
            HistoryMaxOps = 64,
            MaxPendingSubmissions = 10_000,
            RunContinuationsAsynchronously = asyncContinuations,
            MaxItemsPerTurn = itemsPerTurn,
        };
        // Bases can fall out of the small window while a submission waits in the queue: those go through history reads.
        var history = new MemoryHistorySource((after, to) => stage.OpsAfter("doc", after, to));
        await using var sequencer = Create(stage, listener, options, history);

        var versions = new long[Threads][];
        Task[] workers = [.. Enumerable.Range(0, Threads).Select(t => Task.Run(async () =>
        {
            var random = new Random(t);
            var mine = new long[OpsPerThread];
            for (int i = 0; i < OpsPerThread; i++)
            {
                // A base up to 40 versions stale (inserting at 0 fits any document), sometimes a resend of the same seq.
                long baseVersion = Math.Max(0, sequencer.CommittedVersion - random.Next(40));
                var submission = Sub("t" + t, i + 1, baseVersion, Ins(0, (char)('a' + t)));
                SubmitResult result = await sequencer.SubmitAsync(submission);
                Assert.Equal(SubmitStatus.Acked, result.Status);
                mine[i] = result.Version;
                if (random.Next(10) == 0)
                {
                    SubmitResult again = await sequencer.SubmitAsync(submission);
                    Assert.Equal((SubmitStatus.Duplicate, result.Version), (again.Status, again.Version));
                }
            }

            versions[t] = mine;
        }))];
        await Task.WhenAll(workers).WithTimeout();
        await sequencer.BarrierAsync();

        const int Total = Threads * OpsPerThread;
        Assert.Equal(Total, sequencer.CommittedVersion);
        Assert.Equal(Total, sequencer.Version);
        Assert.Equal(0, sequencer.PendingCount);
        Assert.Empty(listener.Violations);

        // Every version assigned exactly once; each client's versions increase with its seqs.
        Assert.Equal(Enumerable.Range(1, Total).Select(v => (long)v), versions.SelectMany(v => v).Order());
        Assert.All(versions, v => Assert.True(v.SequenceEqual(v.Order())));

        // Published exactly what was stored, in order, and the final document holds every op once.
        Assert.Equal(stage.OpsAfter("doc", 0).Select(o => (o.Version, o.ClientId, o.ClientSeq)), listener.Records.Select(o => (o.Version, o.ClientId, o.ClientSeq)));
        string text = listener.Batches[^1].Snapshot;
        Assert.Equal(Total, text.Length);
        for (int t = 0; t < Threads; t++)
        {
            Assert.Equal(OpsPerThread, text.Count(c => c == (char)('a' + t)));
        }

        // Replaying the stored log reproduces the document (the stored bytes are the applied, transformed ops).
        DocumentState<string, ListOp> replayed = DocumentState.Load(TestListType.Instance, null, stage.OpsAfter("doc", 0), options);
        Assert.Equal(text, replayed.Snapshot);
    }
}
