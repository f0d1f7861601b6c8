using Collab.Engine.Sequencing;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Server.Sessions;

/// <summary>
/// The cluster's side of one open document (docs/CLUSTER.md). A single node has none: its hubs sequence locally. In a
/// cluster the hub's sequencer either sequences (this node owns the document) or replays what the owner sequenced (a
/// replica); the hub serves its subscribers the same way in both roles and asks this object only where they differ.
/// </summary>
internal interface IDocumentReplication
{
    /// <summary>True while this node sequences the document; false while it forwards submits to the owner.</summary>
    bool SequencesLocally { get; }

    /// <summary>The durability stage the document's sequencer commits through (the op log as owner, the owner's stream as replica).</summary>
    IDurabilityStage Stage { get; }

    /// <summary>The hub and its sequencer exist (at <paramref name="version"/>): start owning or replicating.</summary>
    void Start(DocumentHub hub, long version);

    /// <summary>
    /// As a replica: waits (briefly) until the ops up to <paramref name="version"/> have arrived, for a client resuming here
    /// after another node showed it that version. Returns without them when they do not come in time.
    /// </summary>
    ValueTask WaitForVersionAsync(long version, CancellationToken cancellationToken);

    /// <summary>Sends a local client's op to the owner; completes with the owner's answer. Never throws.</summary>
    ValueTask<SubmitOutcome> ForwardAsync(ForwardedSubmission submission);

    /// <summary>A batch committed (as owner: publish it). Called on the sequencer's worker; must not block.</summary>
    void OnCommitted(ReadOnlySpan<OpRecord> records);

    /// <summary>
    /// A local client's presence changed (<paramref name="selection"/> null: cleared) at this node's committed
    /// <paramref name="version"/>: share it with the other nodes' subscribers. Called on the sequencer's worker; must not block.
    /// Delivery is at most once; the other nodes hand what arrives to <see cref="DocumentHub.ApplyRemotePresenceAsync"/>.
    /// </summary>
    void PublishPresence(string clientId, long version, Selection? selection, ByteString userData);

    /// <summary>The hub closed or failed: stop replicating and give up ownership. Idempotent.</summary>
    ValueTask StopAsync();
}

/// <summary>Creates the cluster side of a document before the registry loads it (subscribing first, so nothing published meanwhile is missed).</summary>
internal interface IDocumentReplicator
{
    ValueTask<IDocumentReplication> OpenAsync(string docId, CancellationToken cancellationToken);
}

/// <summary>The answer to a client's submit: from the local sequencer, or from the owner in a cluster.</summary>
internal readonly record struct SubmitOutcome(SubmitStatus Status, long Version, string? Message)
{
    public static SubmitOutcome From(in SubmitResult result) => new(result.Status, result.Version, result.Message);

    public static SubmitOutcome Unavailable(string message) => new(SubmitStatus.Unavailable, 0, message);
}

/// <summary>A client's submit on its way to the document's owner: the op in its type's binary encoding.</summary>
internal readonly record struct ForwardedSubmission(string ClientId, long ClientSeq, long BaseVersion, ByteString Op, string? Author);
