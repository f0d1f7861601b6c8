using System.Collections.Concurrent;
using System.Diagnostics;
using Collab.Engine;
using Collab.Engine.Sequencing;
using Collab.Protocol.V1;
using Collab.Server.Sessions;
using Google.Protobuf;
using NATS.Client.Core;

namespace Collab.Server.Cluster;

/// <summary>
/// One document open on this node, as a member of the cluster: its owner (this node holds the lease and sequences it)
/// or a replica (another node sequences it; this node replays the owner's ops and forwards its clients' submits).
/// </summary>
/// <remarks>
/// <para>A replica runs the same <see cref="DocumentSequencer{TSnapshot, TOp}"/> as an owner, fed with the owner's ops
/// in version order, each submitted at base version = its version − 1: with nothing to transform against, the sequencer
/// assigns exactly the owner's version, and its dedupe state, history window and committed view match the owner's. The
/// hub's subscriber logic therefore runs unchanged over both roles. As a replica the document's durability stage is
/// this object, which "commits" only the very ops it was just fed (anything else is a bug or a race with a role change
/// and fences the sequencer); as an owner it is the group-commit stage, behind the write fence.</para>
/// <para>Role changes keep the sequencer and its subscribers: promotion catches the replica up from the op log after
/// the lease is taken (the log is final then: the fence stops every earlier owner), then switches the stage; demotion
/// stops taking submits, lets those in flight commit, then switches back. Only a fenced or diverged document makes its
/// subscribers resync (the hub fails and the registry reloads it on the next subscribe).</para>
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "Its end is StopAsync (cancels _lifetime); the semaphores and token sources hold no unmanaged state and are left to the GC.")]
internal sealed class ClusterDocument : IDocumentReplication, IDurabilityStage
{
    private const int FeedChunk = 256;
    private const int LogReadChunk = 5_000;

    private readonly ClusterNode _node;
    private readonly string _opsSubject;
    private readonly string _submitSubject;
    private readonly string _presenceSubject;
    private readonly CancellationTokenSource _lifetime = new();
    private readonly TaskCompletionSource<DocumentHub> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _transition = new(1, 1);
    private readonly SemaphoreSlim _feed = new(1, 1);
    private readonly ConcurrentQueue<ExpectedOp> _expected = new();

    private INatsSub<DocOps>? _opsSub;
    private INatsSub<ForwardSubmit>? _submitSub;
    private INatsSub<ClusterPresence>? _presenceSub;
    private int _role = (int)Role.Replica;
    private long _epoch;
    private long _lostEpoch;
    private long _observedEpoch;
    private CancellationTokenSource _ownerChanged = new();
    private readonly TimeSpan _attemptTimeout;
    private long _fedVersion;
    private long _knownVersion;
    private long _publishedVersion;
    private long _lastCommitMs;
    private long _ownedSince;
    private int _gapCheckScheduled;
    private int _stopping;

    public ClusterDocument(ClusterNode node, string docId)
    {
        _node = node;
        DocId = docId;
        _opsSubject = ClusterSubjects.Ops(docId);
        _submitSubject = ClusterSubjects.Submit(docId);
        _presenceSubject = ClusterSubjects.Presence(docId);
        _attemptTimeout = node.Options.ForwardTimeout / 3;
    }

    private enum Role
    {
        /// <summary>Follows the owner's stream; submits are forwarded.</summary>
        Replica,

        /// <summary>Holds the lease and sequences; serves forwarded submits and publishes commits.</summary>
        Owner,

        /// <summary>Giving ownership up: takes no new submits, lets those in flight commit (and publishes them).</summary>
        Draining,
    }

    public string DocId { get; }

    public bool SequencesLocally => Volatile.Read(ref _role) == (int)Role.Owner;

    public bool IsOwner => SequencesLocally;

    /// <summary>Holds (or is giving up) the lease: its commits go to the op log.</summary>
    private bool WritesLog => Volatile.Read(ref _role) != (int)Role.Replica;

    public long Epoch => Interlocked.Read(ref _epoch);

    public IDurabilityStage Stage => this;

    public bool IsStopping => Volatile.Read(ref _stopping) != 0;

    /// <summary>The hub exists: the document is loaded and live here.</summary>
    public bool IsStarted => _started.Task.IsCompletedSuccessfully;

    /// <summary>Completes when <see cref="StopAsync"/> finished (a reopened document waits for its predecessor).</summary>
    public Task Stopped => _stopped.Task;

    /// <summary>How long this node has owned the document (hand-offs wait a little, so views that briefly disagree do not bounce it).</summary>
    public TimeSpan OwnedFor => IsOwner ? Stopwatch.GetElapsedTime(Volatile.Read(ref _ownedSince)) : TimeSpan.Zero;

    /// <summary>Milliseconds since the Unix epoch of the last commit this node sequenced (ticks follow activity).</summary>
    public long LastCommitMs => Volatile.Read(ref _lastCommitMs);

    private DocumentHub? Hub => _started.Task.IsCompletedSuccessfully ? _started.Task.Result : null;

    // ------------------------------------------------------------------ opening (before the registry loads the document)

