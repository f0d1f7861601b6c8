using Collab.Engine.Sequencing;
using static Collab.Engine.Tests.Sequencing.DocumentSequencerTests;

namespace Collab.Engine.Tests.Sequencing;

public sealed class HistoryTests
{
    private static readonly SequencerOptions SmallWindow = new() { HistoryMaxOps = 2 };

    /// <summary>Five ops "abcde" appended at the end, each by its own client; the window keeps the last two.</summary>
    private static async Task<(DocumentSequencer<string, ListOp> Sequencer, RecordingDurabilityStage Stage, RecordingListener<string, ListOp> Listener)> FiveOpsAsync(
        SequencerOptions options, Func<RecordingDurabilityStage, IHistorySource?> history)
    {
        var stage = new RecordingDurabilityStage();
        var listener = new RecordingListener<string, ListOp>();
        DocumentSequencer<string, ListOp> sequencer = Create(stage, listener, options, history(stage));
        for (int i = 0; i < 5; i++)
        {
            await sequencer.SubmitAsync(Sub("w" + i, 1, i, Ins(i, (char)('a' + i)))).WithTimeout();
        }

        return (sequencer, stage, listener);
    }

    private static MemoryHistorySource From(RecordingDurabilityStage stage) =>
        new((after, to) => stage.OpsAfter("doc", after, to));

    [Fact]
    public async Task Base_older_than_the_window_is_transformed_through_ops_read_from_history()
    {
        MemoryHistorySource? history = null;
        (DocumentSequencer<string, ListOp> sequencer, _, RecordingListener<string, ListOp> listener) =
            await FiveOpsAsync(SmallWindow, stage => history = From(stage));
        await using (sequencer)
        {
            // Made at version 1 ("a"), right after 'a'. Ops 2..5 inserted at positions 1..4; transformed Left against
            // "b" at the same position, X lands before it.
            SubmitResult result = await sequencer.SubmitAsync(Sub("late", 1, 1, Ins(1, 'X'))).WithTimeout();

            Assert.Equal((SubmitStatus.Acked, 6L), (result.Status, result.Version));
            Assert.Equal(1, history!.Reads);
            Assert.Equal("aXbcde", listener.Batches[^1].Snapshot);
        }
    }

