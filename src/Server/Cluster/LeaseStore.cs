using Collab.Server.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Collab.Server.Cluster;

/// <summary>A document's lease as stored: who holds it, under which epoch, and whether it is still live on the database clock.</summary>
internal readonly record struct LeaseRow(string DocId, string Owner, long Epoch, bool Live);

/// <summary>
/// The lease table in PostgreSQL (<c>doc_leases</c>, created by the op store's migrations). Expiry is computed on the
/// database's clock (<c>clock_timestamp()</c>, not the transaction start), so nodes' clocks never have to agree. Every
/// acquisition increments the epoch, the fencing token the op store checks when it writes.
/// </summary>
internal sealed class LeaseStore : IAsyncDisposable
{
    /// <summary>PostgreSQL keeps at most 63 bytes of an application name.</summary>
    private const int MaxApplicationName = 63;

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _nodeId;
    private readonly TimeSpan _duration;
    private readonly TimeSpan _writeTimeout;

    public LeaseStore(StorageOptions storage, string nodeId, TimeSpan duration, TimeSpan writeTimeout)
    {
        var builder = new NpgsqlDataSourceBuilder(storage.PostgresConnectionString);
        builder.ConnectionStringBuilder.ApplicationName = "collab-leases";
        _dataSource = builder.Build();
        _nodeId = nodeId;
        _duration = duration;
        _writeTimeout = writeTimeout;
    }

    /// <summary>
    /// The application name of a node's op-store connections. An acquiring node recognises the previous owner's stuck
    /// writers by it (see <see cref="TryAcquireAsync"/>).
    /// </summary>
    public static string WriterApplicationName(string nodeId)
    {
        string name = "collab-w:" + nodeId;
        while (System.Text.Encoding.UTF8.GetByteCount(name) > MaxApplicationName)
        {
            name = name[..^1];
        }

        return name;
    }

    /// <summary>The op-store data source of a cluster node: its connections carry <see cref="WriterApplicationName"/>.</summary>
    public static NpgsqlDataSource CreateWriterDataSource(StorageOptions storage, string nodeId)
    {
        var builder = new NpgsqlDataSourceBuilder(storage.PostgresConnectionString);
        builder.ConnectionStringBuilder.ApplicationName = WriterApplicationName(nodeId);
        return builder.Build();
    }