    /// <summary>Subscribes to the owner's stream and the other nodes' presence; messages buffer in the subscriptions until <see cref="Start"/>.</summary>
    public async Task SubscribeAsync(CancellationToken cancellationToken)
    {
        _opsSub = await _node.Nats.SubscribeCoreAsync(_opsSubject, serializer: ProtobufNatsSerializer<DocOps>.Instance, cancellationToken: cancellationToken).ConfigureAwait(false);
        RunOpsLoopAsync(_opsSub).Forget(_node.Log.Logger, "follow ops");
        _presenceSub = await _node.Nats.SubscribeCoreAsync(_presenceSubject, serializer: ProtobufNatsSerializer<ClusterPresence>.Instance, cancellationToken: cancellationToken).ConfigureAwait(false);
        RunPresenceLoopAsync(_presenceSub).Forget(_node.Log.Logger, "follow presence");
    }

    /// <summary>Takes the lease before the first load (this node is the preferred owner, or was asked to own it).</summary>
    public async Task<bool> TryAcquireInitialAsync(CancellationToken cancellationToken)
    {
        long sentAt = Stopwatch.GetTimestamp();
        long? epoch = await _node.Leases.TryAcquireAsync(DocId, _node.Options.LeaseSafetyMargin, cancellationToken).ConfigureAwait(false);
        if (epoch is not { } acquired)
        {
            return false;
        }

        _node.LeaseTable.Add(DocId, acquired, sentAt);
        _node.CommitStage.ClearFence(DocId);
        Interlocked.Exchange(ref _epoch, acquired);
        Volatile.Write(ref _ownedSince, Stopwatch.GetTimestamp());
        Volatile.Write(ref _role, (int)Role.Owner);
        return true;
    }

    public void Start(DocumentHub hub, long version)
    {
        Volatile.Write(ref _fedVersion, version);
        Volatile.Write(ref _publishedVersion, version);
        _started.TrySetResult(hub);

        // Subscribed already, so nothing published from now on is missed: ask for what the other nodes' clients showed before.
        RequestPresenceSync();
        if (IsOwner)
        {
            _node.Log.Owning(DocId, Epoch, version);
            ClusterMetrics.OwnershipChanges.WithLabels("acquired").Inc();
            ClusterMetrics.OwnedDocuments.Inc();
            StartServingAsync().Forget(_node.Log.Logger, "start serving");
        }
        else
        {
            ClusterMetrics.ReplicaDocuments.Inc();
            _node.HintOwner(this);
        }
    }

    // ------------------------------------------------------------------ durability stage

    /// <summary>As owner: the op log (group commit behind the write fence). As replica: accepts exactly the ops being fed.</summary>
    public ValueTask CommitAsync(OpRecord op, CancellationToken cancellationToken)
    {
        if (WritesLog)
        {
            return _node.CommitStage.CommitAsync(op, cancellationToken);
        }

        if (_expected.TryPeek(out ExpectedOp expected)
            && expected.Version == op.Version
            && expected.ClientSeq == op.ClientSeq
            && string.Equals(expected.ClientId, op.ClientId, StringComparison.Ordinal)
            && _expected.TryDequeue(out _))
        {
            return ValueTask.CompletedTask;
        }

        // A client's op reached the sequencer of a replica (it lost ownership while the submit was on its way in). It
        // was never durable: fence the sequencer; the hub fails and the clients resend to the owner.
        return ValueTask.FromException(new VersionConflictException(DocId, op.Version));
    }

    // ------------------------------------------------------------------ hub callbacks