    [Fact]
    public async Task While_history_is_read_the_document_queue_waits_and_keeps_its_order()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        MemoryHistorySource? history = null;
        (DocumentSequencer<string, ListOp> sequencer, _, RecordingListener<string, ListOp> listener) =
            await FiveOpsAsync(SmallWindow, stage => history = From(stage));
        await using (sequencer)
        {
            history!.Gate = gate;
            Task<SubmitResult> late = sequencer.SubmitAsync(Sub("late", 1, 0, Ins(0, 'X'))).AsTask();
            Task<SubmitResult> next = sequencer.SubmitAsync(Sub("next", 1, 5, Ins(5, 'Y'))).AsTask();
            Task<bool> exclusive = sequencer.RunExclusiveAsync(_ => true).AsTask();
            await Task.Delay(50);

            Assert.False(late.IsCompleted);
            Assert.False(next.IsCompleted);
            Assert.False(exclusive.IsCompleted);
            Assert.Equal(5, sequencer.Version);

            gate.SetResult();
            Assert.Equal(6, (await late.WithTimeout()).Version);
            Assert.Equal(7, (await next.WithTimeout()).Version);
            Assert.True(await exclusive.WithTimeout());
            Assert.Equal("XabcdeY", listener.Batches[^1].Snapshot);
        }
    }

    [Fact]
    public async Task Without_a_history_source_an_old_base_is_too_old()
    {
        (DocumentSequencer<string, ListOp> sequencer, _, _) = await FiveOpsAsync(SmallWindow, _ => null);
        await using (sequencer)
        {
            SubmitResult result = await sequencer.SubmitAsync(Sub("late", 1, 2, Ins(0, 'X'))).WithTimeout();

            Assert.Equal(SubmitStatus.VersionTooOld, result.Status);
            Assert.False(result.IsRetryable);
            Assert.Equal(5, sequencer.Version);

            // The window still serves bases it covers.
            Assert.Equal(SubmitStatus.Acked, (await sequencer.SubmitAsync(Sub("ok", 1, 3, Ins(0, 'Y'))).WithTimeout()).Status);
        }
    }

    [Fact]
    public async Task History_that_does_not_reach_back_is_too_old()
    {
        (DocumentSequencer<string, ListOp> sequencer, _, _) =
            await FiveOpsAsync(SmallWindow, stage => new MemoryHistorySource((after, to) => stage.OpsAfter("doc", after + 1, to)));
        await using (sequencer)
        {
            SubmitResult result = await sequencer.SubmitAsync(Sub("late", 1, 0, Ins(0, 'X'))).WithTimeout();
            Assert.Equal(SubmitStatus.VersionTooOld, result.Status);
        }
    }

    [Fact]
    public async Task History_with_a_gap_is_too_old()
    {
        (DocumentSequencer<string, ListOp> sequencer, _, _) = await FiveOpsAsync(
            SmallWindow,
            stage => new MemoryHistorySource((after, to) =>
            {
                OpRecord[] ops = [.. stage.OpsAfter("doc", after, to)];
                ops[1] = ops[0];
                return ops;
            }));
        await using (sequencer)
        {
            SubmitResult result = await sequencer.SubmitAsync(Sub("late", 1, 0, Ins(0, 'X'))).WithTimeout();
            Assert.Equal(SubmitStatus.VersionTooOld, result.Status);
            Assert.Contains("gap", result.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task More_history_than_allowed_is_too_old_without_reading()
    {
        MemoryHistorySource? history = null;
        (DocumentSequencer<string, ListOp> sequencer, _, _) =
            await FiveOpsAsync(new SequencerOptions { HistoryMaxOps = 2, MaxHistoryReadOps = 2 }, stage => history = From(stage));
        await using (sequencer)
        {
            SubmitResult tooFar = await sequencer.SubmitAsync(Sub("late", 1, 0, Ins(0, 'X'))).WithTimeout();
            SubmitResult withinReach = await sequencer.SubmitAsync(Sub("late", 2, 1, Ins(0, 'X'))).WithTimeout();

            Assert.Equal(SubmitStatus.VersionTooOld, tooFar.Status);
            Assert.Equal(SubmitStatus.Acked, withinReach.Status);
            Assert.Equal(1, history!.Reads);
        }
    }

    [Fact]
    public async Task Failing_history_read_is_unavailable_and_retryable()
    {
        MemoryHistorySource? history = null;
        (DocumentSequencer<string, ListOp> sequencer, _, _) = await FiveOpsAsync(SmallWindow, stage => history = From(stage));
        await using (sequencer)
        {
            history!.Failure = new IOException("disk on fire");
            SubmitResult failed = await sequencer.SubmitAsync(Sub("late", 1, 0, Ins(0, 'X'))).WithTimeout();

            Assert.Equal(SubmitStatus.Unavailable, failed.Status);
            Assert.True(failed.IsRetryable);
            Assert.Contains("disk on fire", failed.Message, StringComparison.Ordinal);

            history.Failure = null;
            Assert.Equal(SubmitStatus.Acked, (await sequencer.SubmitAsync(Sub("late", 1, 0, Ins(0, 'X'))).WithTimeout()).Status);
        }
    }

    [Fact]
    public async Task History_source_throwing_synchronously_is_unavailable()
    {
        (DocumentSequencer<string, ListOp> sequencer, _, _) = await FiveOpsAsync(SmallWindow, _ => new ThrowingHistory());
        await using (sequencer)
        {
            SubmitResult result = await sequencer.SubmitAsync(Sub("late", 1, 0, Ins(0, 'X'))).WithTimeout();
            Assert.Equal(SubmitStatus.Unavailable, result.Status);
            Assert.Equal(5, sequencer.Version);
        }
    }

    [Fact]
    public async Task Undecodable_history_is_unavailable()
    {
        (DocumentSequencer<string, ListOp> sequencer, _, _) = await FiveOpsAsync(
            SmallWindow,
            stage => new MemoryHistorySource((after, to) =>
                [.. stage.OpsAfter("doc", after, to).Select(o => o with { Op = new byte[] { 1 } })]));
        await using (sequencer)
        {
            Assert.Equal(SubmitStatus.Unavailable, (await sequencer.SubmitAsync(Sub("late", 1, 0, Ins(0, 'X'))).WithTimeout()).Status);
        }
    }

    [Fact]
    public async Task A_submission_cancelled_while_the_queue_waits_for_history_is_not_sequenced()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        MemoryHistorySource? history = null;
        (DocumentSequencer<string, ListOp> sequencer, _, _) = await FiveOpsAsync(SmallWindow, stage => history = From(stage));
        await using (sequencer)
        {
            history!.Gate = gate;
            using var cancellation = new CancellationTokenSource();
            Task<SubmitResult> late = sequencer.SubmitAsync(Sub("late", 1, 0, Ins(0, 'X'))).AsTask();
            Task<SubmitResult> cancelled = sequencer.SubmitAsync(Sub("other", 1, 5, Ins(0, 'Y')), cancellation.Token).AsTask();
            await cancellation.CancelAsync();
            gate.SetResult();

            Assert.Equal(SubmitStatus.Acked, (await late.WithTimeout()).Status);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WithTimeout());
            Assert.Equal(6, sequencer.Version);
        }
    }

    [Fact]
    public async Task Window_is_bounded_by_bytes_as_well_as_count()
    {
        // Each single-edit op is 24 "bytes" for the test type: 50 bytes hold two.
        MemoryHistorySource? history = null;
        (DocumentSequencer<string, ListOp> sequencer, _, _) =
            await FiveOpsAsync(new SequencerOptions { HistoryMaxOps = 100, HistoryMaxBytes = 50 }, stage => history = From(stage));
        await using (sequencer)
        {
            (long oldest, bool hasOps) = await sequencer.RunExclusiveAsync(view => (view.OldestAvailableVersion, view.TryGetOpsAfter(2, out _))).WithTimeout();
            Assert.Equal(3, oldest);
            Assert.False(hasOps);

            Assert.Equal(SubmitStatus.Acked, (await sequencer.SubmitAsync(Sub("late", 1, 2, Ins(0, 'X'))).WithTimeout()).Status);
            Assert.Equal(1, history!.Reads);
        }
    }

    private sealed class ThrowingHistory : IHistorySource
    {
        public ValueTask<IReadOnlyList<OpRecord>> ReadOpsAsync(string docId, long afterVersion, long toVersion, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("no connection");

        public ValueTask<OpLookup> FindOpAsync(string docId, string clientId, long clientSeq, long afterVersion, long toVersion, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("no connection");
    }
}
