using System.Diagnostics;
using System.Threading.Channels;
using System.Threading.Tasks.Sources;
using Collab.Engine.Sequencing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Collab.Server.Storage;

/// <summary>
/// Makes sequenced ops durable in groups: ops from every document queue up, and one loop appends them to the
/// <see cref="IOpStore"/> as a batch (one transaction, one fsync) when <see cref="StorageOptions.MaxBatchOps"/> are
/// queued or, under load (<see cref="StorageOptions.BatchDelayMinOps"/>), the oldest has waited
/// <see cref="StorageOptions.MaxBatchDelay"/>; at light load as soon as the previous commit is done. One batch is in
/// flight at a time while the next one fills, so a document's later ops can never commit before its earlier ones; a
/// second loop completes the callers of a committed batch (in call order) while the next batch is already being written.
/// At light load with SQLite (<see cref="StorageOptions.InlineCommits"/>) an op that finds the stage idle is committed by
/// its caller's own thread (the leader) and completed before <see cref="CommitAsync(OpRecord, CancellationToken)"/> returns; ops that arrive while the
/// leader commits queue for the loops, which take them once the leader is done.
/// </summary>
/// <remarks>
/// <para>A call completes successfully only after its op is committed. A store failure (database down, I/O error) keeps
/// the batch and retries it with capped exponential back-off and jitter; the calls just stay pending and
/// <see cref="IsHealthy"/> turns false until a commit succeeds again.</para>
/// <para>When another writer already owns a version of a document (<see cref="AppendResult.ConflictedDocs"/>), that
/// document's calls in the batch, its calls still queued, and every later call fail with
/// <see cref="VersionConflictException"/> until <see cref="ClearFence"/>: a stale sequencer's pipelined ops must not
/// commit behind a rival's. The other documents of the batch commit normally.</para>
/// <para>Cancellation is observed when a call is made and when its batch is formed: a cancelled op and the ops queued
/// after it for the same document complete with <see cref="OperationCanceledException"/> (pass the document's
/// lifetime token). Ops already handed to the store are not recalled. <see cref="DisposeAsync"/> flushes the queue,
/// and after <see cref="StorageOptions.ShutdownTimeout"/> cancels what could not be written. The store is not owned.</para>
/// <para>Steady state allocates nothing per op: each call's completion is a pooled <see cref="IValueTaskSource"/>, and
/// batches are recycled.</para>
/// </remarks>
public sealed class GroupCommitStage : IDurabilityStage, IAsyncDisposable
{
    private const int PoolCapacity = 16_384;

    /// <summary>Batches in rotation: one filling or committing, the others waiting for or undergoing completion.</summary>
    private const int BatchesInRotation = 3;

    private readonly IOpStore _store;
    private readonly int _maxBatchOps;
    private readonly long _maxBatchDelayTicks;
    private readonly int _batchDelayMinOps;
    private readonly TimeSpan _retryInitialDelay;
    private readonly TimeSpan _retryMaxDelay;
    private readonly TimeSpan _shutdownTimeout;
    private readonly ILogger _logger;
    private readonly StorageMetrics _metrics;
    private readonly bool _inlineCommits;

    /// <summary>The leader's batch (one op); only the thread that set <see cref="_leading"/> touches it.</summary>
    private readonly CommitBatch _leaderBatch = new();

    // Everything below up to the signals is guarded by _gate.
    private readonly Lock _gate = new();
    private readonly List<PendingCommit> _queue = [];
    private readonly Stack<PendingCommit> _pool = new();
    private readonly HashSet<string> _fenced = new(StringComparer.Ordinal);
    private bool _closing;
    private bool _committerWaiting;
    private int _lastBatchOps;

    // A leader's batch is in flight: the commit loop takes nothing until it is done (one batch in flight at a time).
    private bool _leading;

    // Batches the commit loop took that the completion loop has not finished: a leader waits for them (completion order).
    private int _loopBatches;

