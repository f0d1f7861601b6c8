using System.Diagnostics;
using Collab.Engine.Sequencing;
using Collab.Protocol.V1;
using Collab.Server.Transport;
using Google.Protobuf;

namespace Collab.Server.Sessions;

/// <summary>
/// A document open on this node, whatever its OT type: what sessions, the registry, the cluster and the HTTP API use. The
/// one implementation is <see cref="DocumentHub{TSnapshot, TOp}"/>, instantiated per type (<see cref="DocumentKind"/>), so
/// sequencing, delivery and presence are one code path for every type.
/// </summary>
internal abstract class DocumentHub
{
    private int _refs;
    private long _idleSinceMs;

    protected DocumentHub(DocumentRegistry registry, DocumentKind kind, string docId, IDocumentReplication? replication)
    {
        Registry = registry;
        Kind = kind;
        DocId = docId;
        Replication = replication;
        _idleSinceMs = registry.NowMs;
    }

    public string DocId { get; }

    /// <summary>The document's OT type (fixed when it was created).</summary>
    public DocumentKind Kind { get; }

    /// <summary>The cluster side of the document; null on a single node.</summary>
    public IDocumentReplication? Replication { get; }

    /// <summary>True when this node sequences the document (always on a single node).</summary>
    public bool SequencesLocally => Replication?.SequencesLocally ?? true;

    /// <summary>Subscriber count as seen from outside the worker (metrics, idle checks).</summary>
    public int References => Volatile.Read(ref _refs);

    protected DocumentRegistry Registry { get; }

    /// <summary>When the last subscriber left (ms since the epoch), for the idle check.</summary>
    protected long IdleSinceMs => Volatile.Read(ref _idleSinceMs);

    // ------------------------------------------------------------------ the sequencer, as seen from any thread

    public abstract long CommittedVersion { get; }

    /// <summary>The version the sequencer has assigned (ahead of <see cref="CommittedVersion"/> while a commit is pending).</summary>
    public abstract long Version { get; }

    public abstract int PendingCount { get; }

    public abstract SequencerState State { get; }

    /// <summary>Stops the sequencer: ops it handed to the durability stage finish (committed or not) first.</summary>
    public abstract Task CloseSequencerAsync(CancellationToken abandon);

    // ------------------------------------------------------------------ life cycle (any thread)

