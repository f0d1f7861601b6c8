using System.Diagnostics.CodeAnalysis;

namespace Collab.Server.Storage;

/// <summary>The database schema cannot be used by this server (newer than it knows, or not what a migration expects).</summary>
public sealed class StorageSchemaException : Exception
{
    public StorageSchemaException(string message)
        : base(message)
    {
    }

    public StorageSchemaException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    [DoesNotReturn]
    internal static void ThrowNewerSchema(string store, long found, long known) =>
        throw new StorageSchemaException(
            $"The {store} database is at schema version {found}, newer than the {known} this server knows; upgrade the server.");
}

/// <summary>
/// The op log cannot supply a contiguous history for the requested range (the ops were pruned after a snapshot,
/// or never written). The caller has to resynchronise from a snapshot instead of transforming against history.
/// </summary>
public sealed class OpHistoryUnavailableException : Exception
{
    public OpHistoryUnavailableException(string docId, long missingVersion)
        : base($"Op {missingVersion} of document '{docId}' is not in the op log (pruned or never written).")
    {
        DocId = docId;
        MissingVersion = missingVersion;
    }

    /// <summary>The document whose history is incomplete.</summary>
    public string DocId { get; }

    /// <summary>The first version that is missing.</summary>
    public long MissingVersion { get; }

    [DoesNotReturn]
    internal static void Throw(string docId, long missingVersion) => throw new OpHistoryUnavailableException(docId, missingVersion);
}
