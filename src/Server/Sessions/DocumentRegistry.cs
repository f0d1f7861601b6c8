using System.Collections.Concurrent;
using Collab.Engine.Sequencing;
using Collab.Server.Storage;

namespace Collab.Server.Sessions;

/// <summary>
/// The documents open on this node. A document opens on first use — one load from the store however
/// many clients ask at once — and closes (after a final snapshot) once it has had no subscriber for
/// <see cref="DocumentOptions.IdleCloseAfter"/>. In a cluster each document also gets its cluster side from the
/// <see cref="IDocumentReplicator"/> before it loads (owner or replica; see docs/CLUSTER.md). A document's OT type is
/// the one in the documents catalogue; the first load of a document the catalogue does not know creates its row with the
/// type asked for (decision P6: the type is fixed at creation), so every node and every later load agree on it.
/// </summary>
internal sealed class DocumentRegistry : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<Task<DocumentHub>>> _documents = new(StringComparer.Ordinal);
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
        IDocumentReplicator? replicator = null,
        DocumentKinds? kinds = null)
    {
        Kinds = kinds ?? new DocumentKinds(options.RichText());
        Store = store;
        Stage = stage;
        History = history;
        Options = options;
        SnapshotEveryOps = snapshotEveryOps;
        Log = new SessionLog(logger);
        _time = time ?? TimeProvider.System;
        _replicator = replicator;
        SequencerOptions = new SequencerOptions
        {
            MaxPendingSubmissions = options.MaxPendingSubmissions,
            HistoryMaxOps = options.HistoryMaxOps,
            HistoryMaxBytes = options.HistoryMaxBytes,
            MaxDocumentLength = options.MaxDocumentLength,
        };
        SequencerOptions.Validate();
        TimeSpan sweep = TimeSpan.FromTicks(Math.Clamp(options.IdleCloseAfter.Ticks / 4, TimeSpan.FromMilliseconds(50).Ticks, TimeSpan.FromSeconds(5).Ticks));
        _sweeper = _time.CreateTimer(_ => CloseIdleDocuments(), null, sweep, sweep);
    }

    public IOpStore Store { get; }

    public IDurabilityStage Stage { get; }

    public IHistorySource History { get; }

    public DocumentOptions Options { get; }

    public int SnapshotEveryOps { get; }

    /// <summary>The OT types documents can have.</summary>
    public DocumentKinds Kinds { get; }

    public SequencerOptions SequencerOptions { get; }

    public TimeProvider Time => _time;

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

    /// <summary>
    /// Opens (or finds) a document and takes a subscription reference on it; release with <see cref="DocumentHub.ReleaseRef"/>.
    /// A document the catalogue does not know yet is created with <paramref name="createAs"/> (null: text-unicode); one
    /// that exists keeps its type, whatever <paramref name="createAs"/> says (the caller compares <see cref="DocumentHub.Kind"/>).
    /// </summary>
    public async ValueTask<DocumentHub> AcquireAsync(string docId, CancellationToken cancellationToken, DocumentKind? createAs = null)
    {
        while (true)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            Lazy<Task<DocumentHub>> entry = _documents.GetOrAdd(
                docId, static (id, state) => new Lazy<Task<DocumentHub>>(() => state.Self.LoadAsync(id, state.CreateAs)), (Self: this, CreateAs: createAs ?? DocumentKinds.Text));
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

    private async Task<DocumentHub> LoadAsync(string docId, DocumentKind createAs)
    {
        await Task.Yield(); // never run a load inside Lazy's lock
        Interlocked.Increment(ref _loads);
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        DocumentKind kind = await FindKindAsync(docId, createAs).ConfigureAwait(false);

        // Cluster: subscribe to the owner's stream (or take ownership) before reading the log, so no op falls in between.
        IDocumentReplication? replication = _replicator is null ? null : await _replicator.OpenAsync(docId, CancellationToken.None).ConfigureAwait(false);
        DocumentLoad? load;
        DocumentHub hub;
        try
        {
            load = await Store.LoadAsync(docId, CancellationToken.None).ConfigureAwait(false);
            hub = kind.Open(this, docId, load, replication);
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

        replication?.Start(hub, hub.CommittedVersion);
        SessionMetrics.DocumentsOpen.Inc();
        SessionMetrics.DocumentLoadSeconds.Observe(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
        Log.DocumentOpened(docId, hub.CommittedVersion, load?.Ops.Count ?? 0);
        return hub;
    }

    /// <summary>
    /// The document's type from the catalogue; a document it does not know is created there as <paramref name="createAs"/>
    /// first (a concurrent creator on another node may win: its row is read back). Throws
    /// <see cref="DocumentDeletedException"/> for a tombstoned document, <see cref="UnknownDocumentTypeException"/> for a
    /// type this server does not host. A store without a catalogue (tests) keeps the type for the life of the hub only.
    /// </summary>
    private async ValueTask<DocumentKind> FindKindAsync(string docId, DocumentKind createAs)
    {
        if (Store is not IDocumentHistory catalog)
        {
            return createAs;
        }

        DocumentInfo? info = await catalog.GetDocumentAsync(docId, CancellationToken.None).ConfigureAwait(false);
        if (info is null)
        {
            await catalog.CreateDocumentAsync(docId, createAs.Name, NowMs, CancellationToken.None).ConfigureAwait(false);
            info = await catalog.GetDocumentAsync(docId, CancellationToken.None).ConfigureAwait(false);
        }

        if (info is null)
        {
            return createAs; // purged between the two reads: a document created now, as asked
        }

        if (info.IsDeleted)
        {
            throw new DocumentDeletedException(docId);
        }

        return Kinds.Find(info.Type) ?? throw new UnknownDocumentTypeException(docId, info.Type);
    }

    /// <summary>
    /// The document was deleted (its tombstone is stored): subscribers here get DOC_DELETED and the document closes, so
    /// the next subscriber's load finds the tombstone and is refused.
    /// </summary>
    public async Task CloseDeletedAsync(string docId)
    {
        if (!_documents.TryGetValue(docId, out Lazy<Task<DocumentHub>>? entry) || !entry.IsValueCreated || !entry.Value.IsCompletedSuccessfully)
        {
            return;
        }

        DocumentHub hub = entry.Value.Result;
        List<FailedSubscriber> dropped;
        try
        {
            dropped = await hub.DropSubscribersForDeleteAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            return; // closing anyway; its next load is refused
        }

        if (_documents.TryRemove(KeyValuePair.Create(docId, entry)))
        {
            SessionMetrics.DocumentsOpen.Dec();
        }

        foreach (FailedSubscriber subscriber in dropped)
        {
            subscriber.Subscription.Session.OnDocumentDeleted(hub);
        }

        await CloseHubAsync(hub).ConfigureAwait(false);
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

        RecoverAsync(hub, subscribers).Forget(Log.Logger, "recover a failed document");
    }

    private async Task RecoverAsync(DocumentHub hub, List<FailedSubscriber> subscribers)
    {
        await Task.Yield(); // off the failed document's worker
        try
        {
            // Ops the stopped sequencer handed to the stage finish first (committed or not), so the reload sees the final
            // log and a resumed subscriber's catch-up holds every op acknowledged before the failure.
            await hub.CloseSequencerAsync(CancellationToken.None).ConfigureAwait(false);
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
                CloseHubAsync(hub).Forget(Log.Logger, "close an idle document");
            }
        }
    }

    private async Task CloseHubAsync(DocumentHub hub)
    {
        try
        {
            await hub.CloseAsync(CancellationToken.None).ConfigureAwait(false);
            Log.DocumentClosed(hub.DocId, hub.CommittedVersion);
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

/// <summary>The document has a tombstone (deleted through the HTTP API): it cannot be opened until retention purges it.</summary>
internal sealed class DocumentDeletedException(string docId) : Exception($"Document '{docId}' was deleted.")
{
    public string DocId { get; } = docId;
}

/// <summary>The catalogue names a type this server does not host (written by a newer server, or by hand).</summary>
internal sealed class UnknownDocumentTypeException(string docId, string type)
    : Exception($"Document '{docId}' has type '{type}', which this server does not host.")
{
    public string DocId { get; } = docId;

    public string Type { get; } = type;
}
