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
