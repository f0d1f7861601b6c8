using Collab.Engine.Sequencing;
using static Collab.Engine.Tests.Sequencing.DocumentSequencerTests;

namespace Collab.Engine.Tests.Sequencing;

/// <summary>
/// A resend of any op already sequenced is recognised, whatever seq the client had sequenced since (issue 13 §2): the
/// sequencer looks an older (client id, client seq) up in its window, then in the op log below it, and only when the log no
/// longer holds the range says "already committed" (never "seq already used" for an op that is in the document).
/// </summary>
public sealed class ResendLookupTests
{
    private static readonly SequencerOptions SmallWindow = new() { HistoryMaxOps = 2 };

    /// <summary>
    /// A pipelining client "p" had seqs 1, 2, 3 sequenced at versions 1, 2, 3 (one op each, appended at the end), then
    /// other clients wrote versions 4 and 5; the window keeps the last two, so "p"'s ops are only in the log.
    /// </summary>
    private static async Task<(DocumentSequencer<string, ListOp> Sequencer, RecordingDurabilityStage Stage, MemoryHistorySource History, RecordingListener<string, ListOp> Listener)> PipelinedAsync(
        Func<RecordingDurabilityStage, long, long, IReadOnlyList<OpRecord>>? read = null)
    {
        var stage = new RecordingDurabilityStage();
        var listener = new RecordingListener<string, ListOp>();
        var history = new MemoryHistorySource((after, to) => read?.Invoke(stage, after, to) ?? stage.OpsAfter("doc", after, to));
        DocumentSequencer<string, ListOp> sequencer = Create(stage, listener, SmallWindow, history);
        Task<SubmitResult>[] pipelined =
        [
            sequencer.SubmitAsync(Sub("p", 1, 0, Ins(0, 'a'))).AsTask(),
            sequencer.SubmitAsync(Sub("p", 2, 0, Ins(0, 'b'))).AsTask(),
            sequencer.SubmitAsync(Sub("p", 3, 0, Ins(0, 'c'))).AsTask(),
        ];
        await Task.WhenAll(pipelined).WithTimeout();
        await sequencer.SubmitAsync(Sub("q", 1, 3, Ins(3, 'd'))).WithTimeout();
        await sequencer.SubmitAsync(Sub("q", 2, 4, Ins(4, 'e'))).WithTimeout();
        return (sequencer, stage, history, listener);
    }

    [Fact]
    public async Task Resend_of_an_older_seq_below_the_window_is_found_in_the_log_with_its_original_version()
    {
        (DocumentSequencer<string, ListOp> sequencer, _, MemoryHistorySource history, RecordingListener<string, ListOp> listener) = await PipelinedAsync();
        await using (sequencer)
        {
            // The acks of seqs 1 and 2 were lost with the connection; the client resends both (after seq 3 was recognised).
            SubmitResult first = await sequencer.SubmitAsync(Sub("p", 1, 0, Ins(0, 'a'))).WithTimeout();
            SubmitResult second = await sequencer.SubmitAsync(Sub("p", 2, 0, Ins(0, 'b'))).WithTimeout();

            Assert.Equal((SubmitStatus.Duplicate, 1L), (first.Status, first.Version));
            Assert.Equal((SubmitStatus.Duplicate, 2L), (second.Status, second.Version));
            Assert.Equal(2, history.Lookups);
            Assert.Equal(5, sequencer.Version);
            Assert.Equal(5, listener.Records.Length);
        }
    }

    [Fact]
    public async Task Resend_of_an_older_seq_inside_the_window_needs_no_log_lookup()
    {
        var listener = new RecordingListener<string, ListOp>();
        var history = new MemoryHistorySource((_, _) => []);
        await using var sequencer = Create(new NoopDurabilityStage(), listener, new SequencerOptions(), history);
        await sequencer.SubmitAsync(Sub("p", 1, 0, Ins(0, 'a'))).WithTimeout();
        await sequencer.SubmitAsync(Sub("p", 2, 0, Ins(0, 'b'))).WithTimeout();

        SubmitResult resend = await sequencer.SubmitAsync(Sub("p", 1, 0, Ins(0, 'a'))).WithTimeout();

        Assert.Equal((SubmitStatus.Duplicate, 1L), (resend.Status, resend.Version));
        Assert.Equal(0, history.Lookups);
    }

