using Collab.Engine.Sequencing;
using Collab.Server.Storage;

namespace Collab.Server.Tests.Security.Infrastructure;

/// <summary>A real store whose appends wait while the gate is closed (and document loads while the load gate is).</summary>
public sealed class GatedStore(IOpStore inner) : IOpStore
{
    private volatile TaskCompletionSource _gate = Opened();
    private volatile TaskCompletionSource _loadGate = Opened();

    public void CloseLoads() => _loadGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void OpenLoads() => _loadGate.TrySetResult();

    public void Close() => _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Open() => _gate.TrySetResult();

    public ValueTask InitializeAsync(CancellationToken cancellationToken) => inner.InitializeAsync(cancellationToken);

    public async ValueTask<AppendResult> AppendAsync(IReadOnlyList<OpRecord> batch, CancellationToken cancellationToken)
    {
        await _gate.Task.WaitAsync(cancellationToken);
        return await inner.AppendAsync(batch, cancellationToken);
    }

    public async ValueTask<DocumentLoad?> LoadAsync(string docId, CancellationToken cancellationToken)
    {
        await _loadGate.Task.WaitAsync(cancellationToken);
        return await inner.LoadAsync(docId, cancellationToken);
    }

    public ValueTask<IReadOnlyList<OpRecord>> ReadOpsAsync(string docId, long afterVersion, long toVersion, int limit, CancellationToken cancellationToken) =>
        inner.ReadOpsAsync(docId, afterVersion, toVersion, limit, cancellationToken);

    public ValueTask<OpLookup> FindOpAsync(string docId, string clientId, long clientSeq, long afterVersion, long toVersion, CancellationToken cancellationToken) =>
        inner.FindOpAsync(docId, clientId, clientSeq, afterVersion, toVersion, cancellationToken);

    public ValueTask<byte[]> GetOrCreateSecretAsync(string name, int length, CancellationToken cancellationToken) => inner.GetOrCreateSecretAsync(name, length, cancellationToken);

    public ValueTask WriteSnapshotAsync(SnapshotRecord snapshot, CancellationToken cancellationToken) => inner.WriteSnapshotAsync(snapshot, cancellationToken);

    public ValueTask<long> PruneAsync(TimeSpan retention, CancellationToken cancellationToken) => inner.PruneAsync(retention, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private static TaskCompletionSource Opened()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }
}