    private readonly AsyncAutoResetSignal _workSignal = new();
    private readonly Timer _delayTimer;
    private readonly CancellationTokenSource _abort = new();
    private readonly Channel<CommitBatch> _completions = Channel.CreateUnbounded<CommitBatch>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly Channel<CommitBatch> _freeBatches = Channel.CreateBounded<CommitBatch>(new BoundedChannelOptions(BatchesInRotation) { SingleReader = true, SingleWriter = true });
    private readonly Task _committer;
    private readonly Task _completer;
    private Task? _shutdown;
    private volatile bool _healthy = true;

    /// <summary>Starts the stage over <paramref name="store"/> (already initialised; not owned).</summary>
    public GroupCommitStage(IOpStore store, StorageOptions options, ILogger<GroupCommitStage>? logger = null, StorageMetrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _store = store;
        _maxBatchOps = options.MaxBatchOps;
        _maxBatchDelayTicks = (long)(options.MaxBatchDelay.TotalSeconds * Stopwatch.Frequency);
        _batchDelayMinOps = options.BatchDelayMinOps;
        _retryInitialDelay = options.RetryInitialDelay;
        _retryMaxDelay = options.RetryMaxDelay;
        _shutdownTimeout = options.ShutdownTimeout;
        _logger = logger ?? NullLogger<GroupCommitStage>.Instance;
        _metrics = metrics ?? new StorageMetrics();
        _metrics.Ready.Set(1);

        // SQLite commits synchronously on the calling thread; PostgreSQL's append is network I/O, which its loops overlap.
        _inlineCommits = options.InlineCommits && options.Provider == StorageProvider.Sqlite;
        _delayTimer = new Timer(static state => ((AsyncAutoResetSignal)state!).Set(), _workSignal, Timeout.Infinite, Timeout.Infinite);
        for (var i = 0; i < BatchesInRotation; i++)
        {
            _freeBatches.Writer.TryWrite(new CommitBatch());
        }

        _committer = Task.Run(RunCommitterAsync);
        _completer = Task.Run(RunCompleterAsync);
    }

    /// <summary>False while commits are failing and being retried (readiness); true again after the next successful commit.</summary>
    public bool IsHealthy => _healthy;

    /// <summary>Raised (on the commit loop, or the thread of a leader whose commit changed it) when <see cref="IsHealthy"/> changes.</summary>
    public event EventHandler? HealthChanged;

    /// <summary>
    /// Called on the completion loop (or a leader's thread, never at the same time) just before each call is completed (tests check the completion order with it: the
    /// order in which awaiting continuations run is not observable, a late-registered one runs on the thread pool).
    /// </summary>
    internal Action<OpRecord>? CompletionObserver { get; set; }

    /// <summary>
    /// How long the oldest queued op may wait for company (guarded by <see cref="_gate"/>). The delay is for load: after a
    /// small batch a lone op commits at once, by the loop or, when the stage is idle, by a leader.
    /// </summary>
    private long BatchDelayTicks => _lastBatchOps >= _batchDelayMinOps ? _maxBatchDelayTicks : 0;

