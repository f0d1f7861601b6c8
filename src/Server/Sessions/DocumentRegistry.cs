using System.Collections.Concurrent;
using Collab.Engine.Sequencing;
using Collab.Engine.Text;
using Collab.Server.Storage;

namespace Collab.Server.Sessions;

/// <summary>
/// The documents open on this node. A document opens on first use — one load from the store however
/// many clients ask at once — and closes (after a final snapshot) once it has had no subscriber for
/// <see cref="DocumentOptions.IdleCloseAfter"/>. In a cluster each document also gets its cluster side from the
/// <see cref="IDocumentReplicator"/> before it loads (owner or replica; see docs/CLUSTER.md).
/// </summary>
internal sealed class DocumentRegistry : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<Task<DocumentHub>>> _documents = new(StringComparer.Ordinal);
    private readonly SequencerOptions _sequencerOptions;
    private readonly TimeProvider _time;
    private readonly IDocumentReplicator? _replicator;
    private readonly ITimer _sweeper;
    private int _disposed;
    private long _loads;

    public DocumentRegistry(
        IOpStore store,
        IDurabilityStage stage,
        IHistorySource history,
        DocumentOptions options,
        int snapshotEveryOps,
        ILogger logger,
        TimeProvider? time = null,
        IDocumentReplicator? replicator = null)
    {
        Store = store;
        Stage = stage;
        History = history;
        Options = options;
        SnapshotEveryOps = snapshotEveryOps;
        Log = new SessionLog(logger);
        _time = time ?? TimeProvider.System;
        _replicator = replicator;
        _sequencerOptions = new SequencerOptions
        {
            MaxPendingSubmissions = options.MaxPendingSubmissions,
            HistoryMaxOps = options.HistoryMaxOps,
            HistoryMaxBytes = options.HistoryMaxBytes,
            MaxDocumentLength = options.MaxDocumentLength,
        };
        _sequencerOptions.Validate();
        TimeSpan sweep = TimeSpan.FromTicks(Math.Clamp(options.IdleCloseAfter.Ticks / 4, TimeSpan.FromMilliseconds(50).Ticks, TimeSpan.FromSeconds(5).Ticks));
        _sweeper = _time.CreateTimer(_ => CloseIdleDocuments(), null, sweep, sweep);
    }

    public IOpStore Store { get; }

    public IDurabilityStage Stage { get; }

    public IHistorySource History { get; }

    public DocumentOptions Options { get; }

    public int SnapshotEveryOps { get; }

    public SessionLog Log { get; }

    public long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    public int OpenCount => _documents.Count;

    /// <summary>Document loads from the store since start (each open reads the store once, however many clients ask).</summary>
    public long LoadCount => Interlocked.Read(ref _loads);

    /// <summary>
    /// Test seam: called at the start of every committed batch's delivery (document id, batch version) on the document's
    /// worker; whatever it throws is what an unexpected defect in the delivery would throw. Null in production.
    /// </summary>
    internal Action<string, long>? FaultInjection { get; set; }

    /// <summary>Opens (or finds) a document and takes a subscription reference on it; release with <see cref="DocumentHub.ReleaseRef"/>.</summary>
    public async ValueTask<DocumentHub> AcquireAsync(string docId, CancellationToken cancellationToken)
    {
        while (true)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            Lazy<Task<DocumentHub>> entry = _documents.GetOrAdd(docId, static (id, self) => new Lazy<Task<DocumentHub>>(() => self.LoadAsync(id)), this);
            DocumentHub hub;
            try
            {
                hub = await entry.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (!cancellationToken.IsCancellationRequested)
            {
                // A failed load is not cached: the next subscriber tries again (the store may be back).
                _documents.TryRemove(KeyValuePair.Create(docId, entry));
                throw;
            }

            if (hub.TryAddRef())
            {
                return hub;
            }

            // It is closing (idle or fenced): drop the stale entry and load afresh.
            _documents.TryRemove(KeyValuePair.Create(docId, entry));
        }
    }

    private async Task<DocumentHub> LoadAsync(string docId)
    {
        await Task.Yield(); // never run a load inside Lazy's lock
        Interlocked.Increment(ref _loads);
        long started = System.Diagnostics.Stopwatch.GetTimestamp();

        // Cluster: subscribe to the owner's stream (or take ownership) before reading the log, so no op falls in between.
        IDocumentReplication? replication = _replicator is null ? null : await _replicator.OpenAsync(docId, CancellationToken.None).ConfigureAwait(false);
        DocumentLoad? load;
        DocumentState<Rope, TextOp> state;
        try
        {
            load = await Store.LoadAsync(docId, CancellationToken.None).ConfigureAwait(false);
            state = load is null
                ? DocumentState.Empty(TextType.Instance, _sequencerOptions)
                : DocumentState.Load(TextType.Instance, load.Snapshot, load.Ops, _sequencerOptions);
        }
        catch
        {
            if (replication is not null)
            {
                await replication.StopAsync().ConfigureAwait(false);
            }

            throw;
        }

        if (replication is null)
        {
            // A document reloaded after it was fenced may sequence again: the op log's key still fences it.
            // (In a cluster the document clears its fence when it takes the lease.)
            (Stage as GroupCommitStage)?.ClearFence(docId);
        }

        var hub = new DocumentHub(this, docId, load?.Snapshot?.Version ?? 0, replication);
        hub.Attach(new DocumentSequencer<Rope, TextOp>(docId, TextType.Instance, state, replication?.Stage ?? Stage, History, hub, _sequencerOptions, _time));
        replication?.Start(hub, state.Version);
        SessionMetrics.DocumentsOpen.Inc();
        SessionMetrics.DocumentLoadSeconds.Observe(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
        Log.DocumentOpened(docId, state.Version, load?.Ops.Count ?? 0);
        return hub;
    }

    /// <summary>
    /// The hub stopped (a fault, fenced by another writer, or a replica that cannot follow): counts and logs it, forgets the
    /// hub, and once its last commits settled reloads the document from the op log and resumes its subscribers there
    /// (<see cref="ClientSession.ResumeAfterFailureAsync"/>). Called on the failed hub's worker: never throws, never blocks.
    /// </summary>
    /// <remarks>
    /// Every way a document can stop ends here (issue 13 §1, the audit): a defect in the sequencer's worker, the hub's
    /// delivery throwing from OnCommitted, the durability stage failing outside its contract (all three: the sequencer
    /// faults and calls OnFaulted); a version conflict (OnFenced); a replica that cannot follow the owner, or whose
    /// follow loop broke (ClusterDocument.FailAsync). Nothing else stops one: an exclusive action that throws (attach,
    /// presence) fails only its caller's request, a failed snapshot is logged and retried, the cluster's serve loop
    /// subscribes again and its presence loop skips a bad message. The listener's own OnFaulted/OnFenced cannot fail the
    /// recovery: this method catches everything and recovers on another task.
    /// </remarks>
    internal void OnHubFailed(DocumentHub hub, Exception reason, DocumentFailure failure, List<FailedSubscriber> subscribers)
    {
        try
        {
            if (failure == DocumentFailure.Fenced)
            {
                Log.DocumentFenced(hub.DocId, reason.Message, subscribers.Count);
            }
            else
            {
                SessionMetrics.DocumentFaults.WithLabels(failure == DocumentFailure.Fault ? "sequencer" : "replica").Inc();
                Log.DocumentFaulted(hub.DocId, failure, subscribers.Count, reason);
            }

            if (_documents.TryGetValue(hub.DocId, out Lazy<Task<DocumentHub>>? entry)
                && entry.IsValueCreated && entry.Value.IsCompletedSuccessfully && ReferenceEquals(entry.Value.Result, hub))
            {
                _documents.TryRemove(KeyValuePair.Create(hub.DocId, entry));
                SessionMetrics.DocumentsOpen.Dec();
            }
        }
        catch (Exception ex)
        {
            Log.RecoveryFailed(hub.DocId, ex);
        }

        _ = RecoverAsync(hub, subscribers);
    }

    private async Task RecoverAsync(DocumentHub hub, List<FailedSubscriber> subscribers)
    {
        await Task.Yield(); // off the failed document's worker
        try
        {
            // Ops the stopped sequencer handed to the stage finish first (committed or not), so the reload sees the final
            // log and a resumed subscriber's catch-up holds every op acknowledged before the failure.
            await hub.Sequencer.CloseAsync(CancellationToken.None).ConfigureAwait(false);
            if (hub.Replication is { } replication)
            {
                await replication.StopAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            Log.RecoveryFailed(hub.DocId, ex);
        }

        var resuming = new List<Task>(subscribers.Count);
        foreach (FailedSubscriber subscriber in subscribers)
        {
            resuming.Add(subscriber.Subscription.Session.ResumeAfterFailureAsync(subscriber));
        }

        await Task.WhenAll(resuming).ConfigureAwait(false);
    }

    private void CloseIdleDocuments()
    {
        long now = NowMs;
        long idleMs = (long)Options.IdleCloseAfter.TotalMilliseconds;
        foreach ((string docId, Lazy<Task<DocumentHub>> entry) in _documents)
        {
            if (!entry.IsValueCreated || !entry.Value.IsCompletedSuccessfully)
            {
                continue;
            }

            DocumentHub hub = entry.Value.Result;
            if (hub.TryBeginClose(now, idleMs) && _documents.TryRemove(KeyValuePair.Create(docId, entry)))
            {
                SessionMetrics.DocumentsOpen.Dec();
                _ = CloseHubAsync(hub);
            }
        }
    }

    private async Task CloseHubAsync(DocumentHub hub)
    {
        try
        {
            await hub.CloseAsync(CancellationToken.None).ConfigureAwait(false);
            Log.DocumentClosed(hub.DocId, hub.Sequencer.CommittedVersion);
        }
        catch (Exception ex)
        {
            Log.DocumentCloseFailed(hub.DocId, ex);
        }
    }

    /// <summary>Closes every document: pending commits finish (or are abandoned after the storage shutdown timeout), final snapshots are written.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _sweeper.DisposeAsync().ConfigureAwait(false);
        var closing = new List<Task>();
        foreach ((_, Lazy<Task<DocumentHub>> entry) in _documents)
        {
            if (entry.IsValueCreated && entry.Value.IsCompletedSuccessfully)
            {
                closing.Add(CloseHubAsync(entry.Value.Result));
            }
        }

        _documents.Clear();
        await Task.WhenAll(closing).ConfigureAwait(false);
    }
}
