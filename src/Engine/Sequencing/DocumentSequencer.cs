using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Collab.Engine.Sequencing;

/// <summary>
/// Orders the concurrent edits of one document: deduplicates, transforms each submission against the ops sequenced after
/// its base version, assigns the next version, applies it, encodes it once and hands it to the durability stage; an op is
/// acknowledged and published only once it is durable, strictly in version order.
/// </summary>
/// <remarks>
/// <para>
/// Concurrency: a multi-producer single-consumer mailbox. Producers push onto a lock-free stack with one CAS; the first
/// push into an idle mailbox schedules the worker on the thread pool (Interlocked flag, as in Kestrel's IOQueue). The worker
/// takes the whole stack with one exchange, reverses it into arrival order and processes it; at most one worker runs at a
/// time, so every piece of document state below "worker-only" is touched by one thread at a time without locks. Commit
/// completions and history reads finish on other threads and come back through the same mailbox.
/// </para>
/// <para>
/// Pipelining: while a commit is pending later ops are sequenced and handed to the stage; completed commits are published
/// in batches of consecutive versions (one <see cref="ISequencerListener{TSnapshot, TOp}.OnCommitted"/> per batch) before
/// their submissions complete.
/// </para>
/// </remarks>
public sealed class DocumentSequencer<TSnapshot, TOp> : IAsyncDisposable
    where TSnapshot : notnull
    where TOp : notnull
{
    private static readonly ObjectPool<SubmitOperation> s_operationPool = new(Math.Max(64, Environment.ProcessorCount * 16));

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_encodeBuffer;

    private readonly IOtType<TSnapshot, TOp> _type;
    private readonly IDurabilityStage _durability;
    private readonly IHistorySource? _history;
    private readonly ISequencerListener<TSnapshot, TOp> _listener;
    private readonly SequencerOptions _options;
    private readonly TimeProvider _time;
    private readonly Worker _worker;
    private readonly Action _resumeAfterHistory;

    // Cancelled when the document stops (fenced, faulted, abandoned close) so the stage and history source give up.
    // Never disposed: it has no timer, so there is nothing to release, and late callers may still read its token.
    private readonly CancellationTokenSource _lifetime = new();
    private readonly CancellationToken _lifetimeToken;

    // Shared with producers.
    private WorkItem? _mailbox;
    private int _scheduled;
    private int _pendingCount;
    private int _state;
    private int _disposeRequested;
    private long _lastActivityMs;
    private long _version;
    private long _committedVersion;
    private Task? _closeTask;
    private Exception? _fault;

    // Worker-only.
    private WorkItem? _local;
    private long _now;
    private SubmitOperation? _suspended;
    private ValueTask<IReadOnlyList<OpRecord>> _historyRead;
    private ValueTask<OpLookup> _lookup;
    private TSnapshot _snapshot;
    private TSnapshot _committedSnapshot;
    private readonly HistoryWindow<TOp> _window;
    private readonly DedupeState _dedupe;
    private SubmitOperation? _pendingHead;
    private SubmitOperation? _pendingTail;
    private int _outstandingCommits;
    private List<SubmitOperation>? _duplicateWaiters;
    private bool _publishDue;
    private bool _stopped;
    // Grown on the first publish: a document that is only read never needs them.
    private OpRecord[] _batchRecords = [];
    private TOp[] _batchOps = [];
    private OpTimestamps[] _batchTimestamps = [];
    private CloseOperation? _close;

    /// <summary>Creates the sequencer of <paramref name="docId"/> starting from <paramref name="initial"/> (which it takes ownership of).</summary>
    public DocumentSequencer(
        string docId,
        IOtType<TSnapshot, TOp> type,
        DocumentState<TSnapshot, TOp> initial,
        IDurabilityStage durability,
        IHistorySource? history,
        ISequencerListener<TSnapshot, TOp> listener,
        SequencerOptions options,
        TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(docId);
        ArgumentNullException.ThrowIfNull(type);
        ArgumentNullException.ThrowIfNull(initial);
        ArgumentNullException.ThrowIfNull(durability);
        ArgumentNullException.ThrowIfNull(listener);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();

        DocId = docId;
        _type = type;
        _durability = durability;
        _history = history;
        _listener = listener;
        _options = options;
        _time = time ?? TimeProvider.System;
        _worker = new Worker(this);
        _resumeAfterHistory = () => ThreadPool.UnsafeQueueUserWorkItem(_worker, preferLocal: false);
        _lifetimeToken = _lifetime.Token;

        _snapshot = initial.Snapshot;
        _committedSnapshot = initial.Snapshot;
        _version = initial.Version;
        _committedVersion = initial.Version;
        _dedupe = initial.Dedupe;
        _window = new HistoryWindow<TOp>(initial.Version - initial.RecentOps.Count);
        foreach (SequencedOp<TOp> recent in initial.RecentOps)
        {
            if (!string.Equals(recent.Record.DocId, docId, StringComparison.Ordinal))
            {
                throw new ArgumentException($"Recent op {recent.Record.Version} belongs to document '{recent.Record.DocId}', not '{docId}'.", nameof(initial));
            }

            _window.Append(recent.Record, recent.Op, type.SizeOf(recent.Op));
        }

        _window.Trim(_committedVersion, options.HistoryMaxOps, options.HistoryMaxBytes);
        _lastActivityMs = NowMs();
    }

    /// <summary>The document this sequencer orders ops for.</summary>
    public string DocId { get; }

    /// <summary>The committed (durable and published) version.</summary>
    public long CommittedVersion => Volatile.Read(ref _committedVersion);

    /// <summary>The sequenced version: <see cref="CommittedVersion"/> plus ops still waiting for their commit.</summary>
    public long Version => Volatile.Read(ref _version);

    /// <summary>Submissions accepted and not yet completed.</summary>
    public int PendingCount => Volatile.Read(ref _pendingCount);

    /// <summary>Where the sequencer is in its life: active, fenced, faulted or disposed.</summary>
    public SequencerState State => Volatile.Read(ref _disposeRequested) != 0 ? SequencerState.Disposed : (SequencerState)Volatile.Read(ref _state);

    /// <summary>Why the sequencer is <see cref="SequencerState.Faulted"/> (or the version conflict that fenced it); null while healthy.</summary>
    public Exception? Fault => Volatile.Read(ref _fault);

    /// <summary>When the last submission or exclusive action was processed (for closing idle documents).</summary>
    public DateTimeOffset LastActivity => DateTimeOffset.FromUnixTimeMilliseconds(Volatile.Read(ref _lastActivityMs));

    /// <summary>
    /// Submits an op. Completes once the op is durably committed (<see cref="SubmitStatus.Acked"/>) or was sequenced
    /// before (<see cref="SubmitStatus.Duplicate"/>), or with the reason it was refused. Never throws for a refused op;
    /// <paramref name="cancellationToken"/> is observed until the op is sequenced (a cancelled submission that was not
    /// sequenced throws <see cref="OperationCanceledException"/>); once sequenced the op completes with its commit.
    /// </summary>
    /// <remarks>Lock-free; past <see cref="SequencerOptions.MaxPendingSubmissions"/> it returns <see cref="SubmitStatus.Overloaded"/> synchronously. Await the result exactly once.</remarks>
    public ValueTask<SubmitResult> SubmitAsync(Submission<TOp> submission, CancellationToken cancellationToken = default) =>
        Submit(submission, continueOnWorker: false, cancellationToken);

    /// <summary>
    /// <see cref="SubmitAsync"/>, with the caller's continuation run inline on the worker whatever
    /// <see cref="SequencerOptions.RunContinuationsAsynchronously"/> says: for a continuation that is quick and never
    /// blocks, it saves a thread-pool work item (and, on an idle core, a wake-up) per op.
    /// </summary>
    public ValueTask<SubmitResult> SubmitContinuingOnWorkerAsync(Submission<TOp> submission, CancellationToken cancellationToken = default) =>
        Submit(submission, continueOnWorker: true, cancellationToken);

    private ValueTask<SubmitResult> Submit(in Submission<TOp> submission, bool continueOnWorker, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<SubmitResult>(cancellationToken);
        }

        if (Volatile.Read(ref _disposeRequested) != 0 || Volatile.Read(ref _state) != (int)SequencerState.Active)
        {
            return new ValueTask<SubmitResult>(StoppedResult());
        }

        if (Interlocked.Increment(ref _pendingCount) > _options.MaxPendingSubmissions)
        {
            Interlocked.Decrement(ref _pendingCount);
            return new ValueTask<SubmitResult>(SubmitResult.Error(
                SubmitStatus.Overloaded, CommittedVersion, $"More than {_options.MaxPendingSubmissions} submissions are pending for document '{DocId}'."));
        }

        SubmitOperation operation = s_operationPool.TryRent() ?? new SubmitOperation();
        operation.Initialize(this, submission, continueOnWorker, cancellationToken);
        var result = new ValueTask<SubmitResult>(operation, operation.Token);
        Post(operation);
        return result;
    }

    /// <summary>
    /// Runs <paramref name="action"/> on the worker, serialized with submissions and <see cref="ISequencerListener{TSnapshot, TOp}.OnCommitted"/>,
    /// against a consistent committed view. Whatever the action registers sees every later op through OnCommitted, and none
    /// twice: use it to attach a subscriber without gap or duplicate. The action must be quick and must not block.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The sequencer was disposed.</exception>
    public ValueTask<T> RunExclusiveAsync<T>(Func<CommittedView<TSnapshot, TOp>, T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        if (Volatile.Read(ref _disposeRequested) != 0)
        {
            return ValueTask.FromException<T>(new ObjectDisposedException(GetType().Name, $"The sequencer of document '{DocId}' is disposed."));
        }

        var operation = new ExclusiveOperation<T>(action, _options.RunContinuationsAsynchronously);
        var result = new ValueTask<T>(operation, operation.Token);
        Post(operation);
        return result;
    }

    /// <summary>Closes gracefully: see <see cref="CloseAsync"/> with no cancellation.</summary>
    public ValueTask DisposeAsync() => new(CloseAsync(CancellationToken.None));

    /// <summary>
    /// Stops accepting submissions (new and queued ones get <see cref="SubmitStatus.Closed"/>) and completes once every op
    /// already handed to the durability stage has finished: committed ops are published and acknowledged as usual.
    /// Cancelling <paramref name="abandon"/> gives up on them instead: the stage is cancelled and their submissions get
    /// <see cref="SubmitStatus.Closed"/> (they are deduplicated if they did commit). Idempotent; later calls return the first call's task.
    /// </summary>
    public Task CloseAsync(CancellationToken abandon)
    {
        if (Interlocked.Exchange(ref _disposeRequested, 1) != 0)
        {
            return Volatile.Read(ref _closeTask) ?? Task.CompletedTask;
        }

        var close = new CloseOperation(abandon);
        Volatile.Write(ref _closeTask, close.Completion.Task);
        Post(close);
        return close.Completion.Task;
    }

    private void Post(WorkItem item)
    {
        // Push-only CAS is ABA-safe: the consumer never pops single items, it takes the whole stack.
        WorkItem? head = Volatile.Read(ref _mailbox);
        while (true)
        {
            item.Next = head;
            WorkItem? seen = Interlocked.CompareExchange(ref _mailbox, item, head);
            if (seen == head)
            {
                break;
            }

            head = seen;
        }

        if (Interlocked.CompareExchange(ref _scheduled, 1, 0) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(_worker, preferLocal: false);
        }
    }

    private WorkItem? TakeMailbox()
    {
        WorkItem? item = Interlocked.Exchange(ref _mailbox, null);

        // The stack holds newest first; reverse it into arrival order.
        WorkItem? ordered = null;
        while (item is not null)
        {
            WorkItem? next = item.Next;
            item.Next = ordered;
            ordered = item;
            item = next;
        }

        return ordered;
    }

    private void RunWorker()
    {
        try
        {
            if (_suspended is not null)
            {
                ResumeAfterHistory();
                if (_suspended is not null)
                {
                    return;
                }
            }

            int budget = _options.MaxItemsPerTurn;
            while (true)
            {
                WorkItem? item = _local;
                if (item is null)
                {
                    // The end of a batch: publish what committed meanwhile in one listener call.
                    FlushPublish();
                    item = TakeMailbox();
                    if (item is null)
                    {
                        // Clear the flag, then look again (Interlocked.Exchange is a full fence): a producer that saw the
                        // flag set before we cleared it did not schedule us, so its item must be picked up here.
                        Interlocked.Exchange(ref _scheduled, 0);
                        if (Volatile.Read(ref _mailbox) is null || Interlocked.CompareExchange(ref _scheduled, 1, 0) != 0)
                        {
                            return;
                        }

                        continue;
                    }
                }

                _local = item.Next;
                item.Next = null;
                Process(item);
                if (_suspended is not null)
                {
                    // Paused on a history read; its completion reschedules the worker. _scheduled stays set meanwhile
                    // so producers only enqueue.
                    return;
                }

                if (--budget == 0)
                {
                    // Yield the thread to other documents; _scheduled stays set, so this is the only worker.
                    FlushPublish();
                    ThreadPool.UnsafeQueueUserWorkItem(_worker, preferLocal: false);
                    return;
                }
            }
        }
        catch (Exception ex)
        {
            // Only a defect in the sequencer itself gets here (every call into other code is guarded). Keep the process
            // alive, stop this document and keep draining so nothing waits forever.
            StopFaulted(ex);
            ThreadPool.UnsafeQueueUserWorkItem(_worker, preferLocal: false);
        }
    }

    private void Process(WorkItem item)
    {
        switch (item.Kind)
        {
            case WorkKind.Submit:
                ProcessSubmit(Unsafe.As<SubmitOperation>(item));
                break;
            case WorkKind.CommitCompleted:
                ProcessCommitOutcome(Unsafe.As<SubmitOperation>(item));
                break;
            case WorkKind.Exclusive:
                Volatile.Write(ref _lastActivityMs, NowMs());
                FlushPublish();
                Unsafe.As<ExclusiveWork>(item).Run(this, _close is not null);
                break;
            case WorkKind.Close:
                ProcessClose(Unsafe.As<CloseOperation>(item));
                break;
            default:
                throw new UnreachableException();
        }
    }

    private void ProcessSubmit(SubmitOperation operation)
    {
        // One clock read per submission serves the idle tracking and the op's timestamp.
        _now = NowMs();
        Volatile.Write(ref _lastActivityMs, _now);
        if (_stopped || _close is not null)
        {
            CompleteStopped(operation);
            return;
        }

        if (operation.CancellationToken.IsCancellationRequested)
        {
            CompleteCanceled(operation);
            return;
        }

        ref readonly Submission<TOp> submission = ref operation.Submission;
        if (string.IsNullOrEmpty(submission.ClientId) || submission.ClientSeq < 1 || submission.BaseVersion < 0 || submission.Op is null)
        {
            Complete(operation, Error(SubmitStatus.InvalidOp, "A submission needs a client id, a positive client seq, a non-negative base version and an op."));
            return;
        }

        DedupeDecision decision = _dedupe.Check(submission.ClientId, submission.ClientSeq, submission.BaseVersion, out long originalVersion);
        if (decision == DedupeDecision.Duplicate)
        {
            CompleteDuplicate(operation, originalVersion);
            return;
        }

        if (decision != DedupeDecision.New && submission.BaseVersion < _version)
        {
            // An older seq (or a forgotten client's op from before the horizon): it may have been sequenced after its base.
            if (FindInWindow(submission.ClientId, submission.ClientSeq, submission.BaseVersion, out long found))
            {
                CompleteDuplicate(operation, found);
                return;
            }

            if (!_window.Covers(submission.BaseVersion))
            {
                LookUpInHistory(operation, decision);
                return;
            }

            // The window holds every op after the base and the op is not among them: it was never sequenced.
        }

        SequenceNew(operation);
    }

    /// <summary>Answers a resend of the op sequenced at <paramref name="version"/>; once it is durable, like the original.</summary>
    private void CompleteDuplicate(SubmitOperation operation, long version)
    {
        if (version <= _committedVersion)
        {
            Complete(operation, SubmitResult.Duplicate(version));
        }
        else
        {
            // The original is still waiting for its commit: answer when it is durable, like the original.
            operation.Version = version;
            (_duplicateWaiters ??= []).Add(operation);
        }
    }

    /// <summary>
    /// Looks (client id, client seq) up among the window's ops after <paramref name="baseVersion"/> (a resent op was
    /// sequenced after the version it was made against). Linear, but only resends of older seqs come here.
    /// </summary>
    private bool FindInWindow(string clientId, long clientSeq, long baseVersion, out long version)
    {
        for (long v = Math.Max(baseVersion + 1, _window.FirstVersion); v <= _version; v++)
        {
            ref readonly OpRecord record = ref _window[v].Record;
            if (record.ClientSeq == clientSeq && string.Equals(record.ClientId, clientId, StringComparison.Ordinal))
            {
                version = v;
                return true;
            }
        }

        version = 0;
        return false;
    }

    /// <summary>Everything dedupe needed is settled and the op was not sequenced before: validate the base, transform, sequence.</summary>
    private void SequenceNew(SubmitOperation operation)
    {
        ref readonly Submission<TOp> submission = ref operation.Submission;
        if (submission.BaseVersion > _version)
        {
            Complete(operation, Error(SubmitStatus.VersionFromFuture, $"Base version {submission.BaseVersion} is newer than the document (version {_version})."));
            return;
        }

        if (_window.Covers(submission.BaseVersion))
        {
            TransformAndSequence(operation, submission.Op, submission.BaseVersion);
        }
        else
        {
            ReadHistory(operation);
        }
    }

    /// <summary>
    /// Looks a resend of an older seq up in the op log below the window (the rest of the range was searched in the window).
    /// Found: a duplicate. Absent from a whole range: never sequenced, so it is sequenced now. Absent from a pruned (or too
    /// long) range: nobody can tell; an older seq of a remembered client was committed (<see cref="SubmitStatus.AlreadyCommitted"/>),
    /// a forgotten client's op is refused (<see cref="SubmitStatus.DedupeExpired"/>).
    /// </summary>
    private void LookUpInHistory(SubmitOperation operation, DedupeDecision decision)
    {
        // As for history reads: publish first so the window (which publishing trims) stays put while the queue is paused.
        FlushPublish();
        if (_stopped)
        {
            CompleteStopped(operation);
            return;
        }

        ref readonly Submission<TOp> submission = ref operation.Submission;
        long toVersion = _window.FirstVersion - 1;
        ValueTask<OpLookup> lookup;
        if (_history is null || toVersion - submission.BaseVersion > _options.MaxDedupeLookupOps)
        {
            lookup = new ValueTask<OpLookup>(default(OpLookup)); // nothing to search: as if pruned
        }
        else
        {
            try
            {
                lookup = _history.FindOpAsync(DocId, submission.ClientId, submission.ClientSeq, submission.BaseVersion, toVersion, _lifetimeToken);
            }
            catch (Exception ex)
            {
                lookup = ValueTask.FromException<OpLookup>(ex);
            }
        }

        if (lookup.IsCompleted)
        {
            ContinueWithLookup(operation, lookup, decision);
            return;
        }

        _suspended = operation;
        operation.LookupDecision = decision;
        _lookup = lookup;
        lookup.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_resumeAfterHistory);
    }

    private void ContinueWithLookup(SubmitOperation operation, ValueTask<OpLookup> pending, DedupeDecision decision)
    {
        if (!TryTakeResult(operation, pending, "searched for this resend", out OpLookup lookup))
        {
            return;
        }

        ref readonly Submission<TOp> submission = ref operation.Submission;
        long toVersion = _window.FirstVersion - 1;
        if (lookup.Found)
        {
            Complete(operation, SubmitResult.Duplicate(lookup.Version)); // below the window: committed
            return;
        }

        if (lookup.Held == toVersion - submission.BaseVersion)
        {
            SequenceNew(operation); // every op after the base was searched: this one was never sequenced
            return;
        }

        if (decision == DedupeDecision.Older)
        {
            _dedupe.TryGetClient(submission.ClientId, out long lastSeq, out long lastVersion);
            Complete(operation, Error(
                SubmitStatus.AlreadyCommitted,
                $"Client '{submission.ClientId}' had seq {lastSeq} sequenced (version {lastVersion}) after seq {submission.ClientSeq}, whose ops after base version {submission.BaseVersion} are no longer in the op log: it was committed earlier."));
        }
        else
        {
            Complete(operation, Error(
                SubmitStatus.DedupeExpired,
                $"Client '{submission.ClientId}' is no longer remembered, base version {submission.BaseVersion} is below {_dedupe.Horizon} and the op log no longer holds the ops after it: the op may already be applied. Resync."));
        }
    }

    private void ReadHistory(SubmitOperation operation)
    {
        // Publish first: publishing trims the window, and the range read below must meet the window exactly. While the
        // read is pending this document's queue is paused, so nothing trims or extends the window until it resumes.
        FlushPublish();
        if (_stopped)
        {
            CompleteStopped(operation);
            return;
        }

        long baseVersion = operation.Submission.BaseVersion;
        long toVersion = _window.FirstVersion - 1;
        if (_history is null || toVersion - baseVersion > _options.MaxHistoryReadOps)
        {
            Complete(operation, Error(SubmitStatus.VersionTooOld, $"Base version {baseVersion} is too old: the history available in memory starts after version {toVersion}."));
            return;
        }

        ValueTask<IReadOnlyList<OpRecord>> read;
        try
        {
            read = _history.ReadOpsAsync(DocId, baseVersion, toVersion, _lifetimeToken);
        }
        catch (Exception ex)
        {
            read = ValueTask.FromException<IReadOnlyList<OpRecord>>(ex);
        }

        if (read.IsCompleted)
        {
            ContinueWithHistory(operation, read);
            return;
        }

        _suspended = operation;
        _historyRead = read;
        read.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_resumeAfterHistory);
    }

    private void ResumeAfterHistory()
    {
        SubmitOperation operation = _suspended!;
        ValueTask<IReadOnlyList<OpRecord>> read = _historyRead;
        ValueTask<OpLookup> lookup = _lookup;
        DedupeDecision decision = operation.LookupDecision;
        operation.LookupDecision = DedupeDecision.New;
        _suspended = null;
        _historyRead = default;
        _lookup = default;
        _now = NowMs();
        if (decision != DedupeDecision.New)
        {
            ContinueWithLookup(operation, lookup, decision);
        }
        else
        {
            ContinueWithHistory(operation, read);
        }
    }

    /// <summary>
    /// The result of a history read or lookup the document waited for. False, with the submission completed, when it
    /// failed (retryable: storage) or the document stopped or began closing meanwhile.
    /// </summary>
    private bool TryTakeResult<T>(SubmitOperation operation, ValueTask<T> pending, string what, out T result)
    {
        try
        {
            result = pending.Result;
        }
        catch (Exception ex)
        {
            result = default!;
            if (_stopped || _close is not null)
            {
                CompleteStopped(operation);
            }
            else
            {
                Complete(operation, Error(SubmitStatus.Unavailable, $"The history of document '{DocId}' could not be {what}: {ex.Message}"));
            }

            return false;
        }

        if (_stopped || _close is not null)
        {
            CompleteStopped(operation);
            return false;
        }

        return true;
    }

    private void ContinueWithHistory(SubmitOperation operation, ValueTask<IReadOnlyList<OpRecord>> read)
    {
        if (!TryTakeResult(operation, read, "read", out IReadOnlyList<OpRecord> ops))
        {
            return;
        }

        long baseVersion = operation.Submission.BaseVersion;
        long toVersion = _window.FirstVersion - 1;
        if (ops is null || ops.Count != toVersion - baseVersion)
        {
            Complete(operation, Error(SubmitStatus.VersionTooOld, $"Base version {baseVersion} is too old: the stored history does not reach back to it."));
            return;
        }

        TOp transformed = operation.Submission.Op;
        for (int i = 0; i < ops.Count; i++)
        {
            OpRecord record = ops[i];
            if (record.Version != baseVersion + 1 + i)
            {
                Complete(operation, Error(SubmitStatus.VersionTooOld, $"The stored history of document '{DocId}' has a gap at version {baseVersion + 1 + i}."));
                return;
            }

            TOp other;
            try
            {
                other = _type.Decode(record.Op.Span);
            }
            catch (Exception ex)
            {
                Complete(operation, Error(SubmitStatus.Unavailable, $"Stored op {record.Version} of document '{DocId}' does not decode: {ex.Message}"));
                return;
            }

            if (!TryTransform(operation, ref transformed, other))
            {
                return;
            }
        }

        TransformAndSequence(operation, transformed, toVersion);
    }

    /// <summary>Transforms <paramref name="op"/> (made after <paramref name="afterVersion"/>) through the window's later ops one by one, then sequences it.</summary>
    private void TransformAndSequence(SubmitOperation operation, TOp op, long afterVersion)
    {
        // One by one, never composed: each step is exactly what every client does with the same pair, so replicas converge.
        for (long v = afterVersion + 1; v <= _version; v++)
        {
            if (!TryTransform(operation, ref op, _window[v].Op))
            {
                return;
            }
        }

        TSnapshot next;
        byte[] encoded;
        int size;
        try
        {
            _type.Validate(op, _snapshot);
            next = _type.Apply(_snapshot, op);
            long length = _type.LengthOf(next);
            if (length > _options.MaxDocumentLength && length > _type.LengthOf(_snapshot))
            {
                Complete(operation, Error(SubmitStatus.DocTooLarge, $"The op would make the document {length} long; the limit is {_options.MaxDocumentLength}."));
                return;
            }

            encoded = Encode(op);
            size = _type.SizeOf(op);
        }
        catch (Exception ex)
        {
            Complete(operation, Rejected(ex));
            return;
        }

        Sequence(operation, op, next, encoded, size);
    }

    private bool TryTransform(SubmitOperation operation, ref TOp op, TOp other)
    {
        try
        {
            op = _type.Transform(op, other, TransformSide.Left);
            return true;
        }
        catch (Exception ex)
        {
            Complete(operation, Rejected(ex));
            return false;
        }
    }

    private void Sequence(SubmitOperation operation, TOp op, TSnapshot next, byte[] encoded, int size)
    {
        ref readonly Submission<TOp> submission = ref operation.Submission;
        long version = _version + 1;
        var record = new OpRecord(DocId, version, submission.ClientId, submission.ClientSeq, submission.Author, encoded, _now);

        operation.DedupeEntry = _dedupe.RecordSequenced(submission.ClientId, submission.ClientSeq, version);
        _window.Append(record, op, size);
        _snapshot = next;
        Volatile.Write(ref _version, version);

        operation.Version = version;
        operation.Record = record;
        if (submission.ReceivedTimestamp != 0)
        {
            operation.Timestamps = new OpTimestamps(submission.ReceivedTimestamp, Stopwatch.GetTimestamp(), 0);
        }

        operation.Transformed = op;
        operation.SnapshotAfter = next;
        if (_pendingTail is null)
        {
            _pendingHead = operation;
        }
        else
        {
            _pendingTail.NextPending = operation;
        }

        _pendingTail = operation;
        _outstandingCommits++;

        ValueTask commit;
        try
        {
            commit = _durability.CommitAsync(record, _lifetimeToken);
        }
        catch (Exception ex)
        {
            commit = ValueTask.FromException(ex);
        }

        if (commit.IsCompleted)
        {
            // The common case with an in-memory or batching stage: no trip through the mailbox.
            operation.ObserveCommit(commit);
            ProcessCommitOutcome(operation);
        }
        else
        {
            operation.AwaitCommit(commit);
        }
    }

    private void ProcessCommitOutcome(SubmitOperation operation)
    {
        _outstandingCommits--;
        operation.OutcomeProcessed = true;
        if (operation.Orphaned)
        {
            // The document stopped while this commit was pending; its submission was kept until now so the stage's
            // callback could not touch a recycled object.
            CompleteStopped(operation);
            MaybeFinishClose();
            return;
        }

        if (operation.CommitError is { } error)
        {
            if (error is VersionConflictException conflict)
            {
                StopFenced(conflict);
            }
            else if (error is OperationCanceledException && (_stopped || _lifetimeToken.IsCancellationRequested))
            {
                // We cancelled the stage ourselves (abandoned close, or already stopped).
                Stop(SequencerState.Disposed, null);
            }
            else
            {
                StopFaulted(new InvalidOperationException($"The durability stage failed version {operation.Version} of document '{DocId}' outside its contract.", error));
            }

            return;
        }

        operation.Committed = true;
        _publishDue = true;
    }

    /// <summary>Publishes the committed ops at the head of the pending list, as one batch, then acknowledges them.</summary>
    private void FlushPublish()
    {
        if (!_publishDue || _stopped)
        {
            return;
        }

        _publishDue = false;
        int count = 0;
        SubmitOperation? last = null;
        for (SubmitOperation? p = _pendingHead; p is not null && p.Committed; p = p.NextPending)
        {
            if (count == _batchRecords.Length)
            {
                Array.Resize(ref _batchRecords, Math.Max(4, count * 2));
                Array.Resize(ref _batchOps, Math.Max(4, count * 2));
                Array.Resize(ref _batchTimestamps, Math.Max(4, count * 2));
            }

            _batchRecords[count] = p.Record;
            _batchOps[count] = p.Transformed;
            _batchTimestamps[count] = p.Timestamps;
            DedupeState.MarkCommitted(p.DedupeEntry!, p.Record.ClientSeq, p.Version);
            count++;
            last = p;
        }

        if (last is null)
        {
            return;
        }

        _committedSnapshot = last.SnapshotAfter;
        Volatile.Write(ref _committedVersion, last.Version);
        _window.Trim(last.Version, _options.HistoryMaxOps, _options.HistoryMaxBytes);

        Exception? listenerError = null;
        try
        {
            _listener.OnCommitted(new CommittedBatch<TSnapshot, TOp>(DocId, _batchRecords.AsSpan(0, count), _batchOps.AsSpan(0, count), _committedSnapshot, _batchTimestamps.AsSpan(0, count)));
        }
        catch (Exception ex)
        {
            listenerError = ex;
        }

        _batchRecords.AsSpan(0, count).Clear();
        if (RuntimeHelpers.IsReferenceOrContainsReferences<TOp>())
        {
            _batchOps.AsSpan(0, count).Clear();
        }

        // The ops are durable whatever the listener did: acknowledge them.
        SubmitOperation? head = _pendingHead;
        _pendingHead = last.NextPending;
        if (_pendingHead is null)
        {
            _pendingTail = null;
        }

        while (head is not null)
        {
            SubmitOperation next = head.NextPending!;
            bool isLast = head == last;
            head.NextPending = null;
            Complete(head, SubmitResult.Acked(head.Version));
            if (isLast)
            {
                break;
            }

            head = next;
        }

        ReleaseDuplicateWaiters();
        if (listenerError is not null)
        {
            StopFaulted(new InvalidOperationException($"The listener of document '{DocId}' threw; subscribers may have missed ops.", listenerError));
            return;
        }

        MaybeFinishClose();
    }

    private void ReleaseDuplicateWaiters()
    {
        List<SubmitOperation>? waiters = _duplicateWaiters;
        if (waiters is null || waiters.Count == 0)
        {
            return;
        }

        long committed = _committedVersion;
        int kept = 0;
        for (int i = 0; i < waiters.Count; i++)
        {
            SubmitOperation waiter = waiters[i];
            if (waiter.Version <= committed)
            {
                Complete(waiter, SubmitResult.Duplicate(waiter.Version));
            }
            else
            {
                waiters[kept++] = waiter;
            }
        }

        waiters.RemoveRange(kept, waiters.Count - kept);
    }

    private void ProcessClose(CloseOperation close)
    {
        _close = close;
        if (close.Abandon.CanBeCanceled)
        {
            close.Registration = close.Abandon.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), _lifetime);
        }

        // Ops handed to the stage finish normally (or are abandoned via the registration); MaybeFinishClose completes the close.
        MaybeFinishClose();
    }

    private void MaybeFinishClose()
    {
        CloseOperation? close = _close;
        if (close is null || close.Completion.Task.IsCompleted || _outstandingCommits != 0 || _pendingHead is not null || _suspended is not null)
        {
            return;
        }

        if (_duplicateWaiters is { Count: > 0 } waiters)
        {
            // Their originals can no longer commit here (the pending list is empty).
            foreach (SubmitOperation waiter in waiters)
            {
                CompleteStopped(waiter);
            }

            waiters.Clear();
        }

        close.Registration.Dispose();
        close.Completion.TrySetResult();
    }

    private void StopFenced(VersionConflictException conflict)
    {
        if (Stop(SequencerState.Fenced, conflict))
        {
            try
            {
                _listener.OnFenced(conflict);
            }
            catch (Exception ex)
            {
                Volatile.Write(ref _fault, new InvalidOperationException($"The listener of document '{DocId}' threw from OnFenced.", ex));
            }
        }
    }

    private void StopFaulted(Exception error)
    {
        if (Stop(SequencerState.Faulted, error))
        {
            try
            {
                _listener.OnFaulted(error);
            }
            catch (Exception)
            {
                // Nothing more can be done for a listener that fails while being told the document failed; State already says Faulted.
            }
        }
    }

    /// <summary>Stops sequencing for good. Returns false if already stopped.</summary>
    private bool Stop(SequencerState state, Exception? reason)
    {
        if (_stopped)
        {
            return false;
        }

        _stopped = true;
        if (state != SequencerState.Disposed)
        {
            Volatile.Write(ref _fault, reason);
            Volatile.Write(ref _state, (int)state);
        }

        try
        {
            // Tell the stage and history source to give up on this document's remaining work.
            _lifetime.Cancel();
        }
        catch (AggregateException)
        {
            // A registration of the stage threw; the cancellation itself still happened.
        }

        SubmitOperation? p = _pendingHead;
        _pendingHead = null;
        _pendingTail = null;
        while (p is not null)
        {
            SubmitOperation? next = p.NextPending;
            p.NextPending = null;
            if (p.OutcomeProcessed)
            {
                CompleteStopped(p);
            }
            else
            {
                p.Orphaned = true;
            }

            p = next;
        }

        if (_duplicateWaiters is { } waiters)
        {
            foreach (SubmitOperation waiter in waiters)
            {
                CompleteStopped(waiter);
            }

            waiters.Clear();
        }

        MaybeFinishClose();
        return true;
    }

    private SubmitResult StoppedResult() => (SequencerState)Volatile.Read(ref _state) == SequencerState.Fenced
        ? SubmitResult.Error(SubmitStatus.Fenced, CommittedVersion, $"Document '{DocId}' is owned by another sequencer; it is being reloaded.")
        : SubmitResult.Error(SubmitStatus.Closed, CommittedVersion, $"The sequencer of document '{DocId}' is closed.");

    private void CompleteStopped(SubmitOperation operation) => Complete(operation, StoppedResult());

    private SubmitResult Error(SubmitStatus status, string message) => SubmitResult.Error(status, _committedVersion, message);

    private SubmitResult Rejected(Exception ex) => ex switch
    {
        OtException { Code: OtErrorCode.OpTooLong } => Error(SubmitStatus.OpDoesNotFit, ex.Message),
        OtException { Code: OtErrorCode.TooLarge } => Error(SubmitStatus.DocTooLarge, ex.Message),
        OtException => Error(SubmitStatus.InvalidOp, ex.Message),

        // A failure other than OtException is a defect in the OT type; the document is untouched, so refuse just this op.
        _ => Error(SubmitStatus.InvalidOp, $"The op could not be processed: {ex.Message}"),
    };

    private void Complete(SubmitOperation operation, SubmitResult result)
    {
        Interlocked.Decrement(ref _pendingCount);

        // Last touch: the awaiter may recycle the operation as soon as the result is set.
        operation.SetResult(result);
    }

    private void CompleteCanceled(SubmitOperation operation)
    {
        Interlocked.Decrement(ref _pendingCount);
        operation.SetException(new OperationCanceledException(operation.CancellationToken));
    }

    private byte[] Encode(TOp op)
    {
        // Encoding is synchronous, so one scratch buffer per thread serves every document the thread works for.
        ArrayBufferWriter<byte> buffer = t_encodeBuffer ??= new ArrayBufferWriter<byte>(256);
        buffer.ResetWrittenCount();
        _type.Encode(op, buffer);
        byte[] encoded = buffer.WrittenSpan.ToArray();
        if (buffer.Capacity > 64 * 1024)
        {
            // Do not pin a huge paste's buffer to the thread forever.
            t_encodeBuffer = null;
        }

        return encoded;
    }

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    // ---- Committed view (worker-only, used by CommittedView) ----

    internal TSnapshot CommittedSnapshot => _committedSnapshot;

    internal IOtType<TSnapshot, TOp> Type => _type;

    internal HistoryWindow<TOp> Window => _window;

    internal DedupeState Dedupe => _dedupe;

    internal long CommittedVersionOnWorker => _committedVersion;

    internal long NowMilliseconds() => NowMs();

    private enum WorkKind : byte
    {
        Submit,
        CommitCompleted,
        Exclusive,
        Close,
    }

    private abstract class WorkItem
    {
        public WorkItem? Next;
        public WorkKind Kind;
    }

    private sealed class Worker(DocumentSequencer<TSnapshot, TOp> owner) : IThreadPoolWorkItem
    {
        public void Execute() => owner.RunWorker();
    }

    /// <summary>
    /// One submission, pooled: it is the mailbox node, the pending-commit node, the commit callback and the
    /// <see cref="System.Threading.Tasks.Sources.IValueTaskSource{TResult}"/> behind the caller's ValueTask, so the steady state allocates nothing for it.
    /// </summary>
    private sealed class SubmitOperation : WorkItem, System.Threading.Tasks.Sources.IValueTaskSource<SubmitResult>
    {
        private readonly Action _onCommitCompleted;
        private System.Threading.Tasks.Sources.ManualResetValueTaskSourceCore<SubmitResult> _core;
        private DocumentSequencer<TSnapshot, TOp>? _owner;
        private ValueTask _commit;

        public SubmitOperation() => _onCommitCompleted = OnCommitCompleted;

        public Submission<TOp> Submission;
        public CancellationToken CancellationToken;
        public long Version;
        public OpRecord Record;
        public TOp Transformed = default!;
        public TSnapshot SnapshotAfter = default!;
        public DedupeState.ClientEntry? DedupeEntry;
        public OpTimestamps Timestamps;

        /// <summary>While suspended on <see cref="IHistorySource.FindOpAsync"/>: why it was looked up (New otherwise).</summary>
        public DedupeDecision LookupDecision;
        public SubmitOperation? NextPending;
        public Exception? CommitError;
        public bool OutcomeProcessed;
        public bool Committed;
        public bool Orphaned;

        public short Token => _core.Version;

        public void Initialize(DocumentSequencer<TSnapshot, TOp> owner, in Submission<TOp> submission, bool continueOnWorker, CancellationToken cancellationToken)
        {
            Kind = WorkKind.Submit;
            _owner = owner;
            _core.RunContinuationsAsynchronously = !continueOnWorker && owner._options.RunContinuationsAsynchronously;
            Submission = submission;
            CancellationToken = cancellationToken;
        }

        public void AwaitCommit(ValueTask commit)
        {
            _commit = commit;
            commit.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_onCommitCompleted);
        }

        public void ObserveCommit(ValueTask commit)
        {
            if (Timestamps.IsSet)
            {
                Timestamps = Timestamps with { Committed = Stopwatch.GetTimestamp() };
            }

            try
            {
                commit.GetAwaiter().GetResult();
            }
            catch (Exception ex)
            {
                CommitError = ex;
            }
        }

        private void OnCommitCompleted()
        {
            // Runs on the stage's thread: record the outcome and route it back through the mailbox to the worker.
            ValueTask commit = _commit;
            _commit = default;
            ObserveCommit(commit);
            Kind = WorkKind.CommitCompleted;
            _owner!.Post(this);
        }

        public void SetResult(SubmitResult result) => _core.SetResult(result);

        public void SetException(Exception error) => _core.SetException(error);

        public SubmitResult GetResult(short token)
        {
            try
            {
                return _core.GetResult(token);
            }
            finally
            {
                Recycle();
            }
        }

        public System.Threading.Tasks.Sources.ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, System.Threading.Tasks.Sources.ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);

        private void Recycle()
        {
            _core.Reset();
            _owner = null;
            Next = null;
            NextPending = null;
            Submission = default;
            CancellationToken = default;
            Version = 0;
            Record = default;
            Transformed = default!;
            SnapshotAfter = default!;
            DedupeEntry = null;
            Timestamps = default;
            LookupDecision = DedupeDecision.New;
            CommitError = null;
            OutcomeProcessed = false;
            Committed = false;
            Orphaned = false;
            s_operationPool.Return(this);
        }
    }

    private abstract class ExclusiveWork : WorkItem
    {
        public abstract void Run(DocumentSequencer<TSnapshot, TOp> owner, bool disposed);
    }

    private sealed class ExclusiveOperation<T> : ExclusiveWork, System.Threading.Tasks.Sources.IValueTaskSource<T>
    {
        private readonly Func<CommittedView<TSnapshot, TOp>, T> _action;
        private System.Threading.Tasks.Sources.ManualResetValueTaskSourceCore<T> _core;

        public ExclusiveOperation(Func<CommittedView<TSnapshot, TOp>, T> action, bool runContinuationsAsynchronously)
        {
            Kind = WorkKind.Exclusive;
            _action = action;
            _core.RunContinuationsAsynchronously = runContinuationsAsynchronously;
        }

        public short Token => _core.Version;

        public override void Run(DocumentSequencer<TSnapshot, TOp> owner, bool disposed)
        {
            if (disposed)
            {
                _core.SetException(new ObjectDisposedException(owner.GetType().Name, $"The sequencer of document '{owner.DocId}' is disposed."));
                return;
            }

            T result;
            try
            {
                result = _action(new CommittedView<TSnapshot, TOp>(owner));
            }
            catch (Exception ex)
            {
                _core.SetException(ex);
                return;
            }

            _core.SetResult(result);
        }

        public T GetResult(short token) => _core.GetResult(token);

        public System.Threading.Tasks.Sources.ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, System.Threading.Tasks.Sources.ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    private sealed class CloseOperation : WorkItem
    {
        public CloseOperation(CancellationToken abandon)
        {
            Kind = WorkKind.Close;
            Abandon = abandon;
        }

        public CancellationToken Abandon { get; }

        public CancellationTokenRegistration Registration;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
