using Collab.Engine.Sequencing;
using Collab.Engine.Text;

namespace Collab.Engine.Tests.Sequencing;

/// <summary>
/// <see cref="DocumentSequencer{TSnapshot, TOp}.SubmitContinuingOnWorkerAsync"/>: the caller's continuation runs inline on
/// the worker, right after the op's batch was published, even when the sequencer's options ask for asynchronous
/// continuations (the server's default, which every other caller keeps).
/// </summary>
public sealed class ContinueOnWorkerTests
{
    [Fact]
    public async Task The_continuation_runs_on_the_worker_thread_that_published_the_op()
    {
        var listener = new ThreadRecordingListener();
        var options = new SequencerOptions { RunContinuationsAsynchronously = true };
        // The test completes each commit by hand, after it has registered the continuation: with a stage that commits
        // at once, the worker could publish before the registration (a loaded machine delays the test thread), and a
        // continuation registered on a completed submit runs on the registering thread, as it should.
        var stage = new ControllableDurabilityStage();
        await using var sequencer = new DocumentSequencer<Rope, TextOp>(
            "inline", TextType.Instance, DocumentState.Empty(TextType.Instance, options), stage, null, listener, options);

        for (long seq = 1; seq <= 200; seq++)
        {
            var continued = new TaskCompletionSource<(int Thread, int PublishedOn, bool InPublish)>(TaskCreationOptions.RunContinuationsAsynchronously);
            ValueTask<SubmitResult> pending = sequencer.SubmitContinuingOnWorkerAsync(new Submission<TextOp>("c", seq, sequencer.Version, TextOp.Insert(0, "a"), null));
            OnCompletedWithoutContext(pending, () =>
            {
                SubmitResult result = pending.GetAwaiter().GetResult();
                Assert.Equal(SubmitStatus.Acked, result.Status);
                // Inline means inside the worker's publish of the batch, not merely on the same (pooled) thread later.
                bool inPublish = new System.Diagnostics.StackTrace().GetFrames().Any(static f => f.GetMethod()?.Name == "FlushPublish");
                continued.SetResult((Environment.CurrentManagedThreadId, Volatile.Read(ref listener.LastThread), inPublish));
            });
            Assert.False(pending.IsCompleted);
            await sequencer.BarrierAsync();
            Assert.Equal(seq, stage.CallCount);
            stage[(int)seq - 1].Complete();

            (int thread, int publishedOn, bool inPublish) = await continued.Task;
            Assert.Equal(publishedOn, thread);
            Assert.True(inPublish, "the continuation ran after the worker's publish, not inside it");
        }
    }

    /// <summary>As the server's session registers it: no captured context (the test runner's would post it elsewhere).</summary>
    private static void OnCompletedWithoutContext(ValueTask<SubmitResult> pending, Action continuation) =>
        pending.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(continuation);

    private sealed class ThreadRecordingListener : ISequencerListener<Rope, TextOp>
    {
        public int LastThread;

        public void OnCommitted(in CommittedBatch<Rope, TextOp> batch) => Volatile.Write(ref LastThread, Environment.CurrentManagedThreadId);

        public void OnFenced(VersionConflictException conflict)
        {
        }

        public void OnFaulted(Exception exception)
        {
        }
    }
}
