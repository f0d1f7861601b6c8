using System.Collections.Concurrent;
using Collab.Engine.Sequencing;
using Collab.Server.Storage;

namespace Collab.Integration.Tests.Storage;

/// <summary>
/// Wraps a real store to observe and steer the group-commit stage: records batch sizes and which records were committed
/// (after the inner append returned), tracks concurrent appends, can hold appends at a gate, and can inject failures
/// before the inner append (nothing written) or after it (written, acknowledgement lost).
/// </summary>
internal sealed class InterceptingStore(IOpStore inner) : IOpStore
{
    private readonly Lock _gate = new();
    private readonly List<int> _batchSizes = [];
    private readonly ConcurrentDictionary<int, TaskCompletionSource> _holds = new();
    private TaskCompletionSource _open = CreateOpen(opened: true);
    private int _inFlight;
    private int _attempts;

    /// <summary>Records whose append returned successfully (minus conflicted documents).</summary>
    public ConcurrentDictionary<(string DocId, long Version), bool> Committed { get; } = new();

    /// <summary>Sizes of the batches handed to the store, including failed attempts.</summary>
    public IReadOnlyList<int> BatchSizes
    {
        get
        {
            lock (_gate)
            {
                return [.. _batchSizes];
            }
        }
    }

    /// <summary>Most appends seen running at the same time.</summary>
    public int MaxConcurrentAppends { get; private set; }

    /// <summary>Released once per append attempt as it starts (before the gate).</summary>
    public SemaphoreSlim AppendStarted { get; } = new(0);

    /// <summary>Given the attempt number (0-based), an exception to throw before the inner append, or null.</summary>
    public Func<int, Exception?>? FailBefore { get; set; }

    /// <summary>Given the attempt number (0-based), an exception to throw after the inner append committed, or null.</summary>
    public Func<int, Exception?>? FailAfter { get; set; }

    /// <summary>Makes appends wait until <see cref="Open"/>.</summary>
    public void Close()
    {
        lock (_gate)
        {
            if (_open.Task.IsCompleted)
            {
                _open = CreateOpen(opened: false);
            }
        }
    }

    /// <summary>Makes append attempt number <paramref name="attempt"/> (0-based) wait until <see cref="Release"/>.</summary>
    public void Hold(int attempt) => _holds[attempt] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Lets the held attempt through.</summary>
    public void Release(int attempt) => _holds[attempt].TrySetResult();

    /// <summary>Lets held and future appends through.</summary>
    public void Open()
    {
        lock (_gate)
        {
            _open.TrySetResult();
        }
    }

    public ValueTask InitializeAsync(CancellationToken cancellationToken) => inner.InitializeAsync(cancellationToken);

    public async ValueTask<AppendResult> AppendAsync(IReadOnlyList<OpRecord> batch, CancellationToken cancellationToken)
    {
        int attempt;
        Task open;
        lock (_gate)
        {
            attempt = _attempts++;
            _batchSizes.Add(batch.Count);
            _inFlight++;
            MaxConcurrentAppends = Math.Max(MaxConcurrentAppends, _inFlight);
            open = _open.Task;
        }

        try
        {
            AppendStarted.Release();
            await open.WaitAsync(cancellationToken);
            if (_holds.TryGetValue(attempt, out var hold))
            {
                await hold.Task.WaitAsync(cancellationToken);
            }

            if (FailBefore?.Invoke(attempt) is { } before)
            {
                throw before;
            }

            var result = await inner.AppendAsync(batch, cancellationToken);
            foreach (var record in batch)
            {
                if (!result.ConflictedDocs.Contains(record.DocId))
                {
                    Committed[(record.DocId, record.Version)] = true;
                }
            }

            if (FailAfter?.Invoke(attempt) is { } after)
            {
                throw after;
            }

            return result;
        }
        finally
        {
            lock (_gate)
            {
                _inFlight--;
            }
        }
    }

    public ValueTask<DocumentLoad?> LoadAsync(string docId, CancellationToken cancellationToken) => inner.LoadAsync(docId, cancellationToken);

    public ValueTask<IReadOnlyList<OpRecord>> ReadOpsAsync(string docId, long afterVersion, long toVersion, int limit, CancellationToken cancellationToken) =>
        inner.ReadOpsAsync(docId, afterVersion, toVersion, limit, cancellationToken);

    public ValueTask<OpLookup> FindOpAsync(string docId, string clientId, long clientSeq, long afterVersion, long toVersion, CancellationToken cancellationToken) =>
        inner.FindOpAsync(docId, clientId, clientSeq, afterVersion, toVersion, cancellationToken);

    public ValueTask<byte[]> GetOrCreateSecretAsync(string name, int length, CancellationToken cancellationToken) => inner.GetOrCreateSecretAsync(name, length, cancellationToken);

    public ValueTask WriteSnapshotAsync(SnapshotRecord snapshot, CancellationToken cancellationToken) => inner.WriteSnapshotAsync(snapshot, cancellationToken);

    public ValueTask<long> PruneAsync(TimeSpan retention, CancellationToken cancellationToken) => inner.PruneAsync(retention, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    /// <summary>Waits until <paramref name="count"/> more appends have started.</summary>
    public async Task WaitForAppendsAsync(int count = 1)
    {
        for (var i = 0; i < count; i++)
        {
            Assert.True(await AppendStarted.WaitAsync(TimeSpan.FromSeconds(30)), "The stage did not start an append in time.");
        }
    }

    private static TaskCompletionSource CreateOpen(bool opened)
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (opened)
        {
            tcs.SetResult();
        }

        return tcs;
    }
}