    /// <summary>Takes a reference for a subscription; false when the hub is closing (load it again).</summary>
    public bool TryAddRef()
    {
        while (true)
        {
            int refs = Volatile.Read(ref _refs);
            if (refs < 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _refs, refs + 1, refs) == refs)
            {
                return true;
            }
        }
    }

    public void ReleaseRef()
    {
        if (Interlocked.Decrement(ref _refs) == 0)
        {
            Volatile.Write(ref _idleSinceMs, Registry.NowMs);
        }
    }

    /// <summary>Claims the hub for closing when nobody holds a reference (the caller checked it is idle).</summary>
    protected bool TryClaimForClose() => Volatile.Read(ref _refs) == 0 && Interlocked.CompareExchange(ref _refs, -1, 0) == 0;

    /// <summary>
    /// The configured interval plus up to half of it again, fixed per document: documents loaded together under an
    /// even load would otherwise all reach their snapshot threshold in the same instant and hand the store hundreds of
    /// snapshot writes at once (a stall every ack felt in the small-rooms load test).
    /// </summary>
    internal static int SnapshotInterval(string docId, int configured)
    {
        int spread = configured / 2;
        return spread == 0 ? configured : (int)Math.Min(int.MaxValue, configured + (long)((uint)string.GetHashCode(docId, StringComparison.Ordinal) % (uint)spread));
    }

    /// <summary>Idle long enough with no subscriber and nothing pending: claims the hub for closing.</summary>
    public abstract bool TryBeginClose(long nowMs, long idleMs);

    /// <summary>Final snapshot (if anything changed since the last one), then stops the sequencer and gives up the document's cluster role.</summary>
    public abstract Task CloseAsync(CancellationToken abandon);

    /// <summary>Stops serving the document here after its replica could not follow the owner.</summary>
    public abstract Task FailAsync(Exception reason);

    // ------------------------------------------------------------------ submits (encoded ops)

    /// <summary>
    /// A client's submit (op bytes as received): decoded and checked with the document's type, then sequenced here or
    /// forwarded (see <see cref="DocumentHub{TSnapshot, TOp}.SubmitEncoded"/>). Throws <see cref="Engine.OtException"/>
    /// (nothing else done) when the bytes are not a valid op of the type; calls
    /// <see cref="ClientSession.OnSubmitAccepted"/> between the check and the submit. The outcome's continuation must be
    /// quick and must not block: for a local submit it runs on the document's worker.
    /// </summary>
    public abstract PendingSubmit SubmitEncoded(Subscription from, long clientSeq, long baseVersion, ReadOnlySpan<byte> op, long receivedTimestamp);

    /// <summary>
    /// A submit forwarded by another node (or waiting to be forwarded when this node was promoted): decoded and checked,
    /// then sequenced here. Throws <see cref="Engine.OtException"/> for bytes that are no valid op.
    /// </summary>
    public abstract ValueTask<SubmitResult> SubmitForwardedHereAsync(ForwardedSubmission submission);

    /// <summary>A replica replays the owner's op <paramref name="version"/> (stored bytes, not re-checked against submit limits).</summary>
    public abstract ValueTask<SubmitResult> ReplayAsync(long version, string clientId, long clientSeq, ReadOnlySpan<byte> op, string? author);

    // ------------------------------------------------------------------ subscribers and presence

    /// <inheritdoc cref="DocumentHub{TSnapshot, TOp}.SubscribeAsync"/>
    public abstract ValueTask<bool> SubscribeAsync(Subscription subscription, long fromVersion, bool snapshot, ulong requestId, CancellationToken cancellationToken, bool resume = false);

    /// <summary>Detaches a subscription; clears its presence when it was the client's last one here.</summary>
    public abstract ValueTask DetachAsync(Subscription subscription);

    /// <summary>The document was deleted: its subscribers are dropped (on the worker) and returned, to be told so.</summary>
    internal abstract Task<List<FailedSubscriber>> DropSubscribersForDeleteAsync();

    /// <summary>Acks a resent op that had been sequenced before, in order with the ops that precede it.</summary>
    public abstract ValueTask SendDuplicateAckAsync(Subscription sub, long clientSeq, long version, ulong requestId);

    /// <summary>Transforms a client's selection from its base version to the committed one and shares it with the other subscribers.</summary>
    public abstract ValueTask<bool> UpdatePresenceAsync(Subscription sub, long baseVersion, Selection? selection, ByteString userData);

    /// <inheritdoc cref="DocumentHub{TSnapshot, TOp}.ApplyRemotePresenceAsync"/>
    public abstract Task ApplyRemotePresenceAsync(string origin, string clientId, long version, Selection? selection, ByteString userData);

    /// <summary>The clients of <paramref name="origin"/> are gone (the node died, left or restarted): clears their presence here.</summary>
    public abstract Task ClearRemotePresenceAsync(string origin);

    /// <summary>Another node opened the document (or reconnected): publishes every local client's presence again.</summary>
    public abstract Task RepublishPresenceAsync();

    /// <inheritdoc cref="DocumentHub{TSnapshot, TOp}.ExpireRemotePresenceAsync"/>
    public abstract Task<int> ExpireRemotePresenceAsync(TimeSpan expiry);
}

