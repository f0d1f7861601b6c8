using Collab.Engine.Sequencing;
using Collab.Server.Tests.Security.Infrastructure;
using static Collab.Engine.Tests.Sequencing.DocumentSequencerTests;

namespace Collab.Engine.Tests.Sequencing;

public sealed class LifecycleTests
{
    [Fact]
    public async Task Version_conflict_fences_the_document_and_every_pending_and_later_submission()
    {
        var stage = new ControllableDurabilityStage();
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(stage, listener);

        Task<SubmitResult> v1 = sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).AsTask();
        Task<SubmitResult> v2 = sequencer.SubmitAsync(Sub("b", 1, 0, Ins(0, 'b'))).AsTask();
        Task<SubmitResult> v3 = sequencer.SubmitAsync(Sub("c", 1, 0, Ins(0, 'c'))).AsTask();
        await sequencer.BarrierAsync();
        Task<SubmitResult> duplicateOfV3 = sequencer.SubmitAsync(Sub("c", 1, 0, Ins(0, 'c'))).AsTask();
        await sequencer.BarrierAsync();

        stage[0].Complete();
        Assert.Equal(SubmitStatus.Acked, (await v1.WithTimeout()).Status);
        var conflict = new VersionConflictException("doc", 2);
        stage[1].Fail(conflict);
        await sequencer.BarrierAsync();

        Assert.Equal(SequencerState.Fenced, sequencer.State);
        Assert.Same(conflict, sequencer.Fault);
        Assert.Same(conflict, Assert.Single(listener.Fenced));
        SubmitResult fenced = await v2.WithTimeout();
        Assert.Equal(SubmitStatus.Fenced, fenced.Status);
        Assert.True(fenced.IsRetryable);
        Assert.Equal(SubmitStatus.Fenced, (await duplicateOfV3.WithTimeout()).Status);

        // The stage was told to give up on version 3; its submission completes only once the stage let go of it.
        Assert.True(stage[2].Token.IsCancellationRequested);
        Assert.Equal(SubmitStatus.Fenced, (await v3.WithTimeout()).Status);