    [Fact]
    public async Task Older_seq_that_was_never_sequenced_is_sequenced_now_after_a_complete_log_lookup()
    {
        (DocumentSequencer<string, ListOp> sequencer, _, MemoryHistorySource history, RecordingListener<string, ListOp> listener) = await PipelinedAsync();
        await using (sequencer)
        {
            // Seq 0 is impossible; a pipelined seq refused retryably while seq 1..3 went through is not: say seq 1 of
            // client "r" was refused OVERLOADED while its seq 2 was sequenced. Its resend is not in the log: it is new.
            await sequencer.SubmitAsync(Sub("r", 2, 5, Ins(5, 'f'))).WithTimeout();
            SubmitResult refusedEarlier = await sequencer.SubmitAsync(Sub("r", 1, 0, Ins(0, 'X'))).WithTimeout();

            Assert.Equal((SubmitStatus.Acked, 7L), (refusedEarlier.Status, refusedEarlier.Version));
            Assert.Equal(1, history.Lookups);
            Assert.Equal("XcbadeF".Replace('F', 'f'), listener.Batches[^1].Snapshot);

            // Seq 2 stays the client's latest: its resend is recognised at once, seq 1's through the window now.
            Assert.Equal((SubmitStatus.Duplicate, 6L), Result(await sequencer.SubmitAsync(Sub("r", 2, 5, Ins(5, 'f'))).WithTimeout()));
            Assert.Equal((SubmitStatus.Duplicate, 7L), Result(await sequencer.SubmitAsync(Sub("r", 1, 0, Ins(0, 'X'))).WithTimeout()));
        }
    }

    [Fact]
    public async Task Older_seq_whose_range_was_pruned_from_the_log_is_already_committed_not_refused()
    {
        // The log lost versions 1 and 2 (pruned behind a snapshot).
        (DocumentSequencer<string, ListOp> sequencer, _, MemoryHistorySource history, _) =
            await PipelinedAsync((stage, after, to) => stage.OpsAfter("doc", Math.Max(after, 2), to));
        await using (sequencer)
        {
            SubmitResult result = await sequencer.SubmitAsync(Sub("p", 1, 0, Ins(0, 'a'))).WithTimeout();

            Assert.Equal(SubmitStatus.AlreadyCommitted, result.Status);
            Assert.False(result.IsRetryable);
            Assert.Contains("seq 3", result.Message, StringComparison.Ordinal);
            Assert.Equal(5, sequencer.Version);
            Assert.Equal(1, history.Lookups);
        }
    }

    [Fact]
    public async Task Forgotten_client_is_looked_up_in_the_log_and_refused_only_when_the_log_cannot_tell()
    {
        var stage = new RecordingDurabilityStage();
        var listener = new RecordingListener<string, ListOp>();
        bool pruned = false;
        var history = new MemoryHistorySource((after, to) => stage.OpsAfter("doc", pruned ? Math.Max(after, 1) : after, to));
        await using var sequencer = Create(stage, listener, new SequencerOptions { HistoryMaxOps = 2, DedupeMaxClients = 2 }, history);
        for (int i = 0; i < 4; i++)
        {
            await sequencer.SubmitAsync(Sub("w" + i, 1, i, Ins(i, (char)('a' + i)))).WithTimeout();
        }

        // w0 (version 1) and w1 are forgotten; version 1 is below the window.
        Assert.Equal((SubmitStatus.Duplicate, 1L), Result(await sequencer.SubmitAsync(Sub("w0", 1, 0, Ins(0, 'a'))).WithTimeout()));
        pruned = true;
        SubmitResult unknown = await sequencer.SubmitAsync(Sub("w0", 1, 0, Ins(0, 'a'))).WithTimeout();

        Assert.Equal(SubmitStatus.DedupeExpired, unknown.Status);
        Assert.Equal(2, history.Lookups);
        Assert.Equal(4, sequencer.Version);
    }

