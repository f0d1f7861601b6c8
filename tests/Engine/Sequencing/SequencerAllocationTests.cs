using Collab.Engine.Sequencing;
using Collab.Engine.Text;
using Collab.Testing;

namespace Collab.Engine.Tests.Sequencing;

[CollectionDefinition(nameof(SequencerAllocationCollection), DisableParallelization = true)]
public sealed class SequencerAllocationCollection
{
}

/// <summary>
/// The sequencer's allocation per submitted op against the budgets in tests/allocation-budgets.json (the figures of
/// <c>EngineSequencerBenchmarks</c>, checked on every run rather than in a benchmark sitting). One submitter awaits each
/// op with inline continuations and a no-op durability stage, as the benchmark's InlineContinuations=true case does; the
/// sequencer's worker runs on the thread pool, so the whole process's allocation is counted, in a collection that runs
/// alone.
/// </summary>
[Trait("Category", "Allocation")]
[Collection(nameof(SequencerAllocationCollection))]
public sealed class SequencerAllocationTests
{
    private const int WarmUp = 5_000;
    private const int Measured = 50_000;

    [Fact]
    public Task Counter_type_sequencing_stays_within_its_budget() =>
        MeasureAsync("sequencer.counter", CounterType.Instance, 1L);

    [Fact]
    public Task Text_type_sequencing_stays_within_its_budget() =>
        MeasureAsync("sequencer.text", TextType.Instance, TextOp.Insert(0, "a"));

    private static async Task MeasureAsync<TSnapshot, TOp>(string budget, IOtType<TSnapshot, TOp> type, TOp op)
        where TSnapshot : notnull
        where TOp : notnull
    {
        var options = new SequencerOptions { RunContinuationsAsynchronously = false };
        await using var sequencer = new DocumentSequencer<TSnapshot, TOp>(
            "alloc", type, DocumentState.Empty(type, options), new NoopDurabilityStage(), null, new NoopSequencerListener<TSnapshot, TOp>(), options);

        long seq = 0;
        await SubmitAsync(sequencer, op, WarmUp, seq);
        seq += WarmUp;

        long before = GC.GetTotalAllocatedBytes(precise: true);
        await SubmitAsync(sequencer, op, Measured, seq);
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;

        AllocationBudget.Check(budget, allocated, Measured);
    }

    private static async Task SubmitAsync<TSnapshot, TOp>(DocumentSequencer<TSnapshot, TOp> sequencer, TOp op, int count, long lastSeq)
        where TSnapshot : notnull
        where TOp : notnull
    {
        for (long seq = lastSeq + 1; seq <= lastSeq + count; seq++)
        {
            SubmitResult result = await sequencer.SubmitAsync(new Submission<TOp>("client", seq, sequencer.CommittedVersion, op, null)).ConfigureAwait(false);
            if (result.Status != SubmitStatus.Acked)
            {
                // Not Assert.Equal: it allocates a comparer per call, which would be counted as the sequencer's.
                Assert.Fail($"Submit {seq}: {result}");
            }
        }
    }
}
