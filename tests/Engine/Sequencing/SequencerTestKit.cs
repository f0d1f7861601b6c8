using System.Collections.Concurrent;
using Collab.Engine.Sequencing;

namespace Collab.Engine.Tests.Sequencing;

/// <summary>Remembers every commit it was given and completes it at once (an in-memory op log).</summary>
public sealed class RecordingDurabilityStage : IDurabilityStage
{
    private readonly ConcurrentDictionary<(string, long), OpRecord> _log = new();

    public ValueTask CommitAsync(OpRecord op, CancellationToken cancellationToken)
    {
        if (!_log.TryAdd((op.DocId, op.Version), op))
        {
            return ValueTask.FromException(new VersionConflictException(op.DocId, op.Version));
        }

        return default;
    }

    /// <summary>The contiguous stored ops after <paramref name="version"/> (up to <paramref name="toVersion"/>).</summary>
    public IReadOnlyList<OpRecord> OpsAfter(string docId, long version, long toVersion = long.MaxValue)
    {
        var ops = new List<OpRecord>();
        for (long v = version + 1; v <= toVersion && _log.TryGetValue((docId, v), out OpRecord op); v++)
        {
            ops.Add(op);
        }

        return ops;
    }
}

/// <summary>A stage whose commits the test completes by hand, in any order, with any outcome.</summary>
public sealed class ControllableDurabilityStage : IDurabilityStage
{
    private readonly List<PendingCommit> _calls = [];
    private readonly object _gate = new();

    public ValueTask CommitAsync(OpRecord op, CancellationToken cancellationToken)
    {
        // Continuations run synchronously in SetResult, so after Complete() returns the sequencer's mailbox already
        // holds the completion: a RunExclusiveAsync barrier then observes it processed.
        var completion = new TaskCompletionSource();
        var pending = new PendingCommit(op, completion, cancellationToken);
        pending.Registration = cancellationToken.Register(() => completion.TrySetCanceled(cancellationToken));
        lock (_gate)
        {
            _calls.Add(pending);
        }

        return new ValueTask(completion.Task);
    }

    public int CallCount
    {
        get
        {
            lock (_gate)
            {
                return _calls.Count;
            }
        }
    }

    public PendingCommit this[int index]
    {
        get
        {
            lock (_gate)
            {
                return _calls[index];
            }
        }
    }

    public PendingCommit For(string docId, long version)
    {
        lock (_gate)
        {
            return _calls.Single(c => c.Op.DocId == docId && c.Op.Version == version);
        }
    }

    public sealed class PendingCommit(OpRecord op, TaskCompletionSource completion, CancellationToken token)
    {
        public OpRecord Op { get; } = op;

        public CancellationToken Token { get; } = token;

        public CancellationTokenRegistration Registration { get; set; }

        public bool IsCompleted => completion.Task.IsCompleted;

        public bool IsCanceled => completion.Task.IsCanceled;

        public void Complete() => completion.SetResult();

        public void Fail(Exception error) => completion.SetException(error);
    }
}

/// <summary>Serves committed ops from a list, optionally gated (to test the paused queue) or failing.</summary>
public sealed class MemoryHistorySource : IHistorySource
{
    private readonly Func<long, long, IReadOnlyList<OpRecord>> _read;

    public MemoryHistorySource(Func<long, long, IReadOnlyList<OpRecord>> read) => _read = read;

    public TaskCompletionSource? Gate { get; set; }

    public Exception? Failure { get; set; }

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1051", Justification = "A field, so the store can count with Interlocked.")]
    public int Reads;

    public async ValueTask<IReadOnlyList<OpRecord>> ReadOpsAsync(string docId, long afterVersion, long toVersion, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref Reads);
        if (Gate is { } gate)
        {
            await gate.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        if (Failure is { } failure)
        {
            throw failure;
        }

        return _read(afterVersion, toVersion);
    }

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1051", Justification = "A field, so the store can count with Interlocked.")]
    public int Lookups;