    /// <summary>Ops queued for the next batch.</summary>
    public int QueuedOps
    {
        get
        {
            lock (_gate)
            {
                return _queue.Count;
            }
        }
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The record can never be stored (empty or oversized id, U+0000, version &lt; 1).</exception>
    public ValueTask CommitAsync(OpRecord op, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateRecord(op);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        PendingCommit pending;
        bool wake = false;
        bool lead = false;
        lock (_gate)
        {
            if (_closing)
            {
                return ValueTask.FromException(new OperationCanceledException("The durability stage is shutting down."));
            }

            pending = _pool.TryPop(out var pooled) ? pooled : new PendingCommit(this);
            pending.Record = op;
            pending.CancellationToken = cancellationToken;
            pending.EnqueuedAt = Stopwatch.GetTimestamp();

            // A call for a fenced document fails, but through the queue: its document's earlier calls may still be
            // waiting for their (failed) completion, and completions keep call order.
            pending.Fenced = _fenced.Count > 0 && _fenced.Contains(op.DocId);
            if (_inlineCommits && !_leading && _loopBatches == 0 && _queue.Count == 0 && !pending.Fenced && BatchDelayTicks == 0)
            {
                // The stage is idle and the loop would commit this op at once: commit it here instead of waking it.
                _leading = true;
                _lastBatchOps = 1;
                lead = true;
            }
            else
            {
                _queue.Add(pending);

                // Wake the committer only when it is parked and this op changes its decision: the queue became non-empty
                // (start the delay) or full (commit now).
                wake = _committerWaiting && (_queue.Count == 1 || _queue.Count >= _maxBatchOps);
                if (wake)
                {
                    _committerWaiting = false;
                }
            }
        }

        if (wake)
        {
            _workSignal.Set();
        }

        // The token is read before the op can complete (and, once its result is read, be pooled again).
        var result = new ValueTask(pending, pending.Version);
        if (lead)
        {
            Lead(pending);
        }

        return result;
    }

    /// <summary>
    /// Commits a lone op on the caller's thread. A synchronous success completes it before <see cref="CommitAsync(OpRecord, CancellationToken)"/>
    /// returns (no thread hand-off at all); a store that goes asynchronous, or fails, finishes (and retries with back-off)
    /// on the thread pool while the op stays pending and later calls queue behind it.
    /// </summary>
    private void Lead(PendingCommit pending)
    {
        var batch = _leaderBatch;
        batch.Add(pending, Outcome.Commit);
        var started = Stopwatch.GetTimestamp();
        ValueTask<AppendResult> append;
        try
        {
            append = _store.AppendAsync(batch.Records, _abort.Token);
        }
        catch (Exception ex)
        {
            append = ValueTask.FromException<AppendResult>(ex);
        }

        if (append.IsCompletedSuccessfully)
        {
            Committed(batch, append.Result, started);
            EndLead(batch);
        }
        else
        {
            _ = FinishLeadAsync(batch, append, started);
        }
    }

    private async Task FinishLeadAsync(CommitBatch batch, ValueTask<AppendResult> append, long started)
    {
        try
        {
            await CommitAsync(batch, append, started).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Only a bug gets here (store failures are retried): fail the leader's op rather than hang it and the queue.
            StorageLog.CommitLoopFailed(_logger, ex);
            batch.Aborted = true;
        }

        EndLead(batch);
    }

    /// <summary>Completes the leader's batch, then lets the commit loop take what queued meanwhile.</summary>
    private void EndLead(CommitBatch batch)
    {
        Complete(batch);
        batch.Clear();
        bool wake;
        lock (_gate)
        {
            _leading = false;
            wake = _committerWaiting && (_queue.Count > 0 || _closing);
            if (wake)
            {
                _committerWaiting = false;
            }
        }

        if (wake)
        {
            _workSignal.Set();
        }
    }

    /// <summary>
    /// Lifts the fence a version conflict put on <paramref name="docId"/>. Call after the document was reloaded from the
    /// store and before its new sequencer commits.
    /// </summary>
    public void ClearFence(string docId)
    {
        lock (_gate)
        {
            _fenced.Remove(docId);
        }
    }

    /// <summary>Whether <paramref name="docId"/> is fenced by a version conflict.</summary>
    public bool IsFenced(string docId)
    {
        lock (_gate)
        {
            return _fenced.Contains(docId);
        }
    }

    /// <summary>Stops taking calls, flushes the queue, and cancels whatever is still unwritten after the shutdown timeout.</summary>
    public ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            if (_shutdown is null)
            {
                _closing = true;
                _committerWaiting = false;

                // Task.Run: the shutdown must not start running inside this lock.
                _shutdown = Task.Run(ShutdownAsync);
            }

            return new ValueTask(_shutdown);
        }
    }

    private async Task ShutdownAsync()
    {
        _workSignal.Set();
        _abort.CancelAfter(_shutdownTimeout);
        await _committer.ConfigureAwait(false);
        await _completer.ConfigureAwait(false);
        await _delayTimer.DisposeAsync().ConfigureAwait(false);
        _abort.Dispose();
        _metrics.QueuedOps.Set(0);
    }

    private async Task RunCommitterAsync()
    {
        try
        {
            while (true)
            {
                var batch = await _freeBatches.Reader.ReadAsync().ConfigureAwait(false);
                if (!await FillAsync(batch).ConfigureAwait(false))
                {
                    break;
                }

                if (batch.Records.Count > 0)
                {
                    await CommitAsync(batch).ConfigureAwait(false);
                }

                _completions.Writer.TryWrite(batch);
            }
        }
        catch (Exception ex)
        {
            // Only a bug gets here (store failures are retried in CommitAsync). Fail loudly rather than hang callers.
            StorageLog.CommitLoopFailed(_logger, ex);
            _completions.Writer.TryComplete(ex);
            throw;
        }

        _completions.Writer.TryComplete();
    }

    /// <summary>Waits until a batch is due and moves it out of the queue. False when shutting down with nothing left.</summary>
    private async ValueTask<bool> FillAsync(CommitBatch batch)
    {
        while (true)
        {
            long waitTicks;
            lock (_gate)
            {
                var count = _queue.Count;
                if (_leading)
                {
                    // One batch in flight at a time: the leader's ends by waking us if anything queued meanwhile.
                    waitTicks = -1;
                }
                else if (count > 0)
                {
                    waitTicks = _queue[0].EnqueuedAt + BatchDelayTicks - Stopwatch.GetTimestamp();
                    if (_closing || count >= _maxBatchOps || waitTicks <= 0)
                    {
                        TakeBatch(batch);
                        _loopBatches++;
                        _metrics.QueuedOps.Set(_queue.Count);
                        return true;
                    }
                }
                else if (_closing)
                {
                    return false;
                }
                else
                {
                    // Nothing arrived while the last batch committed: not under load any more.
                    _lastBatchOps = 0;
                    waitTicks = -1;
                }

                _committerWaiting = true;
            }

            if (waitTicks > 0)
            {
                var dueMs = Math.Max(1, (long)Math.Ceiling(waitTicks * 1000.0 / Stopwatch.Frequency));
                _delayTimer.Change(dueMs, Timeout.Infinite);
            }

            await _workSignal.WaitAsync().ConfigureAwait(false);
            lock (_gate)
            {
                _committerWaiting = false;
            }
        }
    }

    /// <summary>Moves up to MaxBatchOps calls into the batch, completing cancelled ones (and their document's later ones) as cancelled.</summary>
    private void TakeBatch(CommitBatch batch)
    {
        var take = Math.Min(_queue.Count, _maxBatchOps);
        _lastBatchOps = take;
        for (var i = 0; i < take; i++)
        {
            var pending = _queue[i];
            var docId = pending.Record.DocId;
            if (pending.Fenced)
            {
                batch.Add(pending, Outcome.Fenced);
            }
            else if (pending.CancellationToken.IsCancellationRequested || (batch.CancelledDocs?.Contains(docId) ?? false))
            {
                (batch.CancelledDocs ??= new HashSet<string>(StringComparer.Ordinal)).Add(docId);
                batch.Add(pending, Outcome.Cancelled);
            }
            else
            {
                batch.Add(pending, Outcome.Commit);
            }
        }

        _queue.RemoveRange(0, take);
        if (batch.CancelledDocs is { Count: > 0 } cancelled)
        {
            SweepQueue(batch, cancelled, Outcome.Cancelled);
        }
    }

    /// <summary>Moves every queued call of the given documents into the batch with the given outcome. Caller holds _gate.</summary>
    private void SweepQueue(CommitBatch batch, HashSet<string> docs, Outcome outcome)
    {
        var kept = 0;
        for (var i = 0; i < _queue.Count; i++)
        {
            var pending = _queue[i];
            if (docs.Contains(pending.Record.DocId))
            {
                batch.Add(pending, outcome);
            }
            else
            {
                _queue[kept++] = pending;
            }
        }

        _queue.RemoveRange(kept, _queue.Count - kept);
    }

    /// <summary>
    /// Appends the batch until it commits (or the stage is aborted), then fences conflicted documents. A leader passes
    /// its first attempt, already started.
    /// </summary>
    private async Task CommitAsync(CommitBatch batch, ValueTask<AppendResult>? firstAttempt = null, long firstStarted = 0)
    {
        for (var attempt = 0; ; attempt++)
        {
            var started = firstAttempt is null ? Stopwatch.GetTimestamp() : firstStarted;
            Exception failure;
            try
            {
                var append = firstAttempt ?? _store.AppendAsync(batch.Records, _abort.Token);
                firstAttempt = null;
                Committed(batch, await append.ConfigureAwait(false), started);
                return;
            }
            catch (OperationCanceledException) when (_abort.IsCancellationRequested)
            {
                batch.Aborted = true;
                return;
            }
            catch (Exception ex)
            {
                failure = ex;
            }

            _metrics.Failures.Inc();
            SetHealthy(false, failure);
            var delay = BackoffDelay(attempt);
            if (StorageErrors.IsTransient(failure))
            {
                StorageLog.CommitRetrying(_logger, batch.Records.Count, attempt + 1, delay, failure);
            }
            else
            {
                StorageLog.CommitFailedUnexpectedly(_logger, batch.Records.Count, attempt + 1, delay, failure);
            }

            try
            {
                await Task.Delay(delay, _abort.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                batch.Aborted = true;
                return;
            }
        }
    }

    /// <summary>Records a successful append: metrics, fences for conflicted documents, readiness.</summary>
    private void Committed(CommitBatch batch, AppendResult result, long started)
    {
        _metrics.CommitSeconds.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        _metrics.BatchOps.Observe(batch.Records.Count);
        _metrics.Batches.Inc();
        _metrics.Ops.Inc(batch.Records.Count);
        if (result.ConflictedDocs.Count > 0)
        {
            Fence(batch, result.ConflictedDocs);
        }

        SetHealthy(true, null);
    }

    private void Fence(CommitBatch batch, IReadOnlyCollection<string> conflictedDocs)
    {
        lock (_gate)
        {
            foreach (var docId in conflictedDocs)
            {
                _fenced.Add(docId);
                batch.ConflictedDocs.Add(docId);
            }

            // Calls queued behind the conflict for the same documents were sequenced on the lost versions: fail them
            // now (after the batch's own calls, keeping per-document order) rather than let them commit.
            SweepQueue(batch, batch.ConflictedDocs, Outcome.Fenced);
            _metrics.QueuedOps.Set(_queue.Count);
        }

        StorageLog.DocumentsFenced(_logger, batch.ConflictedDocs.Count, conflictedDocs.First());
    }

    private TimeSpan BackoffDelay(int attempt)
    {
        // Exponential back-off with "equal jitter": half fixed, half random, so nodes that lost the database together
        // do not reconnect in lockstep.
        var exponential = _retryInitialDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 30));
        var capped = Math.Min(exponential, _retryMaxDelay.TotalMilliseconds);
        return TimeSpan.FromMilliseconds((capped / 2) + (Random.Shared.NextDouble() * capped / 2));
    }

    private void SetHealthy(bool healthy, Exception? failure)
    {
        if (_healthy == healthy)
        {
            return;
        }

        _healthy = healthy;
        _metrics.Ready.Set(healthy ? 1 : 0);
        if (healthy)
        {
            StorageLog.CommitsRecovered(_logger);
        }
        else
        {
            StorageLog.CommitsFailing(_logger, failure);
        }

        try
        {
            HealthChanged?.Invoke(this, EventArgs.Empty);
        }
        catch (Exception ex)
        {
            StorageLog.HealthHandlerFailed(_logger, ex);
        }
    }

    private async Task RunCompleterAsync()
    {
        var reader = _completions.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out var batch))
            {
                Complete(batch);
                batch.Clear();
                lock (_gate)
                {
                    _loopBatches--;
                }

                _freeBatches.Writer.TryWrite(batch);
            }
        }
    }

    /// <summary>Completes the batch's calls in queue order; continuations run inline here (the completion loop, or the leader).</summary>
    private void Complete(CommitBatch batch)
    {
        var entries = batch.Entries;
        var outcomes = batch.Outcomes;
        for (var i = 0; i < entries.Count; i++)
        {
            // Read everything needed before completing: the caller's continuation returns the entry to the pool.
            var pending = entries[i];
            var record = pending.Record;
            CompletionObserver?.Invoke(record);
            switch (outcomes[i])
            {
                case Outcome.Commit when batch.Aborted:
                    pending.Fail(new OperationCanceledException("The durability stage shut down before the op was committed."));
                    break;
                case Outcome.Commit when !batch.ConflictedDocs.Contains(record.DocId):
                    pending.Succeed();
                    break;
                case Outcome.Commit:
                case Outcome.Fenced:
                    _metrics.Conflicts.Inc();
                    pending.Fail(new VersionConflictException(record.DocId, record.Version));
                    break;
                default:
                    pending.Fail(new OperationCanceledException(pending.CancellationToken));
                    break;
            }
        }
    }

    private void Return(PendingCommit pending)
    {
        lock (_gate)
        {
            if (_pool.Count < PoolCapacity)
            {
                _pool.Push(pending);
            }
        }
    }

    private enum Outcome : byte
    {
        /// <summary>Written in this batch; succeeds unless its document conflicted or the stage aborted.</summary>
        Commit,

        /// <summary>Its token was cancelled (or an earlier op of its document's was) before the batch formed.</summary>
        Cancelled,

        /// <summary>Queued behind a version conflict of its document.</summary>
        Fenced,
    }

    /// <summary>One batch in rotation: the calls in queue order, their outcomes, and the records handed to the store.</summary>
    private sealed class CommitBatch
    {
        public List<PendingCommit> Entries { get; } = [];

        public List<Outcome> Outcomes { get; } = [];

        public List<OpRecord> Records { get; } = [];

        public HashSet<string> ConflictedDocs { get; } = new(StringComparer.Ordinal);

        public HashSet<string>? CancelledDocs { get; set; }

        public bool Aborted { get; set; }

        public void Add(PendingCommit pending, Outcome outcome)
        {
            Entries.Add(pending);
            Outcomes.Add(outcome);
            if (outcome == Outcome.Commit)
            {
                Records.Add(pending.Record);
            }
        }

        public void Clear()
        {
            Entries.Clear();
            Outcomes.Clear();
            Records.Clear();
            ConflictedDocs.Clear();
            CancelledDocs?.Clear();
            Aborted = false;
        }
    }

    /// <summary>A pooled per-call completion. Returned to the pool when the caller has observed the result.</summary>
    private sealed class PendingCommit(GroupCommitStage owner) : IValueTaskSource
    {
        // Continuations run inline on the completion loop: it exists for that, and running them in order is what
        // keeps one document's completions in call order.
        private ManualResetValueTaskSourceCore<bool> _core;

        public OpRecord Record;
        public CancellationToken CancellationToken;
        public long EnqueuedAt;
        public bool Fenced;

        public short Version => _core.Version;

        public void Succeed() => _core.SetResult(true);

        public void Fail(Exception exception) => _core.SetException(exception);

        void IValueTaskSource.GetResult(short token)
        {
            try
            {
                _core.GetResult(token);
            }
            finally
            {
                Record = default;
                CancellationToken = default;
                Fenced = false;
                _core.Reset();
                owner.Return(this);
            }
        }

        ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

        void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