/// <summary>
/// A document of one OT type open on this node: its sequencer plus the local subscribers. The hub is the sequencer's
/// listener, so committed ops reach it on the sequencer's worker in version order; it frames each batch
/// once and writes the same bytes to every subscriber, except that an op's author gets an Ack in its
/// place (clients never see their own ops echoed). Subscriber lists and presence are touched only on
/// that worker (via <see cref="DocumentSequencer{TSnapshot, TOp}.RunExclusiveAsync{T}"/>), so they need no lock.
/// In a cluster (<see cref="DocumentHub.Replication"/> set) the sequencer replays the owner's ops while this node is a replica, and
/// submits are forwarded to the owner; subscribers are served by the same code in both roles. Presence is shared with the
/// other nodes through the replication too: local changes are published, other nodes' clients' entries are kept here
/// tagged with their node (docs/CLUSTER.md, "Presence").
/// </summary>
internal sealed class DocumentHub<TSnapshot, TOp> : DocumentHub, ISequencerListener<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    private readonly DocumentRegistry _registry;
    private readonly DocumentKind<TSnapshot, TOp> _kind;
    private readonly List<Subscription> _subscribers = [];
    private readonly Dictionary<string, Subscription> _byClient = new(StringComparer.Ordinal);
    private readonly DocumentPresence<TSnapshot, TOp> _presence;
    private bool _aheadReleaseQueued;
    private readonly IDocumentReplication? _replication;
    private List<DuplicateAck>? _duplicateAcks;
    private DocumentSequencer<TSnapshot, TOp>? _sequencer;
    private long _batchStamp;
    private long _lastSnapshotVersion;
    private int _snapshotQueued;
    private readonly int _snapshotEveryOps;

    public DocumentHub(DocumentRegistry registry, DocumentKind<TSnapshot, TOp> kind, string docId, long lastSnapshotVersion, IDocumentReplication? replication = null)
        : base(registry, kind, docId, replication)
    {
        _registry = registry;
        _kind = kind;
        _lastSnapshotVersion = lastSnapshotVersion;
        _replication = replication;
        _snapshotEveryOps = SnapshotInterval(docId, registry.SnapshotEveryOps);
        _presence = new DocumentPresence<TSnapshot, TOp>(kind, docId, replication, _subscribers, _byClient);
    }

    public DocumentSequencer<TSnapshot, TOp> Sequencer => _sequencer ?? throw new InvalidOperationException("The hub has no sequencer yet.");

    internal void Attach(DocumentSequencer<TSnapshot, TOp> sequencer) => _sequencer = sequencer;

    public override long CommittedVersion => Sequencer.CommittedVersion;

    public override long Version => Sequencer.Version;

    public override int PendingCount => Sequencer.PendingCount;

    public override SequencerState State => Sequencer.State;

    public override Task CloseSequencerAsync(CancellationToken abandon) => Sequencer.CloseAsync(abandon);

    public long LastSnapshotVersion => Volatile.Read(ref _lastSnapshotVersion);

    // ------------------------------------------------------------------ life cycle (any thread)

    /// <summary>Idle long enough with no subscriber and nothing pending: claims the hub for closing.</summary>
    public override bool TryBeginClose(long nowMs, long idleMs)
    {
        // An owner also serves other nodes' clients (forwarded submits), which hold no reference here.
        long idleSince = IdleSinceMs;
        if (_replication is { SequencesLocally: true })
        {
            idleSince = Math.Max(idleSince, Sequencer.LastActivity.ToUnixTimeMilliseconds());
        }

        if (References != 0 || nowMs - idleSince < idleMs || Sequencer.PendingCount != 0)
        {
            return false;
        }

        return TryClaimForClose();
    }

    /// <summary>Final snapshot (if anything changed since the last one), then stops the sequencer and gives up the document's cluster role.</summary>
    public override async Task CloseAsync(CancellationToken abandon)
    {
        try
        {
            if (SequencesLocally && Sequencer.State == SequencerState.Active && Sequencer.CommittedVersion > LastSnapshotVersion)
            {
                await WriteSnapshotAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            try
            {
                await Sequencer.CloseAsync(abandon).ConfigureAwait(false);
            }
            finally
            {
                if (_replication is not null)
                {
                    await _replication.StopAsync().ConfigureAwait(false);
                }
            }
        }
    }

    // ------------------------------------------------------------------ submit

    /// <summary>One step of a subscription's chain: forwarded to the owner, or sequenced here if this node owns the document now.</summary>
    internal ValueTask<SubmitOutcome> SubmitOrForwardAsync(Submission<TOp> submission) =>
        _replication is { SequencesLocally: false } replication
            ? replication.ForwardAsync(new ForwardedSubmission(submission.ClientId, submission.ClientSeq, submission.BaseVersion, _kind.Encode(submission.Op), submission.Author))
            : SubmitHereAsync(submission);

    /// <summary>
    /// Sequences a client's op here, or forwards it to the owner. The ack itself reaches the author through
    /// <see cref="OnCommitted"/>. One connection's submits keep their arrival order (docs/PROTOCOL.md §11): the local
    /// sequencer takes them in order, and forwarded ones go through the subscription's chain, one at a time,
    /// through retries, failover and a promotion of this node, so a later submit never overtakes an earlier one.
    /// </summary>
    public override PendingSubmit SubmitEncoded(Subscription from, long clientSeq, long baseVersion, ReadOnlySpan<byte> op, long receivedTimestamp)
    {
        TOp decoded = _kind.DecodeSubmission(op);
        from.Session.OnSubmitAccepted(from, clientSeq);
        var submission = new Submission<TOp>(from.ClientId, clientSeq, baseVersion, decoded, from.Session.Author, receivedTimestamp);
        if (_replication is { SequencesLocally: false } || from.HasChainedSubmits)
        {
            return new PendingSubmit(from.SubmitInOrderAsync(this, submission));
        }

        // The session's continuation is bookkeeping (a histogram, its in-flight count; the ack itself left in OnCommitted):
        // run on the worker, it saves a thread-pool work item and a wake-up per op.
        return new PendingSubmit(Sequencer.SubmitContinuingOnWorkerAsync(submission));
    }

    public override ValueTask<SubmitResult> SubmitForwardedHereAsync(ForwardedSubmission submission) =>
        Sequencer.SubmitAsync(new Submission<TOp>(submission.ClientId, submission.ClientSeq, submission.BaseVersion, _kind.DecodeSubmission(submission.Op.Span), submission.Author));

    public override ValueTask<SubmitResult> ReplayAsync(long version, string clientId, long clientSeq, ReadOnlySpan<byte> op, string? author) =>
        Sequencer.SubmitAsync(new Submission<TOp>(clientId, clientSeq, version - 1, _kind.Type.Decode(op), author));

    /// <summary>Sequences an op on this node's sequencer.</summary>
    internal ValueTask<SubmitOutcome> SubmitHereAsync(Submission<TOp> submission)
    {
        ValueTask<SubmitResult> pending = Sequencer.SubmitAsync(submission);
        return pending.IsCompletedSuccessfully
            ? new ValueTask<SubmitOutcome>(SubmitOutcome.From(pending.Result))
            : AwaitLocalAsync(pending);

        static async ValueTask<SubmitOutcome> AwaitLocalAsync(ValueTask<SubmitResult> pending) => SubmitOutcome.From(await pending.ConfigureAwait(false));
    }

    /// <summary>
    /// Stops serving the document here after its replica could not follow the owner (a gap the log no longer holds, an op
    /// that does not apply): every subscriber resynchronises, as after fencing, and the next subscriber loads it afresh.
    /// </summary>
    public override async Task FailAsync(Exception reason)
    {
        List<FailedSubscriber>? failed = await OnWorkerUnlessClosedAsync(_ => DropSubscribersOnWorker(), whenClosed: null).ConfigureAwait(false);
        if (failed is null)
        {
            return; // closing anyway
        }

        _registry.OnHubFailed(this, reason, DocumentFailure.Replica, failed);
    }

    // ------------------------------------------------------------------ subscribe / unsubscribe

    /// <summary>
    /// Attaches <paramref name="subscription"/> with no gap and no duplicate: a snapshot at the committed
    /// version, or the committed ops after <paramref name="fromVersion"/> (from memory, else from storage),
    /// then live ops. Returns false (after sending the error) when the subscription was refused.
    /// With <paramref name="resume"/> (a failed document's subscriber taken over by its reload) nothing but the ops after
    /// <paramref name="fromVersion"/> is sent, so the client sees one continuous stream; a refusal sends nothing either
    /// (the caller falls back to reconnecting the client).
    /// </summary>
    public override async ValueTask<bool> SubscribeAsync(Subscription subscription, long fromVersion, bool snapshot, ulong requestId, CancellationToken cancellationToken, bool resume = false)
    {
        if (!snapshot && fromVersion > Sequencer.CommittedVersion && _replication is { SequencesLocally: false } replica)
        {
            // The client saw a newer version on another node: this replica is about to receive it.
            await replica.WaitForVersionAsync(fromVersion, cancellationToken).ConfigureAwait(false);
        }

        AttachOutcome outcome = await Sequencer.RunExclusiveAsync(view => AttachOnWorker(view, subscription, fromVersion, snapshot, requestId, resume)).ConfigureAwait(false);
        if (outcome.Status != AttachStatus.NeedsHistory)
        {
            return outcome.Status == AttachStatus.Attached;
        }

        // The window no longer holds fromVersion: read the gap from the op log while live frames park.
        IReadOnlyList<OpRecord>? history = null;
        try
        {
            history = await _registry.History.ReadOpsAsync(DocId, fromVersion, outcome.UpTo, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            _registry.Log.HistoryReadFailed(DocId, fromVersion, ex);
        }
        catch (OperationCanceledException)
        {
            history = null;
        }

        return await Sequencer.RunExclusiveAsync(view => FinishCatchUpOnWorker(subscription, history, fromVersion, outcome.UpTo, requestId, resume)).ConfigureAwait(false);
    }

    /// <summary>Detaches a subscription; clears its presence when it was the client's last one here.</summary>
    public override async ValueTask DetachAsync(Subscription subscription) =>
        await OnWorkerUnlessClosedAsync(_ => DetachOnWorker(subscription), whenClosed: false).ConfigureAwait(false);

    private AttachOutcome AttachOnWorker(in CommittedView<TSnapshot, TOp> view, Subscription sub, long fromVersion, bool snapshot, ulong requestId, bool resume)
    {
        if (sub.Session.IsClosed)
        {
            return new AttachOutcome(AttachStatus.Refused, 0);
        }

        if (!snapshot && fromVersion > view.Version)
        {
            if (!resume)
            {
                sub.Session.SendError(ErrorCode.VersionFromFuture, $"Document '{DocId}' is at version {view.Version}; version {fromVersion} does not exist yet.", requestId, DocId);
            }

            return new AttachOutcome(AttachStatus.Refused, 0);
        }

        _subscribers.Add(sub);
        _byClient[sub.ClientId] = sub;
        SessionMetrics.Subscriptions.Inc();

        AttachStatus status = AttachStatus.Attached;
        if (snapshot || fromVersion < 0)
        {
            sub.SendOwned(ServerFrames.Snapshot(_kind.ToMessage(DocId, view.Version, view.Snapshot), requestId));
            sub.Version = view.Version;
        }
        else
        {
            if (!resume)
            {
                sub.SendOwned(ServerFrames.Subscribed(DocId, fromVersion, view.Version, _kind.Name, requestId));
            }

            if (view.TryGetOpsAfter(fromVersion, out IReadOnlyList<OpRecord> ops))
            {
                SendCatchUp(sub, ops);
                sub.Version = view.Version;
            }
            else
            {
                sub.Park();
                status = AttachStatus.NeedsHistory;
            }
        }

        _presence.SendSnapshot(view, sub);
        return new AttachOutcome(status, view.Version);
    }

    private bool FinishCatchUpOnWorker(Subscription sub, IReadOnlyList<OpRecord>? history, long fromVersion, long upTo, ulong requestId, bool resume)
    {
        if (sub.Detached)
        {
            sub.DropParked();
            return false;
        }

        if (history is null || history.Count != upTo - fromVersion || (history.Count > 0 && history[0].Version != fromVersion + 1))
        {
            // The log no longer has the gap (pruned) or could not be read: the client must start over from a snapshot.
            sub.DropParked();
            DetachOnWorker(sub);
            if (resume)
            {
                return false; // the caller reconnects the client, which then resubscribes on its own
            }

            sub.Session.OnSubscriptionLost(sub);
            sub.Session.SendError(
                history is null ? ErrorCode.Unavailable : ErrorCode.VersionTooOld,
                history is null
                    ? $"The history of document '{DocId}' could not be read; subscribe again."
                    : $"Version {fromVersion} of document '{DocId}' is no longer in the history; subscribe with a snapshot.",
                requestId,
                DocId);
            return false;
        }

        // Frames parked meanwhile carry later versions (and set Version when they were parked).
        sub.Version = Math.Max(sub.Version, upTo);
        sub.Unpark(s => SendCatchUp(s, history));
        return true;
    }

    private bool DetachOnWorker(Subscription sub)
    {
        if (sub.Detached)
        {
            return false;
        }

        sub.Detached = true;
        sub.DropParked();
        _subscribers.Remove(sub);
        SessionMetrics.Subscriptions.Dec();
        if (_byClient.TryGetValue(sub.ClientId, out Subscription? current) && ReferenceEquals(current, sub))
        {
            _byClient.Remove(sub.ClientId);
            _presence.OnClientLeft(sub.ClientId, Sequencer.CommittedVersion);
        }

        return true;
    }

    /// <summary>
    /// Catch-up ops for one subscriber, the client's own ops from earlier connections included as ops (docs/PROTOCOL.md
    /// §5.3.3: a client that resumes from before them rebuilds the text from them, and one with such an op in flight takes
    /// it as its ack). Only ops submitted through this subscription's connection come as acks (a failed document's
    /// subscribers resumed in place: the ack may not have been sent before the failure).
    /// </summary>
    private void SendCatchUp(Subscription sub, IReadOnlyList<OpRecord> ops)
    {
        int batch = _registry.Options.CatchUpBatchOps;
        var run = new List<OpRecord>(Math.Min(batch, ops.Count));
        foreach (OpRecord op in ops)
        {
            if (sub.SubmittedHere(op.ClientSeq) && string.Equals(op.ClientId, sub.ClientId, StringComparison.Ordinal))
            {
                FlushRun(sub, run);
                sub.SendOwned(ServerFrames.Ack(DocId, op.ClientSeq, op.Version, duplicate: false));
                continue;
            }

            run.Add(op);
            if (run.Count == batch)
            {
                FlushRun(sub, run);
            }
        }

        FlushRun(sub, run);
    }

    private void FlushRun(Subscription sub, List<OpRecord> run)
    {
        if (run.Count > 0)
        {
            sub.SendOwned(ServerFrames.Ops(DocId, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(run)));
            run.Clear();
        }
    }

    // ------------------------------------------------------------------ sequencer listener (worker)

    public void OnCommitted(in CommittedBatch<TSnapshot, TOp> batch)
    {
        _registry.FaultInjection?.Invoke(DocId, batch.Version);
        ReadOnlySpan<OpRecord> records = batch.Records;
        bool local = SequencesLocally;
        if (local)
        {
            SessionMetrics.OpsCommitted.Inc(records.Length);
        }

        // Publish first: other nodes' clients wait on it, and it only queues.
        _replication?.OnCommitted(records);
        if (_subscribers.Count > 0)
        {
            Broadcast(records, batch.Timestamps);
        }

        if (_duplicateAcks is { Count: > 0 })
        {
            SendDueDuplicateAcks(batch.Version);
        }

        if (_presence.HasAhead && !_aheadReleaseQueued && _presence.AnyAheadReached(batch.Version))
        {
            // Transforming needs the committed view, which the listener does not get: share them right after this batch.
            _aheadReleaseQueued = true;
            ReleaseAheadPresenceAsync().Forget(_registry.Log.Logger, "release ahead presence");
        }

        // Only the sequencing node writes snapshots; a replica's would be the same document.
        if (local && batch.Version - Volatile.Read(ref _lastSnapshotVersion) >= _snapshotEveryOps && Interlocked.Exchange(ref _snapshotQueued, 1) == 0)
        {
            PeriodicSnapshotAsync().Forget(_registry.Log.Logger, "periodic snapshot");
        }
    }

    private void Broadcast(ReadOnlySpan<OpRecord> records, ReadOnlySpan<OpTimestamps> timestamps)
    {
        // Mark the subscribers that submitted an op of this batch on their connection: they need acks in place of their ops.
        long stamp = ++_batchStamp;
        long version = records[^1].Version;
        bool anyAuthor = false;
        foreach (ref readonly OpRecord record in records)
        {
            if (_byClient.TryGetValue(record.ClientId, out Subscription? author) && author.SubmittedHere(record.ClientSeq))
            {
                author.AuthorStamp = stamp;
                anyAuthor = true;
            }
        }

        OutboundMessage? shared = null;
        try
        {
            foreach (Subscription sub in _subscribers)
            {
                sub.Version = version;
                if (anyAuthor && sub.AuthorStamp == stamp)
                {
                    SendMixed(sub, records, timestamps);
                    continue;
                }

                shared ??= ServerFrames.Ops(DocId, records);
                sub.Send(shared);
            }
        }
        finally
        {
            shared?.Dispose();
        }

        if (shared is not null)
        {
            SessionMetrics.BroadcastFrames.Inc();
        }
    }

    private void SendMixed(Subscription sub, ReadOnlySpan<OpRecord> records, ReadOnlySpan<OpTimestamps> timestamps)
    {
        int runStart = 0;
        for (int i = 0; i < records.Length; i++)
        {
            if (!sub.SubmittedHere(records[i].ClientSeq) || !string.Equals(records[i].ClientId, sub.ClientId, StringComparison.Ordinal))
            {
                continue;
            }

            if (i > runStart)
            {
                sub.SendOwned(ServerFrames.Ops(DocId, records[runStart..i]));
            }

            OutboundMessage ack = ServerFrames.Ack(DocId, records[i].ClientSeq, records[i].Version, duplicate: false);
            sub.SendOwned(i < timestamps.Length ? ack.WithTimestamps(timestamps[i]) : ack); // Hosting.LatencyMetrics
            runStart = i + 1;
        }

        if (runStart < records.Length)
        {
            sub.SendOwned(ServerFrames.Ops(DocId, records[runStart..]));
        }
    }

    public void OnFenced(VersionConflictException conflict) => _registry.OnHubFailed(this, conflict, DocumentFailure.Fenced, DropSubscribersOnWorker());

    /// <summary>The document was deleted: its subscribers are dropped (on the worker) and returned, to be told so.</summary>
    internal override Task<List<FailedSubscriber>> DropSubscribersForDeleteAsync() => Sequencer.RunExclusiveAsync(_ => DropSubscribersOnWorker()).AsTask();

    public void OnFaulted(Exception exception) => _registry.OnHubFailed(this, exception, DocumentFailure.Fault, DropSubscribersOnWorker());

    /// <summary>
    /// Detaches every subscriber of a document that stopped, with what its reload needs to resume it in place: the version
    /// it had been sent everything up to, and its presence.
    /// </summary>
    private List<FailedSubscriber> DropSubscribersOnWorker()
    {
        var failed = new List<FailedSubscriber>(_subscribers.Count);
        foreach (Subscription sub in _subscribers)
        {
            // A subscriber still catching up from the log (parked) has no version it was sent everything up to.
            bool resumable = !sub.IsParked;
            sub.Detached = true;
            sub.DropParked();
            Selection? selection = null;
            long presenceVersion = 0;
            ByteString userData = ByteString.Empty;
            if (_byClient.TryGetValue(sub.ClientId, out Subscription? current) && ReferenceEquals(current, sub))
            {
                _presence.TryGetLocal(sub.ClientId, out presenceVersion, out selection, out userData);
            }

            failed.Add(new FailedSubscriber(sub, resumable ? sub.Version : -1, presenceVersion, selection, userData));
            SessionMetrics.Subscriptions.Dec();
        }

        _subscribers.Clear();
        _byClient.Clear();
        _presence.Clear();
        _duplicateAcks?.Clear();
        return failed;
    }

    // ------------------------------------------------------------------ acks for resent ops

    /// <summary>
    /// Acks a resent op that had been sequenced before. Routed through the worker so the ack cannot
    /// overtake ops that precede it: the original is committed by the time a local sequencer reports it, while a
    /// replica may not have received it from the owner yet, in which case the ack waits for it here.
    /// </summary>
    /// <remarks>A closed document sends nothing: the client resubscribes and resends, and is acked then.</remarks>
    public override async ValueTask SendDuplicateAckAsync(Subscription sub, long clientSeq, long version, ulong requestId) =>
        await OnWorkerUnlessClosedAsync(
            view =>
            {
                if (view.Version >= version)
                {
                    sub.SendOwned(ServerFrames.Ack(DocId, clientSeq, version, duplicate: true, requestId));
                }
                else
                {
                    (_duplicateAcks ??= []).Add(new DuplicateAck(sub, clientSeq, version, requestId));
                }

                return true;
            },
            whenClosed: false).ConfigureAwait(false);

    private void SendDueDuplicateAcks(long committed)
    {
        // Compacts in place, so an index loop: assigning an element bumps List<T>'s version, and a foreach over the list
        // then threw on its next step whenever an ack had to keep waiting (issue 13 §1: the document stopped).
        List<DuplicateAck> acks = _duplicateAcks!;
        int kept = 0;
        for (int i = 0; i < acks.Count; i++)
        {
            DuplicateAck ack = acks[i];
            if (ack.Version <= committed)
            {
                ack.Subscription.SendOwned(ServerFrames.Ack(DocId, ack.ClientSeq, ack.Version, duplicate: true, ack.RequestId));
            }
            else
            {
                acks[kept++] = ack;
            }
        }

        acks.RemoveRange(kept, acks.Count - kept);
    }

    // ------------------------------------------------------------------ presence

    /// <summary>Transforms a client's selection from its base version to the committed one and shares it with the other subscribers.</summary>
    public override ValueTask<bool> UpdatePresenceAsync(Subscription sub, long baseVersion, Selection? selection, ByteString userData) =>
        Sequencer.RunExclusiveAsync(view => _presence.Update(view, sub, baseVersion, selection, userData));

    /// <summary>
    /// Presence of a client of another node (<paramref name="origin"/>), at that node's committed <paramref name="version"/>
    /// (<paramref name="selection"/> null: cleared there). Shared with the local subscribers once this node has delivered
    /// the ops up to that version, so no client gets positions that refer to ops it has not seen; kept (tagged with its
    /// node) for later subscribers' presence snapshots. A clear removes only an entry of the same node: a client that moved
    /// to another node keeps the presence it set there even when its old node's clear arrives late.
    /// </summary>
    public override Task ApplyRemotePresenceAsync(string origin, string clientId, long version, Selection? selection, ByteString userData) =>
        OnWorkerUnlessClosedAsync(view => _presence.ApplyRemote(view, origin, clientId, version, selection, userData), whenClosed: false);

    /// <summary>The clients of <paramref name="origin"/> are gone (the node died, left or restarted): clears their presence here.</summary>
    public override Task ClearRemotePresenceAsync(string origin) =>
        OnWorkerUnlessClosedAsync(
            view =>
            {
                _presence.ClearRemote(view, origin);
                return true;
            },
            whenClosed: false);

    /// <summary>Another node opened the document (or reconnected): publishes every local client's presence again.</summary>
    public override Task RepublishPresenceAsync() =>
        OnWorkerUnlessClosedAsync(
            view =>
            {
                _presence.Republish(view);
                return true;
            },
            whenClosed: false);

    /// <summary>
    /// Drops the presence of remote clients whose node has not published it for <paramref name="expiry"/>: nodes republish
    /// their clients' presence every Cluster:PresenceRefreshInterval, so such an entry outlived a clear that was lost.
    /// Returns how many were dropped.
    /// </summary>
    public override Task<int> ExpireRemotePresenceAsync(TimeSpan expiry)
    {
        long cutoff = Stopwatch.GetTimestamp() - (long)(expiry.TotalSeconds * Stopwatch.Frequency);
        return OnWorkerUnlessClosedAsync(view => _presence.ExpireRemote(view, cutoff), whenClosed: 0);
    }

    private Task<bool> ReleaseAheadPresenceAsync() =>
        OnWorkerUnlessClosedAsync(
            view =>
            {
                _aheadReleaseQueued = false;
                _presence.ReleaseAhead(view);
                return true;
            },
            whenClosed: false);

    /// <summary>
    /// Runs <paramref name="action"/> on the document's worker, or gives <paramref name="whenClosed"/> when the document
    /// closed first (its sequencer is disposed): what such callers do then is nothing, as a closed document has nobody
    /// left to deliver to, and its clients resubscribe (and resend) elsewhere.
    /// </summary>
    private async Task<T> OnWorkerUnlessClosedAsync<T>(Func<CommittedView<TSnapshot, TOp>, T> action, T whenClosed)
    {
        try
        {
            return await Sequencer.RunExclusiveAsync(action).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            return whenClosed;
        }
    }

    // ------------------------------------------------------------------ snapshots

    private async Task PeriodicSnapshotAsync()
    {
        try
        {
            await WriteSnapshotAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A failed snapshot loses nothing (the ops are in the log); the next one retries.
            _registry.Log.SnapshotFailed(DocId, ex);
        }
        finally
        {
            Volatile.Write(ref _snapshotQueued, 0);
        }
    }

    private async Task WriteSnapshotAsync()
    {
        SnapshotRecord snapshot = await Sequencer.RunExclusiveAsync(view => view.CreateSnapshotRecord()).ConfigureAwait(false);
        if (snapshot.Version <= LastSnapshotVersion)
        {
            return;
        }

        await _registry.Store.WriteSnapshotAsync(snapshot, CancellationToken.None).ConfigureAwait(false);
        SessionMetrics.SnapshotsWritten.Inc();
        long current;
        while ((current = Volatile.Read(ref _lastSnapshotVersion)) < snapshot.Version
               && Interlocked.CompareExchange(ref _lastSnapshotVersion, snapshot.Version, current) != current)
        {
        }
    }

    private enum AttachStatus
    {
        Attached,
        NeedsHistory,
        Refused,
    }

    private readonly record struct AttachOutcome(AttachStatus Status, long UpTo);

    private readonly record struct DuplicateAck(Subscription Subscription, long ClientSeq, long Version, ulong RequestId);
}

/// <summary>Why a document stopped on this node.</summary>
internal enum DocumentFailure
{
    /// <summary>An unexpected fault: the sequencer or its listener threw, or the durability stage failed outside its contract.</summary>
    Fault,

    /// <summary>Another writer holds a version (or the lease): expected during ownership changes.</summary>
    Fenced,

    /// <summary>A replica could not follow the owner's stream (an op that does not apply, a gap the log no longer holds).</summary>
    Replica,
}

/// <summary>
/// A subscriber of a document that stopped, as its reload resumes it: every op up to <paramref name="Version"/> was sent
/// to it (-1: unknown, it was still catching up), and its presence (<paramref name="Selection"/> null: none) at
/// <paramref name="PresenceVersion"/>.
/// </summary>
internal sealed record FailedSubscriber(Subscription Subscription, long Version, long PresenceVersion, Selection? Selection, ByteString UserData);
