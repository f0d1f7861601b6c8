using System.Net.Sockets;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Collab.Server.Storage;

/// <summary>Tells an outage (worth waiting out) from a fault that will not go away by itself, for logging.</summary>
internal static class StorageErrors
{
    // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL.
    private static readonly int[] TransientSqliteCodes = [5, 6, 10, 13, 14, 15];

    public static bool IsTransient(Exception exception) => exception switch
    {
        NpgsqlException npgsql => npgsql.IsTransient || npgsql is PostgresException { SqlState: "57P01" or "57P02" or "57P03" },
        SqliteException sqlite => Array.IndexOf(TransientSqliteCodes, sqlite.SqliteErrorCode) >= 0,
        IOException or SocketException or TimeoutException => true,
        _ => exception.InnerException is { } inner && IsTransient(inner),
    };
}