    /// <summary>
    /// Takes the lease when nobody holds a live one (a new document, a released or expired lease). Returns the new epoch,
    /// or null when another holder's lease is live. Waits at most <paramref name="lockTimeout"/> for a writer of the old
    /// owner that still has the row locked (its commit must land before this node loads the document).
    /// </summary>
    /// <remarks>
    /// A writer frozen in the middle of its transaction (a paused process) would hold the row lock, and the uncommitted
    /// op-log rows, forever: PostgreSQL's statement timeout does not fire while a COPY waits for the client's data. So
    /// once the old owner's lease has expired, its transactions older than the write timeout — necessarily stuck: a live
    /// owner stops writing before its lease expires — are terminated first. That only rolls them back (their ops were
    /// never acknowledged), and it needs the nodes to share a database role (or pg_signal_backend).
    /// </remarks>
    public async Task<long?> TryAcquireAsync(string docId, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection, transaction);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            $"SET LOCAL lock_timeout = {Math.Max(1, (long)lockTimeout.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture)}"));

        var terminate = new NpgsqlBatchCommand("""
            SELECT pg_terminate_backend(a.pid)
            FROM doc_leases l
            JOIN pg_stat_activity a ON a.application_name = left('collab-w:' || l.owner, 63)
            WHERE l.doc_id = $1 AND l.owner <> $2 AND l.expires_at <= clock_timestamp()
              AND a.datname = current_database() AND a.pid <> pg_backend_pid()
              AND a.xact_start < clock_timestamp() - $3
            """);
        terminate.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
        terminate.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _nodeId });
        terminate.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = _writeTimeout, NpgsqlDbType = NpgsqlDbType.Interval });
        batch.BatchCommands.Add(terminate);

        // FOR UPDATE conflicts with the KEY SHARE lock the op store's write fence holds on the row: a write of the old
        // owner that passed its check commits before this acquisition, never after it.
        var lockRow = new NpgsqlBatchCommand("SELECT 1 FROM doc_leases WHERE doc_id = $1 FOR UPDATE");
        lockRow.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
        batch.BatchCommands.Add(lockRow);
        var acquire = new NpgsqlBatchCommand("""
            INSERT INTO doc_leases AS l (doc_id, owner, epoch, expires_at)
            VALUES ($1, $2, 1, clock_timestamp() + $3)
            ON CONFLICT (doc_id) DO UPDATE
                SET owner = EXCLUDED.owner, epoch = l.epoch + 1, expires_at = EXCLUDED.expires_at
                WHERE l.expires_at <= clock_timestamp()
            RETURNING epoch
            """);
        acquire.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
        acquire.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _nodeId });
        acquire.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = _duration, NpgsqlDbType = NpgsqlDbType.Interval });
        batch.BatchCommands.Add(acquire);
        long? epoch = null;
        try
        {
            await using (var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                // SET, the terminations and the row lock (their rows are ignored), then the upsert's RETURNING epoch.
                do
                {
                    if (reader.FieldCount == 1 && reader.GetName(0) == "epoch" && await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        epoch = reader.GetInt64(0);
                    }
                }
                while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false));
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.LockNotAvailable)
        {
            // The old owner is writing (or frozen mid-write until its transaction times out): try again later.
            return null;
        }

        return epoch;
    }

    /// <summary>
    /// Extends every lease in <paramref name="leases"/> that this node still holds live, in one statement; returns the
    /// documents renewed. A lease that expired meanwhile is not revived: its document must stop here.
    /// </summary>
    public async Task<HashSet<string>> RenewAsync(IReadOnlyList<(string DocId, long Epoch)> leases, CancellationToken cancellationToken)
    {
        var renewed = new HashSet<string>(StringComparer.Ordinal);
        if (leases.Count == 0)
        {
            return renewed;
        }

        var docs = new string[leases.Count];
        var epochs = new long[leases.Count];
        for (int i = 0; i < leases.Count; i++)
        {
            (docs[i], epochs[i]) = leases[i];
        }

        await using var command = _dataSource.CreateCommand("""
            UPDATE doc_leases l SET expires_at = clock_timestamp() + $3
            FROM unnest($1::text[], $2::bigint[]) AS r(doc_id, epoch)
            WHERE l.doc_id = r.doc_id AND l.epoch = r.epoch AND l.owner = $4 AND l.expires_at > clock_timestamp()
            RETURNING l.doc_id
            """);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = docs });
        command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = epochs });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = _duration, NpgsqlDbType = NpgsqlDbType.Interval });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _nodeId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            renewed.Add(reader.GetString(0));
        }

        return renewed;
    }

    /// <summary>Gives a lease up (graceful hand-off): it expires now, so the next owner need not wait for it.</summary>
    public async Task ReleaseAsync(string docId, long epoch, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(
            "UPDATE doc_leases SET expires_at = clock_timestamp() WHERE doc_id = $1 AND owner = $2 AND epoch = $3");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _nodeId });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = epoch });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The stored leases of <paramref name="docIds"/> (documents never leased are absent).</summary>
    public async Task<Dictionary<string, LeaseRow>> ReadAsync(IReadOnlyCollection<string> docIds, CancellationToken cancellationToken)
    {
        var rows = new Dictionary<string, LeaseRow>(StringComparer.Ordinal);
        if (docIds.Count == 0)
        {
            return rows;
        }

        await using var command = _dataSource.CreateCommand(
            "SELECT doc_id, owner, epoch, expires_at > clock_timestamp() FROM doc_leases WHERE doc_id = ANY($1)");
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. docIds] });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var row = new LeaseRow(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.GetBoolean(3));
            rows[row.DocId] = row;
        }

        return rows;
    }

    /// <summary>The latest committed version of each of <paramref name="docIds"/> (after a NATS outage: what replicas may have missed).</summary>
    public async Task<Dictionary<string, long>> ReadVersionsAsync(IReadOnlyCollection<string> docIds, CancellationToken cancellationToken)
    {
        var versions = new Dictionary<string, long>(StringComparer.Ordinal);
        if (docIds.Count == 0)
        {
            return versions;
        }

        await using var command = _dataSource.CreateCommand("""
            SELECT d.doc_id, (SELECT max(o.version) FROM ops o WHERE o.doc_id = d.doc_id)
            FROM unnest($1::text[]) AS d(doc_id)
            """);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. docIds] });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (!reader.IsDBNull(1))
            {
                versions[reader.GetString(0)] = reader.GetInt64(1);
            }
        }

        return versions;
    }

    public ValueTask DisposeAsync() => _dataSource.DisposeAsync();
}