    public async ValueTask<OpLookup> FindOpAsync(string docId, string clientId, long clientSeq, long afterVersion, long toVersion, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref Lookups);
        if (Gate is { } gate)
        {
            await gate.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        if (Failure is { } failure)
        {
            throw failure;
        }

        IReadOnlyList<OpRecord> range = _read(afterVersion, toVersion);
        long version = range.FirstOrDefault(r => r.ClientId == clientId && r.ClientSeq == clientSeq).Version;
        return new OpLookup(version, range.Count);
    }
}

/// <summary>Records every listener call and checks the publishing invariants (version order, no gap, worker-only).</summary>
public sealed class RecordingListener<TSnapshot, TOp> : ISequencerListener<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    private readonly object _gate = new();
    private readonly List<OpRecord> _records = [];
    private readonly List<TOp> _ops = [];
    private readonly List<(long Version, TSnapshot Snapshot, int Count)> _batches = [];
    private int _inCall;
    private long _lastVersion;

    public RecordingListener(long startVersion = 0) => _lastVersion = startVersion;

    /// <summary>Extra work per batch (subscriber fan-out in tests); runs on the worker.</summary>
    public Action<OpRecord, TOp>? OnOp { get; set; }

    public Exception? ThrowOnCommitted { get; set; }

    public List<string> Violations { get; } = [];

    public List<VersionConflictException> Fenced { get; } = [];

    public List<Exception> Faulted { get; } = [];

    public void OnCommitted(in CommittedBatch<TSnapshot, TOp> batch)
    {
        if (Interlocked.Exchange(ref _inCall, 1) != 0)
        {
            Violations.Add("concurrent listener calls");
        }

        lock (_gate)
        {
            if (batch.Records.Length == 0 || batch.Records.Length != batch.Ops.Length)
            {
                Violations.Add("empty or mismatched batch");
            }

            for (int i = 0; i < batch.Records.Length; i++)
            {
                if (batch.Records[i].Version != _lastVersion + 1)
                {
                    Violations.Add($"expected version {_lastVersion + 1}, got {batch.Records[i].Version}");
                }

                _lastVersion = batch.Records[i].Version;
                _records.Add(batch.Records[i]);
                _ops.Add(batch.Ops[i]);
                OnOp?.Invoke(batch.Records[i], batch.Ops[i]);
            }

            if (batch.Version != _lastVersion || batch.FirstVersion != batch.Records[0].Version)
            {
                Violations.Add("batch version properties inconsistent");
            }

            _batches.Add((batch.Version, batch.Snapshot, batch.Records.Length));
        }

        Volatile.Write(ref _inCall, 0);
        if (ThrowOnCommitted is { } error)
        {
            throw error;
        }
    }

    public void OnFenced(VersionConflictException conflict)
    {
        lock (_gate)
        {
            Fenced.Add(conflict);
        }
    }

    public void OnFaulted(Exception exception)
    {
        lock (_gate)
        {
            Faulted.Add(exception);
        }
    }

    public OpRecord[] Records
    {
        get
        {
            lock (_gate)
            {
                return [.. _records];
            }
        }
    }

    public TOp[] Ops
    {
        get
        {
            lock (_gate)
            {
                return [.. _ops];
            }
        }
    }

    public (long Version, TSnapshot Snapshot, int Count)[] Batches
    {
        get
        {
            lock (_gate)
            {
                return [.. _batches];
            }
        }
    }
}

public static class SequencerTestExtensions
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    /// <summary>Waits until every item posted before this call has been processed by the worker.</summary>
    public static Task BarrierAsync<TSnapshot, TOp>(this DocumentSequencer<TSnapshot, TOp> sequencer)
        where TSnapshot : notnull
        where TOp : notnull => sequencer.RunExclusiveAsync(static _ => true).AsTask().WaitAsync(Timeout);

    public static Task<T> WithTimeout<T>(this ValueTask<T> task) => task.AsTask().WaitAsync(Timeout);

    /// <summary>Status and version of a result, to compare both in one assertion.</summary>
    public static (SubmitStatus Status, long Version) StatusAndVersion(this SubmitResult result) => (result.Status, result.Version);

    public static Task<T> WithTimeout<T>(this Task<T> task) => task.WaitAsync(Timeout);

    public static Task WithTimeout(this Task task) => task.WaitAsync(Timeout);
}