        Assert.Equal(SubmitStatus.Fenced, (await sequencer.SubmitAsync(Sub("d", 1, 1, Ins(0, 'd'))).WithTimeout()).Status);
        Assert.Equal(1, sequencer.CommittedVersion);
        Assert.Single(listener.Records);
        Assert.Single(listener.Fenced);
        Assert.Equal(0, sequencer.PendingCount);
    }

    [Fact]
    public async Task A_stage_failing_outside_its_contract_faults_the_document()
    {
        var stage = new ControllableDurabilityStage();
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(stage, listener);

        Task<SubmitResult> v1 = sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).AsTask();
        await sequencer.BarrierAsync();
        stage[0].Fail(new InvalidOperationException("bug in the stage"));

        SubmitResult result = await v1.WithTimeout();
        Assert.Equal(SubmitStatus.Closed, result.Status);
        Assert.True(result.IsRetryable);
        Assert.Equal(SequencerState.Faulted, sequencer.State);
        Assert.IsType<InvalidOperationException>(Assert.Single(listener.Faulted));
        Assert.Equal("bug in the stage", sequencer.Fault!.InnerException!.Message);
        Assert.Empty(listener.Fenced);
        Assert.Equal(SubmitStatus.Closed, (await sequencer.SubmitAsync(Sub("b", 1, 0, Ins(0, 'b'))).WithTimeout()).Status);
    }

    [Fact]
    public async Task A_stage_cancelling_on_its_own_faults_the_document()
    {
        var stage = new ControllableDurabilityStage();
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(stage, listener);

        Task<SubmitResult> v1 = sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).AsTask();
        await sequencer.BarrierAsync();
        stage[0].Fail(new OperationCanceledException("the stage shut down"));

        Assert.Equal(SubmitStatus.Closed, (await v1.WithTimeout()).Status);
        Assert.Equal(SequencerState.Faulted, sequencer.State);
        Assert.IsType<OperationCanceledException>(sequencer.Fault!.InnerException);
        Assert.Single(listener.Faulted);
    }

    [Fact]
    public async Task A_listener_throwing_from_OnFenced_leaves_the_document_fenced()
    {
        var stage = new ControllableDurabilityStage();
        var listener = new ThrowingFenceListener();
        await using var sequencer = Create(stage, listener);

        Task<SubmitResult> v1 = sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).AsTask();
        await sequencer.BarrierAsync();
        stage[0].Fail(new VersionConflictException("doc", 1));

        Assert.Equal(SubmitStatus.Fenced, (await v1.WithTimeout()).Status);
        // v1 completes while the sequencer is stopping, before the listener runs: wait for the turn to finish.
        await sequencer.BarrierAsync();
        Assert.Equal(SequencerState.Fenced, sequencer.State);
        Assert.IsType<FormatException>(sequencer.Fault!.InnerException);
    }

    [Fact]
    public async Task A_stage_that_throws_synchronously_faults_the_document()
    {
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(new ThrowingStage(), listener);

        SubmitResult result = await sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout();

        Assert.Equal(SubmitStatus.Closed, result.Status);
        Assert.Equal(SequencerState.Faulted, sequencer.State);
        Assert.Single(listener.Faulted);
    }

    [Fact]
    public async Task A_throwing_listener_faults_the_document_but_the_committed_op_is_still_acknowledged()
    {
        var listener = new RecordingListener<string, ListOp> { ThrowOnCommitted = new InvalidOperationException("listener bug") };
        await using var sequencer = Create(new NoopDurabilityStage(), listener);

        SubmitResult result = await sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout();

        Assert.Equal(SubmitStatus.Acked, result.Status);
        await sequencer.BarrierAsync();
        Assert.Equal(SequencerState.Faulted, sequencer.State);
        Assert.Single(listener.Faulted);
        Assert.Equal(SubmitStatus.Closed, (await sequencer.SubmitAsync(Sub("b", 1, 1, Ins(0, 'b'))).WithTimeout()).Status);
    }

    [Fact]
    public async Task Dispose_waits_for_commits_in_flight_and_acknowledges_them()
    {
        var stage = new ControllableDurabilityStage();
        var listener = new RecordingListener<string, ListOp>();
        var sequencer = Create(stage, listener);

        Task<SubmitResult> inFlight = sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).AsTask();
        await sequencer.BarrierAsync();
        Task disposed = sequencer.DisposeAsync().AsTask();
        await Task.Delay(20);

        Assert.False(disposed.IsCompleted);
        Assert.Equal(SequencerState.Disposed, sequencer.State);
        Assert.Equal(SubmitStatus.Closed, (await sequencer.SubmitAsync(Sub("b", 1, 0, Ins(0, 'b'))).WithTimeout()).Status);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => sequencer.RunExclusiveAsync(_ => 1).AsTask());

        stage[0].Complete();
        await disposed.WithTimeout();
        Assert.Equal(SubmitStatus.Acked, (await inFlight.WithTimeout()).Status);
        Assert.Single(listener.Records);
        Assert.Same(disposed, sequencer.CloseAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Close_lets_a_paused_history_read_and_the_submissions_accepted_before_it_finish()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stage = new RecordingDurabilityStage();
        var history = new MemoryHistorySource((after, to) => stage.OpsAfter("doc", after, to));
        var listener = new RecordingListener<string, ListOp>();
        var sequencer = Create(stage, listener, new SequencerOptions { HistoryMaxOps = 0 }, history);
        await sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout();

        // Pause the queue on a history read, then queue a submission and the close behind it.
        history.Gate = gate;
        Task<SubmitResult> paused = sequencer.SubmitAsync(Sub("b", 1, 0, Ins(0, 'b'))).AsTask();
        Task<SubmitResult> queued = sequencer.SubmitAsync(Sub("c", 1, 1, Ins(1, 'c'))).AsTask();
        Task closed = sequencer.DisposeAsync().AsTask();
        Assert.Equal(SubmitStatus.Closed, (await sequencer.SubmitAsync(Sub("d", 1, 1, Ins(0, 'd'))).WithTimeout()).Status);
        gate.SetResult();

        await closed.WithTimeout();
        Assert.Equal((SubmitStatus.Acked, 2L), (await paused.WithTimeout()).StatusAndVersion());
        Assert.Equal((SubmitStatus.Acked, 3L), (await queued.WithTimeout()).StatusAndVersion());
        Assert.Equal("bac", listener.Batches[^1].Snapshot);
    }

    [Fact]
    public async Task Abandoning_the_close_cancels_pending_commits_and_closes_their_submissions()
    {
        var stage = new ControllableDurabilityStage();
        var listener = new RecordingListener<string, ListOp>();
        var sequencer = Create(stage, listener);
        Task<SubmitResult> inFlight = sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).AsTask();
        await sequencer.BarrierAsync();

        using var abandon = new CancellationTokenSource();
        Task closed = sequencer.CloseAsync(abandon.Token);
        await abandon.CancelAsync();

        await closed.WithTimeout();
        Assert.True(stage[0].IsCanceled);
        Assert.Equal(SubmitStatus.Closed, (await inFlight.WithTimeout()).Status);
        Assert.Empty(listener.Records);
        Assert.Empty(listener.Faulted);
        Assert.Equal(SequencerState.Disposed, sequencer.State);
    }

    [Fact]
    public async Task Exclusive_action_exceptions_reach_the_caller_and_the_document_carries_on()
    {
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(new NoopDurabilityStage(), listener);

        await Assert.ThrowsAsync<FormatException>(() => sequencer.RunExclusiveAsync<int>(_ => throw new FormatException()).AsTask());

        Assert.Equal(SubmitStatus.Acked, (await sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout()).Status);
        Assert.Equal(SequencerState.Active, sequencer.State);
    }

    [Fact]
    public async Task Last_activity_follows_the_time_provider()
    {
        var time = new ManualTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_000_000));
        var options = new SequencerOptions();
        var stage = new RecordingDurabilityStage();
        await using var sequencer = new DocumentSequencer<string, ListOp>(
            "doc", TestListType.Instance, DocumentState.Empty(TestListType.Instance, options), stage, null, new RecordingListener<string, ListOp>(), options, time);
        Assert.Equal(time.GetUtcNow(), sequencer.LastActivity);

        time.Advance(TimeSpan.FromMinutes(5));
        await sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout();

        Assert.Equal(time.GetUtcNow(), sequencer.LastActivity);
        Assert.Equal(time.GetUtcNow().ToUnixTimeMilliseconds(), Assert.Single(stage.OpsAfter("doc", 0)).TimestampMs);
    }

    private sealed class ThrowingFenceListener : ISequencerListener<string, ListOp>
    {
        public void OnCommitted(in CommittedBatch<string, ListOp> batch)
        {
        }

        public void OnFenced(VersionConflictException conflict) => throw new FormatException("listener bug");

        public void OnFaulted(Exception exception)
        {
        }
    }

    private sealed class ThrowingStage : IDurabilityStage
    {
        public ValueTask CommitAsync(OpRecord op, CancellationToken cancellationToken) => throw new InvalidOperationException("synchronous failure");
    }
}
