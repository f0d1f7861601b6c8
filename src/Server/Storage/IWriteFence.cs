namespace Collab.Server.Storage;

/// <summary>
/// Write-time fencing of a cluster node (docs/CLUSTER.md, "Fencing"). A store given a fence writes a document's ops only
/// while this node holds the document's lease: inside the transaction that writes them it locks the documents' lease rows
/// (FOR KEY SHARE; another node takes a lease FOR UPDATE, so it waits until the write commits) and refuses every document whose lease is not
/// this node's, not of the epoch the node believes it holds, or expired. Such documents are reported like version
/// conflicts, which stops their sequencers. Each op is stored with the epoch it was written under.
/// </summary>
public interface IWriteFence
{
    /// <summary>This node's id, as stored in the lease table.</summary>
    string NodeId { get; }

    /// <summary>
    /// Bounds one write transaction (statement and idle-in-transaction timeouts): a writer frozen mid-transaction (a
    /// paused process) must not keep the lease rows locked, and so failover blocked, for longer than this.
    /// </summary>
    TimeSpan WriteTimeout { get; }

    /// <summary>The epoch of this node's live lease on <paramref name="docId"/>; false when it holds none (its ops are refused).</summary>
    bool TryGetEpoch(string docId, out long epoch);
}