    public void OnCommitted(ReadOnlySpan<OpRecord> records)
    {
        if (!WritesLog)
        {
            return; // replayed from the owner's stream
        }

        var message = new DocOps { DocId = DocId, Owner = _node.NodeId, Epoch = Epoch, Version = records[^1].Version };
        foreach (ref readonly OpRecord record in records)
        {
            message.Ops.Add(ServerFrames.ToWire(record));
        }

        _node.Publish(_opsSubject, message);
        Volatile.Write(ref _publishedVersion, records[^1].Version);
        Volatile.Write(ref _lastCommitMs, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }

    public void PublishPresence(string clientId, long version, Selection? selection, ByteString userData) =>
        _node.PublishPresence(new ClusterPresence
        {
            DocId = DocId,
            NodeId = _node.NodeId,
            ClientId = clientId,
            Version = version,
            Selection = selection,
            UserData = userData,
        });

    /// <summary>Asks every other node with the document open to publish its clients' presence again (opened here, or NATS reconnected).</summary>
    public void RequestPresenceSync()
    {
        if (IsStarted && !IsStopping)
        {
            _node.PublishPresence(new ClusterPresence { DocId = DocId, NodeId = _node.NodeId, Sync = true });
        }
    }

    /// <summary>
    /// The periodic presence round: republishes this node's clients' presence (the other nodes refresh their entries;
    /// unchanged ones reach no client) and, when <paramref name="expire"/>, drops remote entries their node stopped
    /// republishing for <paramref name="expiry"/>.
    /// </summary>
    public async Task RefreshPresenceAsync(TimeSpan expiry, bool expire)
    {
        if (Hub is not { } hub || !IsStarted || IsStopping)
        {
            return;
        }

        if (_node.IsConnected)
        {
            await hub.RepublishPresenceAsync().ConfigureAwait(false);
        }

        if (!expire)
        {
            return;
        }

        int expired = await hub.ExpireRemotePresenceAsync(expiry).ConfigureAwait(false);
        if (expired > 0)
        {
            ClusterMetrics.PresenceExpired.Inc(expired);
        }
    }

    /// <summary>The clients of <paramref name="nodeId"/> are gone (it died, left or restarted): their presence goes too.</summary>
    public void OnNodeGone(string nodeId)
    {
        if (Hub is { } hub)
        {
            hub.ClearRemotePresenceAsync(nodeId).Forget(_node.Log.Logger, "clear a gone node's presence");
        }
    }

    public async ValueTask<SubmitOutcome> ForwardAsync(ForwardedSubmission submission)
    {
        long started = Stopwatch.GetTimestamp();
        long deadline = started + (long)(_node.Options.ForwardTimeout.TotalSeconds * Stopwatch.Frequency);
        var request = new ForwardSubmit
        {
            DocId = DocId,
            ClientId = submission.ClientId,
            ClientSeq = (ulong)submission.ClientSeq,
            BaseVersion = submission.BaseVersion,
            Op = submission.Op,
            Author = submission.Author ?? string.Empty,
            Origin = _node.NodeId,
        };

        // The session noted the submit (Subscription.NoteSubmit) before it called this, so every op committed here from now
        // on reaches the author's subscription as an Ack, in the stream (DocumentHub.Broadcast). See AckedInStream.
        long committedAtStart = Hub?.CommittedVersion ?? long.MaxValue;
        for (int attempt = 0; ; attempt++)
        {
            DocumentHub? hub = Hub;
            if (SequencesLocally && hub is not null)
            {
                // Promoted while the submit waited: sequence it here.
                return AckedInStream(await SubmitHereAsync(hub, submission).ConfigureAwait(false), committedAtStart);
            }

            TimeSpan remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (remaining <= TimeSpan.Zero || IsStopping)
            {
                ClusterMetrics.ForwardedSubmits.WithLabels("unavailable").Inc();
                return SubmitOutcome.Unavailable($"The owner of document '{DocId}' could not be reached in time; resend the op.");
            }

            // One attempt waits at most a third of the budget: an owner that froze keeps its NATS subscription (the server
            // only notices a dead client after minutes), so a request sent to it is never answered, and only a new
            // attempt reaches the next owner once it subscribed. A new owner announcing itself (a newer epoch on the
            // stream) ends the attempt at once.
            TimeSpan attemptTimeout = remaining < _attemptTimeout ? remaining : _attemptTimeout;
            CancellationToken ownerChanged = Volatile.Read(ref _ownerChanged).Token;
            ForwardResult? result = null;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_lifetime.Token, ownerChanged);
                timeout.CancelAfter(attemptTimeout);
                NatsMsg<ForwardResult> reply = await _node.Nats.RequestAsync(
                    _submitSubject,
                    request,
                    requestSerializer: ProtobufNatsSerializer<ForwardSubmit>.Instance,
                    replySerializer: ProtobufNatsSerializer<ForwardResult>.Instance,
                    replyOpts: new NatsSubOpts { Timeout = attemptTimeout },
                    cancellationToken: timeout.Token).ConfigureAwait(false);
                result = reply.Data;
                if (result is null)
                {
                    // A status reply without payload: nobody owns the document right now.
                    await _node.EnsureOwnerAsync(this, remaining).ConfigureAwait(false);
                    continue;
                }
            }
            catch (NatsNoRespondersException)
            {
                await _node.EnsureOwnerAsync(this, remaining).ConfigureAwait(false);
                continue;
            }
            catch (OperationCanceledException) when (ownerChanged.IsCancellationRequested && !_lifetime.IsCancellationRequested)
            {
                continue; // a new owner took over: resend to it now (the old one, if it did sequence the op, is deduplicated)
            }
            catch (Exception ex) when (ex is NatsNoReplyException or OperationCanceledException or NatsException or TimeoutException)
            {
                // Lost on the way or the owner is slow or gone: resending is safe, the owner deduplicates. Make sure an owner
                // is being elected (a frozen owner's subscription still takes requests, so "no responders" never comes).
                if (attempt > 0)
                {
                    await _node.EnsureOwnerAsync(this, remaining).ConfigureAwait(false);
                }

                await BackOffAsync(attempt).ConfigureAwait(false);
                continue;
            }

            switch (result.Status)
            {
                case ForwardStatus.NotOwner or ForwardStatus.Fenced or ForwardStatus.Closed or ForwardStatus.Unavailable:
                    // Ownership is moving: ask again shortly.
                    await BackOffAsync(attempt).ConfigureAwait(false);
                    continue;
                case ForwardStatus.Acked or ForwardStatus.Duplicate:
                    NoteVersion(result.Version);
                    break;
            }

            SubmitOutcome outcome = AckedInStream(ToOutcome(result), committedAtStart);
            ClusterMetrics.ForwardedSubmits.WithLabels(
                result.Status == ForwardStatus.Acked ? "acked" : outcome.Status == SubmitStatus.Acked ? "acked_in_stream" : "other").Inc();
            ClusterMetrics.ForwardSeconds.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
            return outcome;
        }
    }

    // ------------------------------------------------------------------ owner: serving forwarded submits

    /// <summary>
    /// Answers forwarded submits while this node owns the document. The loop ends only when ownership does (demotion
    /// unsubscribes) or the document stops: an owner that silently stopped serving would leave every other node's clients
    /// with UNAVAILABLE for as long as it renews its lease, so a failed subscription is made again.
    /// </summary>
    private async Task StartServingAsync()
    {
        while (IsOwner && !IsStopping)
        {
            try
            {
                INatsSub<ForwardSubmit> sub = await _node.Nats.SubscribeCoreAsync(
                    _submitSubject, serializer: ProtobufNatsSerializer<ForwardSubmit>.Instance, cancellationToken: _lifetime.Token).ConfigureAwait(false);
                _submitSub = sub;
                if (!IsOwner || IsStopping)
                {
                    await UnsubscribeAsync(sub).ConfigureAwait(false);
                    return;
                }

                _node.PublishTick(this);
                await foreach (NatsMsg<ForwardSubmit> msg in sub.Msgs.ReadAllAsync(_lifetime.Token).ConfigureAwait(false))
                {
                    Serve(msg);
                }
            }
            catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                _node.Log.LoopFailed("serve " + DocId, ex);
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(100), _lifetime.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private void Serve(NatsMsg<ForwardSubmit> msg)
    {
        try
        {
            ServeOne(msg);
        }
        catch (Exception ex)
        {
            // Whatever one request does wrong must not stop the others; the requester resends, dedupe makes it safe.
            _node.Log.ServeFailed(DocId, ex);
            Reply(msg, new ForwardResult { Status = ForwardStatus.Unavailable, Message = "The owner could not handle the op; resend it." });
        }
    }

    private void ServeOne(NatsMsg<ForwardSubmit> msg)
    {
        ForwardSubmit? request = msg.Data;
        DocumentHub? hub = Hub;
        if (request is null)
        {
            return;
        }

        if (!IsOwner || hub is null)
        {
            Reply(msg, new ForwardResult { Status = ForwardStatus.NotOwner, Message = $"Node {_node.NodeId} does not own document '{DocId}'." });
            return;
        }

        var submission = new ForwardedSubmission(
            request.ClientId, request.ClientSeq > long.MaxValue ? 0 : (long)request.ClientSeq, request.BaseVersion, request.Op, request.Author.Length == 0 ? null : request.Author);
        ValueTask<SubmitResult> pending;
        try
        {
            // Decoded and checked with the document's own type.
            pending = hub.SubmitForwardedHereAsync(submission);
        }
        catch (OtException ex)
        {
            Reply(msg, new ForwardResult { Status = ForwardStatus.InvalidOp, Message = ex.Message });
            return;
        }

        ClusterMetrics.ServedSubmits.Inc();
        if (pending.IsCompletedSuccessfully)
        {
            Reply(msg, ToResult(pending.Result));
        }
        else
        {
            ReplyWhenDoneAsync(msg, pending).Forget(_node.Log.Logger, "forwarded submit reply");
        }
    }

    private async Task ReplyWhenDoneAsync(NatsMsg<ForwardSubmit> msg, ValueTask<SubmitResult> pending)
    {
        ForwardResult result;
        try
        {
            result = ToResult(await pending.ConfigureAwait(false));
        }
        catch (Exception ex)
        {
            _node.Log.ServeFailed(DocId, ex);
            result = new ForwardResult { Status = ForwardStatus.Unavailable, Message = "The op could not be sequenced; resend it." };
        }

        Reply(msg, result);
    }

    private static void Reply(NatsMsg<ForwardSubmit> msg, ForwardResult result)
    {
        ValueTask reply;
        try
        {
            reply = msg.ReplyAsync(result, serializer: ProtobufNatsSerializer<ForwardResult>.Instance);
        }
        catch (Exception ex)
        {
            reply = ValueTask.FromException(ex);
        }

        if (!reply.IsCompletedSuccessfully)
        {
            // Not FireAndForget: a lost reply is no error to log (the requester times out and resends, and the op is
            // deduplicated), so ObserveAsync consumes the task and swallows its failure itself; it never faults.
            _ = ObserveAsync(reply);
        }

        async Task ObserveAsync(ValueTask task)
        {
            try
            {
                await task.ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The requester times out and resends; the op is deduplicated.
            }
        }
    }

    // ------------------------------------------------------------------ replica: following the owner's stream

    /// <summary>
    /// Follows the owner's stream. Never ends on its own while the document is open: a replica that stopped following
    /// would serve a frozen document, so anything unexpected fails the document (counted; the registry reloads it and
    /// resumes its subscribers, and the reload subscribes afresh).
    /// </summary>
    private async Task RunOpsLoopAsync(INatsSub<DocOps> sub)
    {
        try
        {
            await _started.Task.WaitAsync(_lifetime.Token).ConfigureAwait(false);
            await foreach (NatsMsg<DocOps> msg in sub.Msgs.ReadAllAsync(_lifetime.Token).ConfigureAwait(false))
            {
                if (msg.Data is { } ops && string.Equals(ops.DocId, DocId, StringComparison.Ordinal))
                {
                    await OnOpsAsync(ops).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            _node.Log.LoopFailed("follow " + DocId, ex);
            await FailAsync(ex).ConfigureAwait(false);
        }
    }

    private async Task RunPresenceLoopAsync(INatsSub<ClusterPresence> sub)
    {
        try
        {
            DocumentHub hub = await _started.Task.WaitAsync(_lifetime.Token).ConfigureAwait(false);
            await foreach (NatsMsg<ClusterPresence> msg in sub.Msgs.ReadAllAsync(_lifetime.Token).ConfigureAwait(false))
            {
                if (msg.Data is not { } presence
                    || !string.Equals(presence.DocId, DocId, StringComparison.Ordinal)
                    || presence.NodeId.Length == 0
                    || string.Equals(presence.NodeId, _node.NodeId, StringComparison.Ordinal))
                {
                    continue;
                }

                if (presence.Sync)
                {
                    await hub.RepublishPresenceAsync().ConfigureAwait(false);
                    continue;
                }

                if (presence.ClientId.Length == 0)
                {
                    continue;
                }

                // A replica behind the sender's version holds the presence until its own stream gets there (ticks and gap
                // checks guarantee it does); presence itself never triggers a log read.
                try
                {
                    await hub.ApplyRemotePresenceAsync(presence.NodeId, presence.ClientId, presence.Version, presence.Selection, presence.UserData).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // One bad presence must not end presence for the document: it is best effort, the next one replaces it.
                    _node.Log.LoopFailed("presence " + DocId, ex);
                }
            }
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            _node.Log.LoopFailed("presence " + DocId, ex);
        }
    }

    private async Task OnOpsAsync(DocOps message)
    {
        NoteVersion(message.Version);
        NoteEpoch(message.Epoch);
        if (WritesLog)
        {
            // Another node published under a newer epoch: it holds the lease now, whatever this node believes.
            if (message.Epoch > Epoch && !string.Equals(message.Owner, _node.NodeId, StringComparison.Ordinal))
            {
                OnLeaseLost(Epoch);
            }

            return;
        }

        // Cancelled only when the document stops; the loop's caller ends on that.
        await _feed.WaitAsync(_lifetime.Token).ConfigureAwait(false);
        try
        {
            long fed = Volatile.Read(ref _fedVersion);
            if (WritesLog || message.Version <= fed)
            {
                return;
            }

            long first = message.Ops.Count > 0 ? message.Ops[0].Version : message.Version + 1;
            if (first > fed + 1)
            {
                // Lost or dropped messages (or a tick past what arrived): the op log has everything committed.
                await FillFromLogLockedAsync(first - 1).ConfigureAwait(false);
            }

            if (message.Ops.Count > 0)
            {
                await FeedLockedAsync(FromWire(message.Ops)).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await FailAsync(ex).ConfigureAwait(false);
        }
        finally
        {
            _feed.Release();
        }
    }

    /// <summary>An owner published under <paramref name="epoch"/>; a newer one than seen before ends the forwards waiting on the old owner.</summary>
    private void NoteEpoch(long epoch)
    {
        long seen;
        while ((seen = Interlocked.Read(ref _observedEpoch)) < epoch)
        {
            if (Interlocked.CompareExchange(ref _observedEpoch, epoch, seen) == seen)
            {
                if (seen != 0)
                {
                    // Not disposed: forwards may still read its token; without a timer it holds nothing to release.
                    CancellationTokenSource previous = Interlocked.Exchange(ref _ownerChanged, new CancellationTokenSource());
                    previous.Cancel();
                }

                return;
            }
        }
    }

    /// <summary>
    /// The cluster said the document has reached at least <paramref name="version"/>; make sure this replica gets there:
    /// unless the ops arrive on the stream within <see cref="ClusterOptions.ReplicaGapGrace"/> (or at once when
    /// <paramref name="urgent"/>), they are read from the op log.
    /// </summary>
    public void NoteVersion(long version, bool urgent = false)
    {
        long known;
        while ((known = Interlocked.Read(ref _knownVersion)) < version && Interlocked.CompareExchange(ref _knownVersion, version, known) != known)
        {
        }

        if (!WritesLog && version > Volatile.Read(ref _fedVersion) && Interlocked.Exchange(ref _gapCheckScheduled, 1) == 0)
        {
            CheckBehindAsync(urgent ? TimeSpan.Zero : _node.Options.ReplicaGapGrace).Forget(_node.Log.Logger, "replica gap check");
        }
    }

    public async ValueTask WaitForVersionAsync(long version, CancellationToken cancellationToken)
    {
        NoteVersion(version, urgent: true);
        long deadline = Stopwatch.GetTimestamp() + (long)(_node.Options.ForwardTimeout.TotalSeconds * Stopwatch.Frequency);
        while (!WritesLog && Volatile.Read(ref _fedVersion) < version && Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(10, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>After a grace period (the batch may just be on its way), fetches from the log whatever is known to exist but has not arrived.</summary>
    private async Task CheckBehindAsync(TimeSpan grace)
    {
        try
        {
            if (grace > TimeSpan.Zero)
            {
                await Task.Delay(grace, _lifetime.Token).ConfigureAwait(false);
            }

            Volatile.Write(ref _gapCheckScheduled, 0);
            long known = Interlocked.Read(ref _knownVersion);
            if (WritesLog || known <= Volatile.Read(ref _fedVersion))
            {
                return;
            }

            await _feed.WaitAsync(_lifetime.Token).ConfigureAwait(false);
            try
            {
                if (!WritesLog && known > Volatile.Read(ref _fedVersion))
                {
                    await FillFromLogLockedAsync(known).ConfigureAwait(false);
                }
            }
            finally
            {
                _feed.Release();
            }
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            Volatile.Write(ref _gapCheckScheduled, 0);
            await FailAsync(ex).ConfigureAwait(false);
        }
    }

    /// <summary>Reads the committed ops after the fed version up to <paramref name="upTo"/> from the op log and feeds them. Caller holds _feed.</summary>
    private async Task FillFromLogLockedAsync(long upTo)
    {
        long from = Volatile.Read(ref _fedVersion);
        long filled = 0;
        while (Volatile.Read(ref _fedVersion) < upTo)
        {
            long after = Volatile.Read(ref _fedVersion);
            long to = upTo == long.MaxValue ? long.MaxValue : Math.Min(upTo, after + LogReadChunk);
            IReadOnlyList<OpRecord> ops = await _node.Store.ReadOpsAsync(DocId, after, to, LogReadChunk, _lifetime.Token).ConfigureAwait(false);
            if (ops.Count == 0)
            {
                if (upTo == long.MaxValue)
                {
                    break;
                }

                throw new InvalidOperationException($"The op log of document '{DocId}' has no ops after version {after} although version {upTo} was committed (pruned?).");
            }

            await FeedLockedAsync(FromLog(ops)).ConfigureAwait(false);
            filled += ops.Count;
        }

        if (filled > 0)
        {
            ClusterMetrics.GapFills.Inc();
            ClusterMetrics.GapFillOps.Inc(filled);
            _node.Log.GapFilled(DocId, from, Volatile.Read(ref _fedVersion));
        }
    }

    /// <summary>
    /// Replays consecutive committed ops through the replica's sequencer (base version = version − 1, so nothing is
    /// transformed) and checks each lands on its version. Caller holds _feed.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2012", Justification = "Each stored ValueTask is awaited exactly once, in order, by DrainAsync.")]
    private async Task FeedLockedAsync(IEnumerable<ReplicatedOp> ops)
    {
        DocumentHub hub = _started.Task.Result;
        var pending = new List<(long Version, ValueTask<SubmitResult> Result)>(FeedChunk);
        long fed = Volatile.Read(ref _fedVersion);
        foreach (ReplicatedOp op in ops)
        {
            if (op.Version <= fed)
            {
                continue;
            }

            if (op.Version != fed + 1)
            {
                throw new InvalidOperationException($"Document '{DocId}': op {op.Version} does not follow version {fed}.");
            }

            // Expected before it is submitted: the replica's stage may be handed the op during the submit itself.
            _expected.Enqueue(new ExpectedOp(op.Version, op.ClientId, op.ClientSeq));
            pending.Add((op.Version, hub.ReplayAsync(op.Version, op.ClientId, op.ClientSeq, op.Op.Span, op.Author)));
            fed = op.Version;
            if (pending.Count == FeedChunk)
            {
                await DrainAsync(pending).ConfigureAwait(false);
            }
        }

        await DrainAsync(pending).ConfigureAwait(false);
        Volatile.Write(ref _fedVersion, fed);

        async Task DrainAsync(List<(long Version, ValueTask<SubmitResult> Result)> submitted)
        {
            foreach ((long version, ValueTask<SubmitResult> task) in submitted)
            {
                SubmitResult result = await task.ConfigureAwait(false);
                if (result.Status != SubmitStatus.Acked || result.Version != version)
                {
                    throw new InvalidOperationException($"Document '{DocId}': replaying op {version} gave {result} instead of the owner's version.");
                }
            }

            ClusterMetrics.ReplicatedOps.Inc(submitted.Count);
            submitted.Clear();
        }
    }

    // ------------------------------------------------------------------ role changes

    /// <summary>
    /// Takes the document over: acquires the lease (only free or expired ones), catches the replica up from the op log
    /// (final from now on: the fence keeps every earlier owner out), then sequences here. False when the lease is not
    /// free, or another role change is under way.
    /// </summary>
    public async Task<bool> TryPromoteAsync()
    {
        if (IsOwner)
        {
            return true;
        }

        if (IsStopping || Hub is null)
        {
            return false;
        }

        // One attempt at a time: the reconciler and forwarders ask repeatedly while an old lease runs out, and queued
        // attempts would pile up behind a slow acquisition.
        if (!_transition.Wait(0))
        {
            return false;
        }

        long acquired = 0;
        try
        {
            if (IsOwner)
            {
                return true;
            }

            if (IsStopping || WritesLog)
            {
                return false;
            }

            long sentAt = Stopwatch.GetTimestamp();
            long? epoch = await _node.Leases.TryAcquireAsync(DocId, _node.Options.LeaseSafetyMargin, _lifetime.Token).ConfigureAwait(false);
            if (epoch is null)
            {
                return false;
            }

            acquired = epoch.Value;
            _node.LeaseTable.Add(DocId, acquired, sentAt);

            await _feed.WaitAsync(_lifetime.Token).ConfigureAwait(false);
            try
            {
                await FillFromLogLockedAsync(long.MaxValue).ConfigureAwait(false);
                _node.CommitStage.ClearFence(DocId);
                Interlocked.Exchange(ref _epoch, acquired);
                Volatile.Write(ref _publishedVersion, Volatile.Read(ref _fedVersion));
                Volatile.Write(ref _ownedSince, Stopwatch.GetTimestamp());
                Volatile.Write(ref _role, (int)Role.Owner);
            }
            finally
            {
                _feed.Release();
            }

            _node.Log.Owning(DocId, acquired, Volatile.Read(ref _fedVersion));
            ClusterMetrics.OwnershipChanges.WithLabels("acquired").Inc();
            ClusterMetrics.OwnedDocuments.Inc();
            ClusterMetrics.ReplicaDocuments.Dec();
            StartServingAsync().Forget(_node.Log.Logger, "start serving");
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !_lifetime.IsCancellationRequested)
        {
            _node.Log.PromotionFailed(DocId, ex);
            if (acquired != 0 && !IsOwner)
            {
                _node.LeaseTable.Remove(DocId, acquired);
                await ReleaseLeaseAsync(acquired).ConfigureAwait(false);
            }

            return false;
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>Graceful hand-off to a node that should own the document now: stop sequencing, release the lease, follow as a replica.</summary>
    public Task HandOffAsync(string reason) => DemoteAsync(release: true, reason);

    /// <summary>
    /// The lease of <paramref name="epoch"/> is gone (not renewed in time, or another node published under a newer one).
    /// Every renewal round, reconcile tick and stream message that notices says so until the demotion completes (after a
    /// long pause, dozens at once): the loss is counted, logged and acted on once per epoch.
    /// </summary>
    public void OnLeaseLost(long epoch)
    {
        if (epoch == 0 || Epoch != epoch || !WritesLog || Interlocked.Exchange(ref _lostEpoch, epoch) == epoch)
        {
            return;
        }

        // From now on the op store refuses this node's writes of the document; what is in flight is fenced.
        _node.LeaseTable.Remove(DocId, epoch);
        _node.Log.LeaseLost(DocId, epoch);
        ClusterMetrics.LeasesLost.Inc();
        DemoteAsync(release: false, "lease lost").Forget(_node.Log.Logger, "demote after lease loss");
    }

    private async Task DemoteAsync(bool release, string reason)
    {
        try
        {
            await _transition.WaitAsync(_lifetime.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            if (!IsOwner || Hub is not { } hub)
            {
                return;
            }

            long epoch = Epoch;
            Volatile.Write(ref _role, (int)Role.Draining);
            if (_submitSub is { } sub)
            {
                await UnsubscribeAsync(sub).ConfigureAwait(false);
            }

            // Let the submissions already accepted commit (or be fenced, which fails the hub).
            DocumentHub sequencer = hub;
            long deadline = Stopwatch.GetTimestamp() + (long)(_node.Options.LeaseDuration.TotalSeconds * Stopwatch.Frequency);
            while ((sequencer.PendingCount != 0 || sequencer.Version != sequencer.CommittedVersion)
                   && sequencer.State == SequencerState.Active && Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(5, _lifetime.Token).ConfigureAwait(false);
            }

            if (sequencer.State != SequencerState.Active || sequencer.Version != sequencer.CommittedVersion)
            {
                // Fenced or stuck: the hub fails (or has failed) and the document reloads on the next subscribe.
                _node.LeaseTable.Remove(DocId, epoch);
                return;
            }

            await _feed.WaitAsync(_lifetime.Token).ConfigureAwait(false);
            try
            {
                _expected.Clear();
                Volatile.Write(ref _fedVersion, sequencer.CommittedVersion);
                Volatile.Write(ref _role, (int)Role.Replica);
            }
            finally
            {
                _feed.Release();
            }

            _node.LeaseTable.Remove(DocId, epoch);
            if (release)
            {
                await ReleaseLeaseAsync(epoch).ConfigureAwait(false);
            }

            _node.Log.Disowned(DocId, epoch, sequencer.CommittedVersion, reason);
            ClusterMetrics.OwnershipChanges.WithLabels(release ? "handed_off" : "lost").Inc();
            ClusterMetrics.OwnedDocuments.Dec();
            ClusterMetrics.ReplicaDocuments.Inc();
            if (release)
            {
                _node.HintOwner(this);
            }
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>The replica cannot go on: fails the hub (the registry counts it, reloads the document and resumes its subscribers). Never throws.</summary>
    private async Task FailAsync(Exception reason)
    {
        _node.Log.ReplicaFailed(DocId, reason);
        try
        {
            if (Hub is { } hub)
            {
                await hub.FailAsync(reason).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            _node.Log.LoopFailed("fail " + DocId, ex);
        }
    }

    // ------------------------------------------------------------------ stopping

    public async ValueTask StopAsync()
    {
        if (Interlocked.Exchange(ref _stopping, 1) != 0)
        {
            await _stopped.Task.ConfigureAwait(false);
            return;
        }

        try
        {
            // Wait for a role change in progress to settle, so the gauges and the lease end in a known state.
            await _transition.WaitAsync().ConfigureAwait(false);
            _transition.Release();
            await _lifetime.CancelAsync().ConfigureAwait(false);
            if (_submitSub is { } submit)
            {
                await UnsubscribeAsync(submit).ConfigureAwait(false);
            }

            if (_opsSub is { } ops)
            {
                await UnsubscribeAsync(ops).ConfigureAwait(false);
            }

            if (_presenceSub is { } presence)
            {
                await UnsubscribeAsync(presence).ConfigureAwait(false);
            }

            if (WritesLog)
            {
                long epoch = Epoch;
                bool owner = IsOwner;
                Volatile.Write(ref _role, (int)Role.Replica);
                _node.LeaseTable.Remove(DocId, epoch);
                await ReleaseLeaseAsync(epoch).ConfigureAwait(false);
                if (_started.Task.IsCompleted && owner)
                {
                    ClusterMetrics.OwnedDocuments.Dec();
                    ClusterMetrics.OwnershipChanges.WithLabels("closed").Inc();
                }
            }
            else if (_started.Task.IsCompleted)
            {
                ClusterMetrics.ReplicaDocuments.Dec();
            }
        }
        finally
        {
            _started.TrySetCanceled();
            _node.Forget(this);
            _stopped.TrySetResult();
        }
    }

    private async Task ReleaseLeaseAsync(long epoch)
    {
        try
        {
            await _node.Leases.ReleaseAsync(DocId, epoch, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // It expires by itself; the next owner only waits longer.
            _node.Log.LoopFailed("release lease of " + DocId, ex);
        }
    }

    private static async Task UnsubscribeAsync<T>(INatsSub<T> sub)
    {
        try
        {
            await sub.UnsubscribeAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Disconnected: the server forgets the subscription with the connection; nothing else holds it.
        }
    }

    /// <summary>The version the owner published last (ticks repeat it).</summary>
    public long PublishedVersion => Volatile.Read(ref _publishedVersion);

    /// <summary>The version this replica has replayed.</summary>
    public long FedVersion => Volatile.Read(ref _fedVersion);

    // ------------------------------------------------------------------ helpers

    /// <summary>
    /// A Duplicate answer for an op committed after the forward began (<paramref name="committedAtStart"/>) is turned into
    /// Acked: the author's subscription gets that op's Ack from the stream, because the submit was noted on it before. This
    /// is the common case of a retried forward (the owner was slow or its reply was lost: the first attempt sequenced the
    /// op, the retry finds it in the dedupe state); answering Duplicate made the session send a second Ack with the same
    /// version for one submit. An op committed before the forward began was sent to the subscription as an op, not as an
    /// ack (a genuine re-send of an earlier connection's op): it keeps its Duplicate ack (P1).
    /// </summary>
    private static SubmitOutcome AckedInStream(SubmitOutcome outcome, long committedAtStart) =>
        outcome.Status == SubmitStatus.Duplicate && outcome.Version > committedAtStart ? outcome with { Status = SubmitStatus.Acked } : outcome;

    /// <summary>A forwarded submit sequenced on this node after all (it was promoted while the submit waited).</summary>
    private static async ValueTask<SubmitOutcome> SubmitHereAsync(DocumentHub hub, ForwardedSubmission submission)
    {
        try
        {
            return SubmitOutcome.From(await hub.SubmitForwardedHereAsync(submission).ConfigureAwait(false));
        }
        catch (OtException ex)
        {
            return new SubmitOutcome(SubmitStatus.InvalidOp, 0, ex.Message);
        }
    }

    private static async Task BackOffAsync(int attempt) =>
        await Task.Delay(Math.Min(500, 25 << Math.Min(attempt, 5))).ConfigureAwait(false);

    private static IEnumerable<ReplicatedOp> FromWire(IEnumerable<SequencedOp> ops)
    {
        foreach (SequencedOp op in ops)
        {
            yield return new ReplicatedOp(op.Version, op.ClientId, (long)op.ClientSeq, op.Author.Length == 0 ? null : op.Author, op.Op.Memory);
        }
    }

    private static IEnumerable<ReplicatedOp> FromLog(IReadOnlyList<OpRecord> ops)
    {
        foreach (OpRecord op in ops)
        {
            yield return new ReplicatedOp(op.Version, op.ClientId, op.ClientSeq, op.Author, op.Op);
        }
    }

    private static ForwardResult ToResult(in SubmitResult result) => new()
    {
        Status = result.Status switch
        {
            SubmitStatus.Acked => ForwardStatus.Acked,
            SubmitStatus.Duplicate => ForwardStatus.Duplicate,
            SubmitStatus.InvalidOp => ForwardStatus.InvalidOp,
            SubmitStatus.OpDoesNotFit => ForwardStatus.OpDoesNotFit,
            SubmitStatus.VersionFromFuture => ForwardStatus.VersionFromFuture,
            SubmitStatus.VersionTooOld => ForwardStatus.VersionTooOld,
            SubmitStatus.Overloaded => ForwardStatus.Overloaded,
            SubmitStatus.Fenced => ForwardStatus.Fenced,
            SubmitStatus.Closed => ForwardStatus.Closed,
            SubmitStatus.SeqAlreadyUsed => ForwardStatus.SeqAlreadyUsed,
            SubmitStatus.DocTooLarge => ForwardStatus.DocTooLarge,
            SubmitStatus.DedupeExpired => ForwardStatus.DedupeExpired,
            SubmitStatus.AlreadyCommitted => ForwardStatus.AlreadyCommitted,
            _ => ForwardStatus.Unavailable,
        },
        Version = result.Version,
        Message = result.Message ?? string.Empty,
    };

    private static SubmitOutcome ToOutcome(ForwardResult result) => new(
        result.Status switch
        {
            ForwardStatus.Acked => SubmitStatus.Acked,
            ForwardStatus.Duplicate => SubmitStatus.Duplicate,
            ForwardStatus.InvalidOp => SubmitStatus.InvalidOp,
            ForwardStatus.OpDoesNotFit => SubmitStatus.OpDoesNotFit,
            ForwardStatus.VersionFromFuture => SubmitStatus.VersionFromFuture,
            ForwardStatus.VersionTooOld => SubmitStatus.VersionTooOld,
            ForwardStatus.Overloaded => SubmitStatus.Overloaded,
            ForwardStatus.SeqAlreadyUsed => SubmitStatus.SeqAlreadyUsed,
            ForwardStatus.DocTooLarge => SubmitStatus.DocTooLarge,
            ForwardStatus.DedupeExpired => SubmitStatus.DedupeExpired,
            ForwardStatus.AlreadyCommitted => SubmitStatus.AlreadyCommitted,
            _ => SubmitStatus.Unavailable,
        },
        result.Version,
        result.Message.Length == 0 ? null : result.Message);

    private readonly record struct ExpectedOp(long Version, string ClientId, long ClientSeq);

    private readonly record struct ReplicatedOp(long Version, string ClientId, long ClientSeq, string? Author, ReadOnlyMemory<byte> Op);
}
