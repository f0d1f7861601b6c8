using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Collab.Protocol;
using Collab.Protocol.V1;
using Collab.Server.Sessions;
using Collab.Server.Storage;
using NATS.Client.Core;

namespace Collab.Server.Cluster;

/// <summary>
/// This node's membership in the cluster (docs/CLUSTER.md): the NATS connection, heartbeats and membership, the
/// documents it owns or replicates (<see cref="ClusterDocument"/>), lease renewal and the local lease deadlines,
/// ownership reconciliation (take over orphans, hand off to joiners), the ordered publisher of committed batches, and
/// the answers to other nodes' open requests.
/// </summary>
internal sealed class ClusterNode : IDocumentReplicator, IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, ClusterDocument> _documents = new(StringComparer.Ordinal);

    // When the NATS connection last (re)opened (Stopwatch timestamp; the node's start until the first event).
    private long _connectedAt = Stopwatch.GetTimestamp();
    private readonly ConcurrentDictionary<string, bool> _claims = new(StringComparer.Ordinal);
    private readonly Channel<(string Subject, DocOps Message)> _publishQueue;
    private readonly Channel<ClusterPresence> _presenceQueue;
    private readonly CancellationTokenSource _stopping = new();
    private readonly long _startedAtMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
    private readonly List<Task> _loops = [];
    private DocumentRegistry? _registry;
    private int _leaving;

    public ClusterNode(
        ClusterOptions options,
        string nodeId,
        IOpStore store,
        GroupCommitStage commitStage,
        LeaseStore leases,
        LeaseTable leaseTable,
        ILoggerFactory loggerFactory)
    {
        Options = options;
        NodeId = nodeId;
        Store = store;
        CommitStage = commitStage;
        Leases = leases;
        LeaseTable = leaseTable;
        Log = new ClusterLog(loggerFactory.CreateLogger("Collab.Server.Cluster"));
        Membership = new ClusterMembership(nodeId, options);
        _publishQueue = Channel.CreateBounded<(string, DocOps)>(new BoundedChannelOptions(options.MaxPublishQueue)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });

        _presenceQueue = Channel.CreateBounded<ClusterPresence>(new BoundedChannelOptions(PresenceQueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite fails when full: the newest change is dropped, like on NATS
        });

        Nats = new NatsConnection(NatsOpts.Default with
        {
            Url = options.NatsUrl,
            Name = "collab-" + nodeId,
            LoggerFactory = loggerFactory,

            // A node never needs its own messages (it serves its own documents directly), so the server does not echo them.
            Echo = false,
            RetryOnInitialConnect = true,
            MaxReconnectRetry = -1,
            ReconnectWaitMin = TimeSpan.FromMilliseconds(100),
            ReconnectWaitMax = TimeSpan.FromSeconds(2),
            ConnectTimeout = TimeSpan.FromSeconds(2),
            PingInterval = TimeSpan.FromSeconds(2),
            MaxPingOut = 2,
            RequestTimeout = options.ForwardTimeout,
            SubPendingChannelCapacity = options.SubscriptionPendingMessages,

            // The documented default, stated because the design depends on it: a full subscription drops the newest
            // messages, and replicas detect the gap by version and fill it from the op log.
            SubPendingChannelFullMode = BoundedChannelFullMode.DropNewest,
        });
        Nats.ConnectionOpened += OnConnectionOpenedAsync;
        Nats.ConnectionDisconnected += OnConnectionDisconnectedAsync;
        Nats.MessageDropped += OnMessageDroppedAsync;
    }

    /// <summary>Presence messages waiting for NATS; presence is best effort, a burst beyond this is dropped.</summary>
    private const int PresenceQueueCapacity = 8_192;

    public ClusterOptions Options { get; }

    public string NodeId { get; }

    public NatsConnection Nats { get; }

    public IOpStore Store { get; }

    public GroupCommitStage CommitStage { get; }

    public LeaseStore Leases { get; }

    public LeaseTable LeaseTable { get; }

    public ClusterMembership Membership { get; }

    public ClusterLog Log { get; }

    public bool IsConnected => Nats.ConnectionState == NatsConnectionState.Open;

    /// <summary>This node's live sessions by client id, which remote claims replace (set with <see cref="Registry"/>).</summary>
    public LiveClients? Clients { get; set; }

    /// <summary>The registry whose documents this node places (set once, when both exist: they refer to each other).</summary>
    public DocumentRegistry Registry
    {
        get => _registry ?? throw new InvalidOperationException("The cluster node has no document registry yet.");
        set => _registry = value;
    }

    // ------------------------------------------------------------------ life cycle

    /// <summary>Starts connecting (in the background: NATS may be down), heartbeating and the maintenance loops.</summary>
    public void Start()
    {
        Log.Starting(NodeId, Options.NatsUrl);
        CancellationToken token = _stopping.Token;
        _loops.Add(Task.Run(() => RunHeartbeatsAsync(token), token));
        _loops.Add(Task.Run(() => RunMembershipAsync(token), token));
        _loops.Add(Task.Run(() => RunOpenRequestsAsync(token), token));
        _loops.Add(Task.Run(() => RunPublisherAsync(token), token));
        _loops.Add(Task.Run(() => RunPresencePublisherAsync(token), token));
        _loops.Add(Task.Run(() => RunRenewalsAsync(token), token));
        _loops.Add(Task.Run(() => RunReconcilerAsync(token), token));
        _loops.Add(Task.Run(() => RunTicksAsync(token), token));
        _loops.Add(Task.Run(() => RunPresenceRefreshAsync(token), token));
        _loops.Add(Task.Run(() => RunClientClaimsAsync(token), token));
    }

    /// <summary>A local connection resumed <paramref name="clientId"/>: tell the other nodes to close theirs (at most once, like presence).</summary>
    public void PublishClaim(string clientId)
    {
        if (!IsConnected)
        {
            return; // a stale connection elsewhere ends by its own keep-alive; a claim sent late could close a newer one
        }

        ValueTask publish;
        try
        {
            publish = Nats.PublishAsync(ClusterSubjects.ClientClaims, new ClientClaim { ClientId = clientId, NodeId = NodeId }, serializer: ProtobufNatsSerializer<ClientClaim>.Instance);
        }
        catch (Exception ex)
        {
            publish = ValueTask.FromException(ex);
        }

        publish.Forget(Log.Logger, "publish client claim");
    }

    /// <summary>
    /// Graceful leave: announces it (the others stop placing documents here at once) and stops taking documents over.
    /// The documents themselves release their leases when the registry closes them.
    /// </summary>
    public async Task LeaveAsync()
    {
        if (Interlocked.Exchange(ref _leaving, 1) != 0)
        {
            return;
        }

        Log.Leaving(NodeId);
        await PublishHeartbeatAsync(leaving: true, CancellationToken.None).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _publishQueue.Writer.TryComplete();
        _presenceQueue.Writer.TryComplete();
        try
        {
            await Task.WhenAll(_loops).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        foreach (ClusterDocument document in _documents.Values)
        {
            await document.StopAsync().ConfigureAwait(false);
        }

        await Nats.DisposeAsync().ConfigureAwait(false);
        await Leases.DisposeAsync().ConfigureAwait(false);
        ClusterMetrics.NatsConnected.Set(0);
    }

    // ------------------------------------------------------------------ documents

    public async ValueTask<IDocumentReplication> OpenAsync(string docId, CancellationToken cancellationToken)
    {
        if (_documents.TryGetValue(docId, out ClusterDocument? previous))
        {
            // The previous incarnation is still closing (idle close, failure): let it release its lease first.
            try
            {
                await previous.Stopped.WaitAsync(Options.LeaseDuration, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // It hangs: open anyway; its lease then simply has to expire.
            }
        }

        var document = new ClusterDocument(this, docId);
        _documents[docId] = document;
        try
        {
            await document.SubscribeAsync(cancellationToken).ConfigureAwait(false);
            bool claim = _claims.ContainsKey(docId) || string.Equals(Rendezvous.Choose(docId, Membership.Eligible()), NodeId, StringComparison.Ordinal);
            if (claim && Volatile.Read(ref _leaving) == 0)
            {
                await document.TryAcquireInitialAsync(cancellationToken).ConfigureAwait(false);
            }

            return document;
        }
        catch
        {
            await document.StopAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>A document stopped: forget it (only that incarnation).</summary>
    public void Forget(ClusterDocument document) => _documents.TryRemove(KeyValuePair.Create(document.DocId, document));

    /// <summary>
    /// Nobody answers the document's submits: ask the node rendezvous hashing prefers to own it (this node itself, or an
    /// open request to the other one), so the forwarder's next attempt finds an owner.
    /// </summary>
    public async Task EnsureOwnerAsync(ClusterDocument document, TimeSpan budget)
    {
        string? preferred = Rendezvous.Choose(document.DocId, Membership.Eligible());
        if (preferred is null || string.Equals(preferred, NodeId, StringComparison.Ordinal))
        {
            if (!await document.TryPromoteAsync().ConfigureAwait(false))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100)).ConfigureAwait(false); // the old lease has not expired yet
            }

            return;
        }

        await RequestOpenAsync(preferred, document.DocId, budget).ConfigureAwait(false);
    }

    /// <summary>A replica started (or handed off): ask the preferred owner to be ready before the first submit comes.</summary>
    public void HintOwner(ClusterDocument document)
    {
        string? preferred = Rendezvous.Choose(document.DocId, Membership.Eligible());
        if (preferred is not null && !string.Equals(preferred, NodeId, StringComparison.Ordinal))
        {
            RequestOpenAsync(preferred, document.DocId, Options.ForwardTimeout).Forget(Log.Logger, "open hint");
        }
    }

    private async Task RequestOpenAsync(string nodeId, string docId, TimeSpan budget)
    {
        TimeSpan timeout = budget < TimeSpan.FromSeconds(1) ? budget : TimeSpan.FromSeconds(1);
        try
        {
            using var cts = new CancellationTokenSource(timeout);
            await Nats.RequestAsync(
                ClusterSubjects.Open(nodeId),
                new OpenRequest { DocId = docId, Origin = NodeId },
                requestSerializer: ProtobufNatsSerializer<OpenRequest>.Instance,
                replySerializer: ProtobufNatsSerializer<OpenReply>.Instance,
                replyOpts: new NatsSubOpts { Timeout = timeout },
                cancellationToken: cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NatsException or OperationCanceledException or TimeoutException)
        {
            // Gone or slow: the forwarder retries, and membership drops a dead node within NodeExpiry.
            await Task.Delay(TimeSpan.FromMilliseconds(100)).ConfigureAwait(false);
        }
    }

    /// <summary>Queues a committed batch (or tick) for the document stream, in order. Never blocks the sequencer.</summary>
    public void Publish(string subject, DocOps message)
    {
        if (!_publishQueue.Writer.TryWrite((subject, message)))
        {
            ClusterMetrics.PublishDropped.Inc();
        }
    }

    /// <summary>Queues a presence message for its document's presence subject, in order. Never blocks the sequencer; drops when full.</summary>
    public void PublishPresence(ClusterPresence message)
    {
        if (!_presenceQueue.Writer.TryWrite(message))
        {
            ClusterMetrics.PresenceDropped.Inc();
        }
    }

    /// <summary>A node's incarnation is gone: every open document clears the presence of its clients.</summary>
    private void ClearPresenceOf(string nodeId)
    {
        foreach (ClusterDocument document in _documents.Values)
        {
            document.OnNodeGone(nodeId);
        }
    }

    /// <summary>Publishes the owner's committed version (an empty batch), so replicas that lost the last batch notice.</summary>
    public void PublishTick(ClusterDocument document)
    {
        if (document.IsOwner)
        {
            Publish(ClusterSubjects.Ops(document.DocId), new DocOps
            {
                DocId = document.DocId,
                Owner = NodeId,
                Epoch = document.Epoch,
                Version = document.PublishedVersion,
            });
        }
    }

    // ------------------------------------------------------------------ loops

    private async Task RunPublisherAsync(CancellationToken token)
    {
        ChannelReader<(string Subject, DocOps Message)> reader = _publishQueue.Reader;
        while (await reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            while (reader.TryRead(out (string Subject, DocOps Message) item))
            {
                if (!IsConnected)
                {
                    // Published while disconnected would wait for the reconnect and arrive late, all at once; replicas
                    // catch up from the op log instead (ticks and the reconnect check tell them what they missed).
                    ClusterMetrics.PublishDropped.Inc();
                    continue;
                }

                try
                {
                    await Nats.PublishAsync(item.Subject, item.Message, serializer: ProtobufNatsSerializer<DocOps>.Instance, cancellationToken: token).ConfigureAwait(false);
                    if (item.Message.Ops.Count > 0)
                    {
                        ClusterMetrics.PublishedBatches.Inc();
                    }
                }
                catch (OperationCanceledException) when (token.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex)
                {
                    ClusterMetrics.PublishDropped.Inc();
                    Log.LoopFailed("publish", ex);
                }
            }
        }
    }

    private async Task RunPresencePublisherAsync(CancellationToken token)
    {
        ChannelReader<ClusterPresence> reader = _presenceQueue.Reader;
        while (await reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            while (reader.TryRead(out ClusterPresence? message))
            {
                if (!IsConnected)
                {
                    // Stale by the time NATS is back; the reconnect sync republishes what is current.
                    ClusterMetrics.PresenceDropped.Inc();
                    continue;
                }

                try
                {
                    await Nats.PublishAsync(ClusterSubjects.Presence(message.DocId), message, serializer: ProtobufNatsSerializer<ClusterPresence>.Instance, cancellationToken: token).ConfigureAwait(false);
                    ClusterMetrics.PublishedPresence.Inc();
                }
                catch (OperationCanceledException) when (token.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex)
                {
                    ClusterMetrics.PresenceDropped.Inc();
                    Log.LoopFailed("publish presence", ex);
                }
            }
        }
    }

    private async Task RunHeartbeatsAsync(CancellationToken token)
    {
        using var timer = new PeriodicTimer(Options.HeartbeatInterval);
        do
        {
            if (Volatile.Read(ref _leaving) == 0)
            {
                await PublishHeartbeatAsync(leaving: false, token).ConfigureAwait(false);
            }
        }
        while (await WaitAsync(timer, token).ConfigureAwait(false));
    }

    private async Task PublishHeartbeatAsync(bool leaving, CancellationToken token)
    {
        if (!IsConnected)
        {
            return;
        }

        try
        {
            var heartbeat = new NodeHeartbeat { NodeId = NodeId, StartedAtMs = _startedAtMs, Leaving = leaving, OwnedDocuments = (uint)LeaseTable.Count };
            await Nats.PublishAsync(ClusterSubjects.Heartbeat, heartbeat, serializer: ProtobufNatsSerializer<NodeHeartbeat>.Instance, cancellationToken: token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.LoopFailed("heartbeat", ex);
        }
    }

    private Task RunMembershipAsync(CancellationToken token) => ConsumeAsync<NodeHeartbeat>(ClusterSubjects.Heartbeat, "membership", msg =>
    {
        if (msg.Data is not { } heartbeat)
        {
            return;
        }

        bool joined = Membership.Observe(heartbeat, out bool left);
        if (left)
        {
            Log.NodeLeft(heartbeat.NodeId, heartbeat.Leaving ? "announced" : "restarted");
            ClearPresenceOf(heartbeat.NodeId);
        }

        if (joined)
        {
            Log.NodeJoined(heartbeat.NodeId);
        }
    }, token);

    private Task RunOpenRequestsAsync(CancellationToken token) => ConsumeAsync<OpenRequest>(ClusterSubjects.Open(NodeId), "open requests", msg => ServeOpenAsync(msg).Forget(Log.Logger, "serve open request"), token);

    private Task RunClientClaimsAsync(CancellationToken token) => ConsumeAsync<ClientClaim>(ClusterSubjects.ClientClaims, "client claims", msg =>
    {
        if (msg.Data is { ClientId.Length: > 0 } claim && !string.Equals(claim.NodeId, NodeId, StringComparison.Ordinal))
        {
            Clients?.ReplacedElsewhere(claim.ClientId);
        }
    }, token);

    /// <summary>Hands every message of <paramref name="subject"/> to <paramref name="handle"/> until stopped, subscribing again after a failure.</summary>
    private async Task ConsumeAsync<T>(string subject, string name, Action<NatsMsg<T>> handle, CancellationToken token)
        where T : class, Google.Protobuf.IMessage<T>, new()
    {
        while (!token.IsCancellationRequested)
        {
            try
            {
                await foreach (NatsMsg<T> msg in Nats.SubscribeAsync(subject, serializer: ProtobufNatsSerializer<T>.Instance, cancellationToken: token).ConfigureAwait(false))
                {
                    handle(msg);
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                Log.LoopFailed(name, ex);
                await Task.Delay(Options.HeartbeatInterval, token).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Another node asks this one to own a document: take it if the lease is free (loading it with no local subscriber if need be).</summary>
    private async Task ServeOpenAsync(NatsMsg<OpenRequest> msg)
    {
        if (msg.Data is not { } request || !DocumentId.IsValid(request.DocId))
        {
            return;
        }

        var reply = new OpenReply();
        try
        {
            if (Volatile.Read(ref _leaving) == 0)
            {
                ClusterDocument? document = null;
                if (_documents.TryGetValue(request.DocId, out ClusterDocument? open) && !open.IsStopping)
                {
                    document = open;
                    await open.TryPromoteAsync().ConfigureAwait(false);
                }
                else
                {
                    _claims[request.DocId] = true;
                    try
                    {
                        DocumentHub hub = await Registry.AcquireAsync(request.DocId, _stopping.Token).ConfigureAwait(false);
                        hub.ReleaseRef(); // owned for other nodes' clients; closes when idle
                        document = hub.Replication as ClusterDocument;
                    }
                    finally
                    {
                        _claims.TryRemove(request.DocId, out _);
                    }
                }

                if (document is not null)
                {
                    reply.Owned = document.IsOwner;
                    reply.Version = document.IsOwner ? document.PublishedVersion : document.FedVersion;
                }
            }
        }
        catch (Exception ex)
        {
            Log.OpenFailed(request.DocId, request.Origin, ex);
        }

        try
        {
            await msg.ReplyAsync(reply, serializer: ProtobufNatsSerializer<OpenReply>.Instance).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NatsException or OperationCanceledException)
        {
            // The requester retries.
        }
    }

    /// <summary>Renews every lease in one statement each interval; a lease not renewed is lost and its document stops sequencing.</summary>
    private async Task RunRenewalsAsync(CancellationToken token)
    {
        using var timer = new PeriodicTimer(Options.RenewInterval);
        while (await WaitAsync(timer, token).ConfigureAwait(false))
        {
            List<(string DocId, long Epoch)> leases = LeaseTable.Snapshot();
            if (leases.Count == 0)
            {
                continue;
            }

            long sentAt = Stopwatch.GetTimestamp();
            HashSet<string> renewed;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
                timeout.CancelAfter(Options.RenewInterval);
                renewed = await Leases.RenewAsync(leases, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (!token.IsCancellationRequested)
            {
                ClusterMetrics.LeaseRenewFailures.Inc();
                Log.RenewFailed(Options.LeaseSafetyMargin, ex);
                continue;
            }

            foreach ((string docId, long epoch) in leases)
            {
                if (renewed.Contains(docId))
                {
                    LeaseTable.Extend(docId, epoch, sentAt);
                }
                else if (_documents.TryGetValue(docId, out ClusterDocument? document))
                {
                    document.OnLeaseLost(epoch);
                }
                else
                {
                    LeaseTable.Remove(docId, epoch);
                }
            }
        }
    }

    /// <summary>
    /// Keeps ownership in line with the membership: stops documents whose lease ran out locally, hands documents off to
    /// the node rendezvous hashing now prefers, and takes over documents this node prefers whose owner is gone.
    /// </summary>
    private async Task RunReconcilerAsync(CancellationToken token)
    {
        using var timer = new PeriodicTimer(Options.ReconcileInterval);
        while (await WaitAsync(timer, token).ConfigureAwait(false))
        {
            try
            {
                await ReconcileAsync(token).ConfigureAwait(false);
            }
            catch (Exception ex) when (!token.IsCancellationRequested)
            {
                Log.LoopFailed("reconcile", ex);
            }
        }
    }

    private async Task ReconcileAsync(CancellationToken token)
    {
        foreach ((string docId, long epoch) in LeaseTable.Expired())
        {
            if (_documents.TryGetValue(docId, out ClusterDocument? document))
            {
                document.OnLeaseLost(epoch);
            }
            else
            {
                LeaseTable.Remove(docId, epoch);
            }
        }

        foreach (string gone in Membership.Sweep())
        {
            Log.NodeLeft(gone, "heartbeats stopped");
            ClearPresenceOf(gone);
        }
        ClusterMetrics.LiveNodes.Set(Membership.LiveCount);
        if (Volatile.Read(ref _leaving) != 0 || !IsConnected)
        {
            return; // without NATS this node's view of the membership is stale: move nothing
        }

        IReadOnlyList<string> eligible = Membership.Eligible();
        List<ClusterDocument>? candidates = null;
        foreach (ClusterDocument document in _documents.Values)
        {
            if (document.IsStopping)
            {
                continue;
            }

            string? preferred = Rendezvous.Choose(document.DocId, eligible);
            bool mine = string.Equals(preferred, NodeId, StringComparison.Ordinal);
            if (document.IsOwner && !mine && document.OwnedFor >= Options.JoinGracePeriod)
            {
                document.HandOffAsync($"node {preferred} owns it now").Forget(Log.Logger, "hand off");
            }
            else if (!document.IsOwner && mine && document.IsStarted)
            {
                (candidates ??= []).Add(document);
            }
        }

        if (candidates is null)
        {
            return;
        }

        Dictionary<string, LeaseRow> leases = await Leases.ReadAsync(candidates.ConvertAll(d => d.DocId), token).ConfigureAwait(false);
        foreach (ClusterDocument document in candidates)
        {
            // Take it when nobody holds a live lease, or its holder is gone (the acquire only succeeds once it expired).
            if (!leases.TryGetValue(document.DocId, out LeaseRow lease) || !lease.Live || !Membership.IsLive(lease.Owner))
            {
                document.TryPromoteAsync().Forget(Log.Logger, "promote");
            }
        }
    }

    /// <summary>While a document is active its owner repeats its committed version, so a replica that lost the last batch notices.</summary>
    private async Task RunTicksAsync(CancellationToken token)
    {
        using var timer = new PeriodicTimer(Options.VersionTickInterval);
        long activeWindowMs = (long)(Options.VersionTickInterval.TotalMilliseconds * Options.VersionTicksAfterActivity);
        while (await WaitAsync(timer, token).ConfigureAwait(false))
        {
            long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            foreach (ClusterDocument document in _documents.Values)
            {
                if (document.IsOwner && now - document.LastCommitMs <= activeWindowMs)
                {
                    PublishTick(document);
                }
            }
        }
    }

    /// <summary>
    /// Presence is at most once on NATS: every <see cref="ClusterOptions.PresenceRefreshInterval"/> each open document
    /// republishes its local clients' presence and expires remote entries not republished for
    /// <see cref="ClusterOptions.PresenceExpiry"/> (their clear was lost).
    /// </summary>
    private async Task RunPresenceRefreshAsync(CancellationToken token)
    {
        using var timer = new PeriodicTimer(Options.PresenceRefreshInterval);
        while (await WaitAsync(timer, token).ConfigureAwait(false))
        {
            // Cut off from NATS nothing is refreshed, so nothing can be judged stale; after a reconnect the sync
            // requests bring every live entry back within a round, so expiry waits that long.
            bool expire = IsConnected && Stopwatch.GetElapsedTime(Volatile.Read(ref _connectedAt)) >= Options.PresenceRefreshInterval;
            foreach (ClusterDocument document in _documents.Values)
            {
                try
                {
                    await document.RefreshPresenceAsync(Options.PresenceExpiry, expire).ConfigureAwait(false);
                }
                catch (Exception ex) when (!token.IsCancellationRequested)
                {
                    Log.LoopFailed("presence refresh " + document.DocId, ex);
                }
            }
        }
    }

    // ------------------------------------------------------------------ NATS connection events

    private ValueTask OnConnectionOpenedAsync(object? sender, NatsEventArgs args)
    {
        Volatile.Write(ref _connectedAt, Stopwatch.GetTimestamp());
        ClusterMetrics.NatsConnected.Set(1);
        Log.NatsConnected();

        // Whatever was published while this node (or the owners) were cut off is lost: every owner announces its
        // version, and every replica compares with the op log.
        foreach (ClusterDocument document in _documents.Values)
        {
            PublishTick(document);
            document.RequestPresenceSync();
        }

        CatchUpReplicasAsync().Forget(Log.Logger, "replica catch-up");
        return ValueTask.CompletedTask;
    }

    private ValueTask OnConnectionDisconnectedAsync(object? sender, NatsEventArgs args)
    {
        ClusterMetrics.NatsConnected.Set(0);
        Log.NatsDisconnected(args.Message);
        return ValueTask.CompletedTask;
    }

    private ValueTask OnMessageDroppedAsync(object? sender, NatsMessageDroppedEventArgs args)
    {
        // A subscription's buffer was full: the replica sees the gap by version and fills it from the op log.
        ClusterMetrics.NatsDropped.Inc();
        return ValueTask.CompletedTask;
    }

    private async Task CatchUpReplicasAsync()
    {
        try
        {
            var replicas = new List<ClusterDocument>();
            foreach (ClusterDocument document in _documents.Values)
            {
                if (!document.IsOwner && !document.IsStopping)
                {
                    replicas.Add(document);
                }
            }

            Dictionary<string, long> versions = await Leases.ReadVersionsAsync(replicas.ConvertAll(d => d.DocId), _stopping.Token).ConfigureAwait(false);
            foreach (ClusterDocument document in replicas)
            {
                if (versions.TryGetValue(document.DocId, out long version))
                {
                    document.NoteVersion(version, urgent: true);
                }
            }
        }
        catch (Exception ex) when (!_stopping.IsCancellationRequested)
        {
            Log.LoopFailed("replica catch-up after reconnect", ex);
        }
    }

    private static async ValueTask<bool> WaitAsync(PeriodicTimer timer, CancellationToken token)
    {
        try
        {
            return await timer.WaitForNextTickAsync(token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
