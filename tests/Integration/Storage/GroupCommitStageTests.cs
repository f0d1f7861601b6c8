using System.Collections.Concurrent;
using Collab.Engine.Sequencing;
using Collab.Server.Storage;
using Prometheus;
using static Collab.Integration.Tests.Storage.StorageTestData;

namespace Collab.Integration.Tests.Storage;

/// <summary>
/// The group-commit stage over a real store (each concrete class picks one), steered through an
/// <see cref="InterceptingStore"/>: ordering, batching, pipelining, fencing, failure handling, shutdown.
/// </summary>
public abstract class GroupCommitStageTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly List<GroupCommitStage> _stages = [];
    private IOpStore? _inner;
    private InterceptingStore? _store;

    /// <summary>The real store underneath (writes here bypass the stage: "another writer").</summary>
    protected IOpStore Inner => _inner ?? throw new InvalidOperationException("Not initialised.");

    private protected InterceptingStore Store => _store ?? throw new InvalidOperationException("Not initialised.");

    protected abstract Task<IOpStore> OpenInnerStoreAsync();

    protected virtual Task CleanupAsync() => Task.CompletedTask;

    /// <summary>Whether the inner store's append completes on the calling thread (SQLite) rather than asynchronously.</summary>
    protected virtual bool StoreCommitsSynchronously => false;

    public async Task InitializeAsync()
    {
        _inner = await OpenInnerStoreAsync();
        _store = new InterceptingStore(_inner);
    }

    public async Task DisposeAsync()
    {
        foreach (var stage in _stages)
        {
            await stage.DisposeAsync();
        }

        if (_inner is not null)
        {
            await _inner.DisposeAsync();
        }

        await CleanupAsync();
    }

    [Fact]
    public async Task Ops_of_many_documents_commit_in_call_order_and_complete_only_after_their_commit()
    {
        var stage = CreateStage();
        const int Docs = 12;
        const int OpsPerDoc = 120;
        const int Window = 10;
        var completions = new ConcurrentDictionary<string, List<long>>();
        var completedBeforeCommit = new ConcurrentQueue<OpRecord>();
        stage.CompletionObserver = record =>
        {
            if (!Store.Committed.ContainsKey((record.DocId, record.Version)))
            {
                completedBeforeCommit.Enqueue(record);
            }

            completions.GetOrAdd(record.DocId, _ => []).Add(record.Version);
        };

        async Task Observe(ValueTask commit, OpRecord record)
        {
            await commit;
            Assert.True(Store.Committed.ContainsKey((record.DocId, record.Version)), $"{record.DocId} v{record.Version} completed before its commit.");
        }

        async Task RunDocument(string docId)
        {
            // A sequencer pipelines: up to Window commits outstanding, issued strictly in version order.
            var outstanding = new Queue<Task>();
            for (var v = 1; v <= OpsPerDoc; v++)
            {
                var record = Op(docId, v, clientId: $"client-{docId}");
                outstanding.Enqueue(Observe(stage.CommitAsync(record, default), record));
                if (outstanding.Count == Window)
                {
                    await outstanding.Dequeue();
                }
            }

            await Task.WhenAll(outstanding);
        }

        await Task.WhenAll(Enumerable.Range(0, Docs).Select(d => Task.Run(() => RunDocument($"doc-{d}")))).WaitAsync(Timeout);

        var expected = Enumerable.Range(1, OpsPerDoc).Select(v => (long)v).ToList();
        Assert.Empty(completedBeforeCommit);
        for (var d = 0; d < Docs; d++)
        {
            Assert.Equal(expected, completions[$"doc-{d}"]);
            AssertSame(Ops($"doc-{d}", 1, OpsPerDoc, clientId: $"client-doc-{d}"), (await Inner.LoadAsync($"doc-{d}", default))!.Ops);
        }

        Assert.Equal(1, Store.MaxConcurrentAppends);
        Assert.Equal(Docs * OpsPerDoc, Store.BatchSizes.Sum());
        Assert.True(stage.IsHealthy);
    }

    [Fact]
    public async Task Everything_queued_while_a_batch_commits_forms_the_next_batch()
    {
        var stage = CreateStage(o => o.MaxBatchDelay = TimeSpan.Zero);
        Store.Hold(0);
        var first = stage.CommitAsync(Op("first", 1), default).AsTask();
        await Store.WaitForAppendsAsync();

        var queued = QueueOps(stage, docs: 30, total: 299);
        Assert.False(first.IsCompleted);
        Assert.DoesNotContain(queued, t => t.IsCompleted);
        Assert.Equal(299, stage.QueuedOps);

        Store.Release(0);
        await Task.WhenAll(queued.Append(first)).WaitAsync(Timeout);

        Assert.Equal([1, 299], Store.BatchSizes);
        Assert.Equal(0, stage.QueuedOps);
    }

    [Fact]
    public async Task Batches_never_exceed_MaxBatchOps()
    {
        var stage = CreateStage(o =>
        {
            o.MaxBatchOps = 100;
            o.MaxBatchDelay = TimeSpan.Zero;
        });
        Store.Hold(0);
        var first = stage.CommitAsync(Op("first", 1), default).AsTask();
        await Store.WaitForAppendsAsync();

        var queued = QueueOps(stage, docs: 7, total: 299);
        Store.Release(0);
        await Task.WhenAll(queued.Append(first)).WaitAsync(Timeout);

        Assert.Equal([1, 100, 100, 99], Store.BatchSizes);
    }

    [Fact]
    public async Task A_full_batch_commits_at_once_and_a_partial_one_waits_for_the_delay()
    {
        var stage = CreateStage(o =>
        {
            o.MaxBatchOps = 10;
            o.MaxBatchDelay = TimeSpan.FromSeconds(1);
        });

        var full = QueueOps(stage, docs: 3, total: 10);
        await Task.WhenAll(full).WaitAsync(Timeout);
        var straggler = stage.CommitAsync(Op("straggler", 1), default).AsTask();

        Assert.Equal([10], Store.BatchSizes);
        Assert.False(straggler.IsCompleted);
        await straggler.WaitAsync(Timeout);
        Assert.Equal([10, 1], Store.BatchSizes);
    }

    [Fact]
    public async Task A_call_stays_pending_until_its_batch_is_committed()
    {
        var stage = CreateStage();
        Store.Hold(0);

        var commit = stage.CommitAsync(Op("doc", 1), default).AsTask();
        await Store.WaitForAppendsAsync();
        await Task.Delay(50);

        Assert.False(commit.IsCompleted);
        Assert.Null(await Inner.LoadAsync("doc", default));
        Store.Release(0);
        await commit.WaitAsync(Timeout);
        Assert.Single((await Inner.LoadAsync("doc", default))!.Ops);
    }

    [Fact]
    public async Task A_version_conflict_fences_the_document_its_queued_ops_and_later_calls_while_other_documents_commit()
    {
        var registry = Metrics.NewCustomRegistry();
        var stage = CreateStage(registry: registry);
        await Inner.AppendAsync(Ops("a", 1, 2, clientId: "rival"), default);
        Store.Hold(0);
        Store.Hold(1);

        var warmup = stage.CommitAsync(Op("w", 1), default).AsTask();
        await Store.WaitForAppendsAsync();
        var a1 = stage.CommitAsync(Op("a", 1), default).AsTask();
        var b1 = stage.CommitAsync(Op("b", 1), default).AsTask();
        Store.Release(0);
        await Store.WaitForAppendsAsync(); // Batch [a1, b1] is in flight.
        var a2 = stage.CommitAsync(Op("a", 2), default).AsTask();
        var b2 = stage.CommitAsync(Op("b", 2), default).AsTask();
        var a3 = stage.CommitAsync(Op("a", 3), default).AsTask();
        Store.Release(1);

        await Task.WhenAll(warmup, b1, b2).WaitAsync(Timeout);
        foreach (var (call, version) in new[] { (a1, 1L), (a2, 2L), (a3, 3L) })
        {
            var conflict = await Assert.ThrowsAsync<VersionConflictException>(() => call.WaitAsync(Timeout));
            Assert.Equal("a", conflict.DocId);
            Assert.Equal(version, conflict.Version);
        }

        Assert.True(stage.IsFenced("a"));
        await Assert.ThrowsAsync<VersionConflictException>(() => stage.CommitAsync(Op("a", 4), default).AsTask());
        Assert.Equal(4, registry.GetCounterValue("collab_storage_conflicts_total"));

        // The document host reloads (rival's 1..2) and lifts the fence; the new sequencer continues at 3.
        stage.ClearFence("a");
        await stage.CommitAsync(Op("a", 3, clientId: "reloaded"), default).AsTask().WaitAsync(Timeout);

        var a = (await Inner.LoadAsync("a", default))!.Ops;
        Assert.Equal(["rival", "rival", "reloaded"], a.Select(o => o.ClientId));
        Assert.Equal([1L, 2], (await Inner.LoadAsync("b", default))!.Ops.Select(o => o.Version));
        Assert.True(stage.IsHealthy);
    }

    [Fact]
    public async Task Store_failures_keep_calls_pending_and_readiness_false_until_a_commit_succeeds()
    {
        var registry = Metrics.NewCustomRegistry();
        var stage = CreateStage(registry: registry);
        var failing = 1;
        Store.FailBefore = _ => Volatile.Read(ref failing) == 1 ? new IOException("the disk went away") : null;
        var changes = new ConcurrentQueue<bool>();
        stage.HealthChanged += (_, _) => changes.Enqueue(stage.IsHealthy);

        var calls = Enumerable.Range(1, 5).Select(v => stage.CommitAsync(Op("doc", v), default).AsTask()).ToList();
        await WaitUntilAsync(() => !stage.IsHealthy);
        await Store.WaitForAppendsAsync(3);

        Assert.DoesNotContain(calls, c => c.IsCompleted);
        Assert.Equal(0, registry.GetGaugeValue("collab_storage_ready"));
        Assert.True(registry.GetCounterValue("collab_storage_commit_failures_total") >= 2);

        Volatile.Write(ref failing, 0);
        await Task.WhenAll(calls).WaitAsync(Timeout);

        Assert.True(stage.IsHealthy);
        Assert.Equal(1, registry.GetGaugeValue("collab_storage_ready"));
        Assert.Equal([false, true], changes);
        Assert.Equal(5, (await Inner.LoadAsync("doc", default))!.Ops.Count);
        Assert.Equal(5, registry.GetCounterValue("collab_storage_ops_total"));
    }

    [Fact]
    public async Task A_commit_whose_acknowledgement_was_lost_is_retried_without_a_conflict_or_a_duplicate()
    {
        var stage = CreateStage();
        Store.FailAfter = attempt => attempt == 0 ? new IOException("connection reset during COMMIT") : null;

        var calls = Enumerable.Range(1, 20).Select(v => stage.CommitAsync(Op("doc", v), default).AsTask()).ToList();
        await Task.WhenAll(calls).WaitAsync(Timeout);

        Assert.True(Store.BatchSizes.Count >= 2);
        AssertSame(Ops("doc", 1, 20), (await Inner.LoadAsync("doc", default))!.Ops);
        Assert.False(stage.IsFenced("doc"));
    }

    [Fact]
    public async Task A_cancelled_op_and_its_documents_later_ops_are_cancelled_while_others_commit()
    {
        var stage = CreateStage();
        Assert.True(stage.CommitAsync(Op("x", 1), new CancellationToken(canceled: true)).AsTask().IsCanceled);

        Store.Hold(0);
        var warmup = stage.CommitAsync(Op("w", 1), default).AsTask();
        await Store.WaitForAppendsAsync();
        using var documentLifetime = new CancellationTokenSource();
        var a1 = stage.CommitAsync(Op("a", 1), documentLifetime.Token).AsTask();
        var b1 = stage.CommitAsync(Op("b", 1), default).AsTask();
        var a2 = stage.CommitAsync(Op("a", 2), documentLifetime.Token).AsTask();
        await documentLifetime.CancelAsync();
        Store.Release(0);

        await Task.WhenAll(warmup, b1).WaitAsync(Timeout);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a1.WaitAsync(Timeout));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a2.WaitAsync(Timeout));
        Assert.Null(await Inner.LoadAsync("a", default));
        Assert.Null(await Inner.LoadAsync("x", default));
    }

    [Fact]
    public async Task Under_load_the_delay_holds_a_partial_batch_open()
    {
        var stage = CreateStage(o =>
        {
            o.MaxBatchDelay = TimeSpan.FromSeconds(1);
            o.BatchDelayMinOps = 10;
        });
        Store.Hold(0);
        var first = stage.CommitAsync(Op("first", 1), default).AsTask();
        await Store.WaitForAppendsAsync();

        // Twelve ops arrive during the first commit: the stage is under load now.
        var burst = QueueOps(stage, docs: 3, total: 12);
        Store.Hold(1);
        Store.Release(0);
        await Store.WaitForAppendsAsync();
        var late = QueueOps(stage, docs: 2, total: 3, prefix: "late");
        Store.Release(1);
        await Task.WhenAll(burst.Append(first)).WaitAsync(Timeout);

        // The batch before held 12 >= 10 ops: the three late ones wait for the delay instead of committing at once.
        Assert.DoesNotContain(late, t => t.IsCompleted);
        Assert.Equal([1, 12], Store.BatchSizes);
        await Task.WhenAll(late).WaitAsync(Timeout);
        Assert.Equal([1, 12, 3], Store.BatchSizes);
    }

    [Fact]
    public async Task At_light_load_an_op_commits_without_waiting_for_the_delay()
    {
        var stage = CreateStage(o =>
        {
            o.MaxBatchDelay = TimeSpan.FromSeconds(1);
            o.BatchDelayMinOps = 10;
        });

        // Batches of one op, each after the previous commit: never load, so never the 1 s delay (five ops would take
        // five seconds if they waited; a commit of one op takes milliseconds).
        var started = System.Diagnostics.Stopwatch.StartNew();
        for (var v = 1; v <= 5; v++)
        {
            await stage.CommitAsync(Op("light", v), default).AsTask().WaitAsync(Timeout);
        }

        Assert.True(started.Elapsed < TimeSpan.FromSeconds(1), $"five lone ops took {started.Elapsed}");
        Assert.Equal([1, 1, 1, 1, 1], Store.BatchSizes);
    }

    [Fact]
    public async Task Dispose_flushes_queued_ops_and_later_calls_are_cancelled()
    {
        var stage = CreateStage(o => o.MaxBatchDelay = TimeSpan.FromSeconds(1));
        var calls = QueueOps(stage, docs: 5, total: 50);

        await stage.DisposeAsync().AsTask().WaitAsync(Timeout);

        Assert.All(calls, c => Assert.True(c.IsCompletedSuccessfully));
        var stored = 0;
        for (var d = 0; d < 5; d++)
        {
            stored += (await Inner.LoadAsync($"doc-{d}", default))!.Ops.Count;
        }

        Assert.Equal(50, stored);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stage.CommitAsync(Op("late", 1), default).AsTask());
    }

    [Fact]
    public async Task Dispose_while_the_store_is_down_cancels_pending_calls_after_the_shutdown_timeout()
    {
        var stage = CreateStage(o => o.ShutdownTimeout = TimeSpan.FromMilliseconds(300));
        Store.FailBefore = _ => new IOException("database unreachable");
        var calls = Enumerable.Range(1, 3).Select(v => stage.CommitAsync(Op("doc", v), default).AsTask()).ToList();
        await WaitUntilAsync(() => !stage.IsHealthy);

        await stage.DisposeAsync().AsTask().WaitAsync(Timeout);

        foreach (var call in calls)
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        }

        Assert.Null(await Inner.LoadAsync("doc", default));
    }

    // ---- The leader: an op that finds the stage idle is committed by its caller's thread (StorageOptions.InlineCommits) ----

    [Fact]
    public async Task An_op_that_finds_the_stage_idle_is_committed_by_its_caller_before_the_call_returns()
    {
        var registry = Metrics.NewCustomRegistry();
        var stage = CreateLeaderStage(registry: registry);

        for (var v = 1; v <= 3; v++)
        {
            var commit = stage.CommitAsync(Op("lone", v), default);
            if (StoreCommitsSynchronously)
            {
                // Done on this thread: no commit loop, no completion loop in between.
                Assert.True(commit.IsCompletedSuccessfully, $"v{v} was not committed inline");
            }

            await commit.AsTask().WaitAsync(Timeout);
            Assert.True(Store.Committed.ContainsKey(("lone", v)));
        }

        Assert.Equal([1, 1, 1], Store.BatchSizes);
        Assert.Equal(3, registry.GetCounterValue("collab_storage_ops_total"));
        Assert.Equal(3, registry.GetCounterValue("collab_storage_batches_total"));
        AssertSame(Ops("lone", 1, 3), (await Inner.LoadAsync("lone", default))!.Ops);
    }

    [Fact]
    public async Task Without_inline_commits_a_lone_op_goes_through_the_commit_loop()
    {
        var stage = CreateLeaderStage(o => o.InlineCommits = false);
        Store.Hold(0);

        var commit = stage.CommitAsync(Op("loop", 1), default);
        Assert.False(commit.IsCompleted);
        await Store.WaitForAppendsAsync();
        Store.Release(0);
        await commit.AsTask().WaitAsync(Timeout);
        Assert.Equal([1], Store.BatchSizes);
    }

    [Fact]
    public async Task Ops_queued_while_a_leader_commits_form_the_next_batch_in_call_order_and_never_overlap_it()
    {
        var stage = CreateLeaderStage();
        var order = new ConcurrentQueue<(string DocId, long Version)>();
        stage.CompletionObserver = record => order.Enqueue((record.DocId, record.Version));
        Store.Hold(0);

        var a1 = stage.CommitAsync(Op("a", 1), default).AsTask(); // the leader, held in the store
        await Store.WaitForAppendsAsync();
        var followers = new List<Task>
        {
            stage.CommitAsync(Op("a", 2), default).AsTask(),
            stage.CommitAsync(Op("b", 1), default).AsTask(),
            stage.CommitAsync(Op("a", 3), default).AsTask(),
        };
        await Task.Delay(50);
        Assert.False(a1.IsCompleted);
        Assert.DoesNotContain(followers, f => f.IsCompleted);
        Assert.Equal([1], Store.BatchSizes); // the loop waits for the leader: one batch in flight at a time

        Store.Release(0);
        await Task.WhenAll(followers.Append(a1)).WaitAsync(Timeout);

        Assert.Equal([1, 3], Store.BatchSizes);
        Assert.Equal(1, Store.MaxConcurrentAppends);
        Assert.Equal([("a", 1L), ("a", 2L), ("b", 1L), ("a", 3L)], order);
        AssertSame(Ops("a", 1, 3), (await Inner.LoadAsync("a", default))!.Ops);

        // The stage is idle again: the next lone op leads (a batch of one, not a third batch with the delay).
        await stage.CommitAsync(Op("b", 2), default).AsTask().WaitAsync(Timeout);
        Assert.Equal([1, 3, 1], Store.BatchSizes);
    }

    [Fact]
    public async Task A_leaders_store_failure_is_retried_with_back_off_while_followers_wait_behind_it()
    {
        var registry = Metrics.NewCustomRegistry();
        var stage = CreateLeaderStage(registry: registry);
        var order = new ConcurrentQueue<(string DocId, long Version)>();
        stage.CompletionObserver = record => order.Enqueue((record.DocId, record.Version));
        var failing = 1;
        Store.FailBefore = _ => Volatile.Read(ref failing) == 1 ? new IOException("the disk went away") : null;

        var leader = stage.CommitAsync(Op("doc", 1), default);
        Assert.False(leader.IsCompleted); // a failed inline attempt leaves the op pending, never failed
        var leaderTask = leader.AsTask();
        await WaitUntilAsync(() => !stage.IsHealthy);
        var followers = new List<Task>
        {
            stage.CommitAsync(Op("doc", 2), default).AsTask(),
            stage.CommitAsync(Op("other", 1), default).AsTask(),
        };
        await Store.WaitForAppendsAsync(3); // the inline attempt and at least two retries

        Assert.False(leaderTask.IsCompleted);
        Assert.DoesNotContain(followers, f => f.IsCompleted);
        Assert.All(Store.BatchSizes, size => Assert.Equal(1, size)); // only the leader's op is retried; the others queue
        Assert.True(registry.GetCounterValue("collab_storage_commit_failures_total") >= 2);

        Volatile.Write(ref failing, 0);
        await Task.WhenAll(followers.Append(leaderTask)).WaitAsync(Timeout);

        Assert.True(stage.IsHealthy);
        Assert.Equal([("doc", 1L), ("doc", 2L), ("other", 1L)], order);
        Assert.Equal(2, Store.BatchSizes[^1]);
        AssertSame(Ops("doc", 1, 2), (await Inner.LoadAsync("doc", default))!.Ops);
    }

    [Fact]
    public async Task A_cancelled_follower_and_its_documents_later_ops_are_cancelled_while_the_leader_and_others_commit()
    {
        var stage = CreateLeaderStage();
        Store.Hold(0);
        var leader = stage.CommitAsync(Op("a", 1), default).AsTask();
        await Store.WaitForAppendsAsync();
        using var documentLifetime = new CancellationTokenSource();
        var a2 = stage.CommitAsync(Op("a", 2), documentLifetime.Token).AsTask();
        var b1 = stage.CommitAsync(Op("b", 1), default).AsTask();
        var a3 = stage.CommitAsync(Op("a", 3), default).AsTask();
        await documentLifetime.CancelAsync();
        Store.Release(0);

        await Task.WhenAll(leader, b1).WaitAsync(Timeout);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a2.WaitAsync(Timeout));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a3.WaitAsync(Timeout));
        Assert.Equal([1L], (await Inner.LoadAsync("a", default))!.Ops.Select(o => o.Version));
        Assert.Single((await Inner.LoadAsync("b", default))!.Ops);
    }

    [Fact]
    public async Task A_leader_that_hits_a_rivals_version_is_fenced_like_a_batch()
    {
        var stage = CreateLeaderStage();
        await Inner.AppendAsync(Ops("a", 1, 1, clientId: "rival"), default);

        var conflict = await Assert.ThrowsAsync<VersionConflictException>(() => stage.CommitAsync(Op("a", 1), default).AsTask().WaitAsync(Timeout));
        Assert.Equal(1, conflict.Version);
        Assert.True(stage.IsFenced("a"));
        await Assert.ThrowsAsync<VersionConflictException>(() => stage.CommitAsync(Op("a", 2), default).AsTask().WaitAsync(Timeout));
        await stage.CommitAsync(Op("b", 1), default).AsTask().WaitAsync(Timeout);
        Assert.Equal(["rival"], (await Inner.LoadAsync("a", default))!.Ops.Select(o => o.ClientId));
    }

    [Fact]
    public async Task Dispose_waits_for_a_leader_mid_commit_then_flushes_its_followers()
    {
        var stage = CreateLeaderStage();
        Store.Hold(0);
        var leader = stage.CommitAsync(Op("doc", 1), default).AsTask();
        await Store.WaitForAppendsAsync();
        var follower = stage.CommitAsync(Op("doc", 2), default).AsTask();

        var dispose = stage.DisposeAsync().AsTask();
        await Task.Delay(100);
        Assert.False(dispose.IsCompleted); // the store is still in the leader's hands
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stage.CommitAsync(Op("late", 1), default).AsTask());

        Store.Release(0);
        await dispose.WaitAsync(Timeout);
        await Task.WhenAll(leader, follower).WaitAsync(Timeout);
        AssertSame(Ops("doc", 1, 2), (await Inner.LoadAsync("doc", default))!.Ops);
    }

    [Fact]
    public async Task Dispose_cancels_a_leader_stuck_in_the_store_after_the_shutdown_timeout()
    {
        var stage = CreateLeaderStage(o => o.ShutdownTimeout = TimeSpan.FromMilliseconds(300));
        Store.Close();
        var leader = stage.CommitAsync(Op("doc", 1), default).AsTask();
        await Store.WaitForAppendsAsync();
        var follower = stage.CommitAsync(Op("doc", 2), default).AsTask();

        await stage.DisposeAsync().AsTask().WaitAsync(Timeout);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leader);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => follower);
        Assert.Null(await Inner.LoadAsync("doc", default));
    }

    [Fact]
    public void Records_that_can_never_be_stored_are_rejected_at_the_door()
    {
        var stage = CreateStage();
        Assert.Throws<ArgumentException>(() => Started(stage.CommitAsync(Op("bad\0id", 1), default)));
        Assert.Throws<ArgumentException>(() => Started(stage.CommitAsync(Op("doc", 0), default)));
        Assert.Empty(Store.BatchSizes);
    }

    /// <summary>For a call expected to throw before it returns its commit.</summary>
    private static void Started(ValueTask commit) => Assert.Fail($"The call returned a commit ({commit.IsCompleted}) instead of throwing.");

    private GroupCommitStage CreateStage(Action<StorageOptions>? configure = null, CollectorRegistry? registry = null)
    {
        var options = new StorageOptions
        {
            MaxBatchDelay = TimeSpan.FromMilliseconds(1),
            BatchDelayMinOps = 0, // the tests that set a delay mean it to apply to every batch
            RetryInitialDelay = TimeSpan.FromMilliseconds(10),
            RetryMaxDelay = TimeSpan.FromMilliseconds(100),
        };
        configure?.Invoke(options);
        var stage = new GroupCommitStage(Store, options, metrics: new StorageMetrics(registry ?? Metrics.NewCustomRegistry()));
        _stages.Add(stage);
        return stage;
    }

    /// <summary>A stage whose lone ops commit inline (at light load: the delay applies only after 1,000-op batches).</summary>
    private GroupCommitStage CreateLeaderStage(Action<StorageOptions>? configure = null, CollectorRegistry? registry = null) =>
        CreateStage(
            o =>
            {
                o.BatchDelayMinOps = 1_000;
                o.InlineCommits = true;
                configure?.Invoke(o);
            },
            registry);

    /// <summary>Queues <paramref name="total"/> ops spread round-robin over <paramref name="docs"/> documents (versions from 1).</summary>
    private static List<Task> QueueOps(GroupCommitStage stage, int docs, int total, string prefix = "doc")
    {
        var versions = new long[docs];
        var calls = new List<Task>(total);
        for (var i = 0; i < total; i++)
        {
            var d = i % docs;
            calls.Add(stage.CommitAsync(Op($"{prefix}-{d}", ++versions[d]), default).AsTask());
        }

        return calls;
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "Condition not reached in time.");
            await Task.Delay(5);
        }
    }
}

/// <summary>Reads metric values from a custom registry in tests.</summary>
internal static class RegistryExtensions
{
    public static double GetCounterValue(this CollectorRegistry registry, string name) =>
        Metrics.WithCustomRegistry(registry).CreateCounter(name, string.Empty).Value;

    public static double GetGaugeValue(this CollectorRegistry registry, string name) =>
        Metrics.WithCustomRegistry(registry).CreateGauge(name, string.Empty).Value;
}