    [Fact]
    public async Task A_failed_lookup_is_retryable_and_applies_nothing()
    {
        (DocumentSequencer<string, ListOp> sequencer, _, MemoryHistorySource history, _) = await PipelinedAsync();
        await using (sequencer)
        {
            history.Failure = new IOException("database down");
            SubmitResult result = await sequencer.SubmitAsync(Sub("p", 1, 0, Ins(0, 'a'))).WithTimeout();

            Assert.Equal(SubmitStatus.Unavailable, result.Status);
            Assert.True(result.IsRetryable);
            Assert.Equal(5, sequencer.Version);
        }
    }

    [Fact]
    public async Task While_a_resend_is_looked_up_the_document_queue_waits_and_keeps_its_order()
    {
        (DocumentSequencer<string, ListOp> sequencer, _, MemoryHistorySource history, RecordingListener<string, ListOp> listener) = await PipelinedAsync();
        await using (sequencer)
        {
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            history.Gate = gate;
            Task<SubmitResult> resend = sequencer.SubmitAsync(Sub("p", 2, 0, Ins(0, 'b'))).AsTask();
            Task<SubmitResult> next = sequencer.SubmitAsync(Sub("p", 4, 5, Ins(5, 'f'))).AsTask();
            await Task.Delay(50);
            Assert.False(resend.IsCompleted);
            Assert.False(next.IsCompleted);

            gate.SetResult();
            Assert.Equal((SubmitStatus.Duplicate, 2L), Result(await resend.WithTimeout()));
            Assert.Equal((SubmitStatus.Acked, 6L), Result(await next.WithTimeout()));
            Assert.Equal("cbadef", listener.Batches[^1].Snapshot);
        }
    }

    [Fact]
    public async Task Resend_of_an_older_seq_whose_original_is_not_committed_yet_completes_with_its_commit()
    {
        var stage = new ControllableDurabilityStage();
        await using var sequencer = Create(stage, new RecordingListener<string, ListOp>());
        Task<SubmitResult> one = sequencer.SubmitAsync(Sub("p", 1, 0, Ins(0, 'a'))).AsTask();
        Task<SubmitResult> two = sequencer.SubmitAsync(Sub("p", 2, 0, Ins(0, 'b'))).AsTask();
        Task<SubmitResult> resend = sequencer.SubmitAsync(Sub("p", 1, 0, Ins(0, 'a'))).AsTask();
        await sequencer.BarrierAsync();

        Assert.False(resend.IsCompleted);
        Assert.Equal(2, stage.CallCount);
        stage[0].Complete();
        stage[1].Complete();

        Assert.Equal((SubmitStatus.Acked, 1L), Result(await one.WithTimeout()));
        Assert.Equal((SubmitStatus.Acked, 2L), Result(await two.WithTimeout()));
        Assert.Equal((SubmitStatus.Duplicate, 1L), Result(await resend.WithTimeout()));
    }

    [Fact]
    public void An_older_seq_sequenced_after_a_newer_one_leaves_the_newer_as_the_latest_and_in_the_metadata()
    {
        var options = new SequencerOptions();
        var state = new DedupeState(options);
        state.Record("p", 2, 1);
        state.Record("p", 1, 2);

        Assert.True(state.TryGetClient("p", out long seq, out long version));
        Assert.Equal((2L, 1L), (seq, version));
        Assert.Equal(DedupeDecision.Duplicate, state.Check("p", 2, 0, out _));
        Assert.Equal(DedupeDecision.Older, state.Check("p", 1, 0, out _));
        Assert.True(DedupeState.Decode(state.Encode(), options).TryGetClient("p", out seq, out version));
        Assert.Equal((2L, 1L), (seq, version));
    }

    private static (SubmitStatus, long) Result(SubmitResult result) => (result.Status, result.Version);
}
