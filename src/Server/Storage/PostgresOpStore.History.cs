using Collab.Engine.Sequencing;
using Npgsql;
using NpgsqlTypes;

namespace Collab.Server.Storage;

/// <summary>
/// The document catalogue and history reads of the PostgreSQL store (<see cref="IDocumentHistory"/>). Every read here
/// also works on a streaming replica (hot standby), which the API uses for explicit past versions.
/// </summary>
public sealed partial class PostgresOpStore
{
    /// <inheritdoc />
    public async ValueTask<DocumentInfo?> GetDocumentAsync(string docId, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        await using var command = _dataSource.CreateCommand("SELECT type, created, deleted_at FROM documents WHERE id = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        return new DocumentInfo(
            docId,
            reader.GetString(0),
            StorageValidation.ToUnixMilliseconds(reader.GetFieldValue<DateTime>(1)),
            reader.IsDBNull(2) ? null : StorageValidation.ToUnixMilliseconds(reader.GetFieldValue<DateTime>(2)));
    }

    /// <inheritdoc />
    public async ValueTask<bool> CreateDocumentAsync(string docId, string type, long createdMs, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        await using var command = _dataSource.CreateCommand("INSERT INTO documents (id, created, type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = StorageValidation.ToUtcDateTime(createdMs), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = type });
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public async ValueTask<bool> DeleteDocumentAsync(string docId, long deletedMs, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        await using var command = _dataSource.CreateCommand("UPDATE documents SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = StorageValidation.ToUtcDateTime(deletedMs), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<DocumentSummary>> ListDocumentsAsync(string prefix, string? after, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);

        // A range on the primary key (COLLATE "C", ids are ASCII): every id with the prefix sorts below prefix + DEL.
        await using var command = _dataSource.CreateCommand("""
            SELECT d.id, d.type, coalesce((SELECT max(o.version) FROM ops o WHERE o.doc_id = d.id), 0), d.created
            FROM documents d
            WHERE d.id >= $1 AND d.id < $2 AND d.id > $3 AND d.deleted_at IS NULL
            ORDER BY d.id LIMIT $4
            """);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = prefix });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = prefix + "\u007f" });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = after ?? "" });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        var documents = new List<DocumentSummary>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            documents.Add(new DocumentSummary(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), StorageValidation.ToUnixMilliseconds(reader.GetFieldValue<DateTime>(3))));
        }

        return documents;
    }

    /// <inheritdoc />
    public async ValueTask<SnapshotRecord?> ReadSnapshotAtOrBeforeAsync(string docId, long version, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        await using var command = _dataSource.CreateCommand("SELECT version, content, meta, ts FROM snapshots WHERE doc_id = $1 AND version <= $2 ORDER BY version DESC LIMIT 1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = version });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        return new SnapshotRecord(
            docId,
            reader.GetInt64(0),
            StorageValidation.DecodeText(reader.GetFieldValue<byte[]>(1)),
            reader.GetFieldValue<byte[]>(2),
            StorageValidation.ToUnixMilliseconds(reader.GetFieldValue<DateTime>(3)));
    }

    /// <inheritdoc />
    public async ValueTask<HistoryBounds> GetBoundsAsync(string docId, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        await using var command = _dataSource.CreateCommand("""
            WITH b AS (SELECT (SELECT min(version) FROM ops WHERE doc_id = $1) AS first_op, (SELECT max(version) FROM ops WHERE doc_id = $1) AS last_op,
                              (SELECT max(version) FROM snapshots WHERE doc_id = $1) AS last_snapshot)
            SELECT first_op, last_op, last_snapshot,
                   CASE WHEN first_op IS NULL THEN coalesce(last_snapshot, 0)
                        WHEN first_op <= 1 THEN 0
                        ELSE coalesce((SELECT min(version) FROM snapshots WHERE doc_id = $1 AND version >= first_op - 1), last_op) END
            FROM b
            """);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return new HistoryBounds(Nullable(reader, 0), Nullable(reader, 1), Nullable(reader, 2), reader.GetInt64(3));

        static long? Nullable(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetInt64(ordinal);
    }

    /// <inheritdoc />
    public async ValueTask<long> VersionAtAsync(string docId, long timestampMs, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);

        // From the newest snapshot written by then (its version was committed before it was written), the first op
        // committed later: one index range scan of about a snapshot interval, not the whole log.
        await using var command = _dataSource.CreateCommand("""
            WITH start AS (SELECT coalesce((SELECT max(version) FROM snapshots WHERE doc_id = $1 AND ts <= $2), 0) AS v)
            SELECT (SELECT o.version FROM ops o, start WHERE o.doc_id = $1 AND o.version > start.v AND o.ts > $2 ORDER BY o.version LIMIT 1),
                   (SELECT v FROM start),
                   (SELECT max(version) FROM ops WHERE doc_id = $1)
            """);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = StorageValidation.ToUtcDateTime(timestampMs), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        if (!reader.IsDBNull(0))
        {
            return reader.GetInt64(0) - 1;
        }

        return Math.Max(reader.GetInt64(1), reader.IsDBNull(2) ? 0 : reader.GetInt64(2));
    }

    /// <inheritdoc />
    public async ValueTask<int> PurgeDeletedAsync(long cutoffMs, CancellationToken cancellationToken)
    {
        var doomed = new List<string>();
        await using (var select = _dataSource.CreateCommand("SELECT id FROM documents WHERE deleted_at < $1"))
        {
            select.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = StorageValidation.ToUtcDateTime(cutoffMs), NpgsqlDbType = NpgsqlDbType.TimestampTz });
            await using var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                doomed.Add(reader.GetString(0));
            }
        }

        // One short transaction per document: its ops (one hash partition), snapshots, lease and catalogue row.
        foreach (string docId in doomed)
        {
            await using var batch = _dataSource.CreateBatch();
            foreach (string sql in new[]
            {
                "DELETE FROM ops WHERE doc_id = $1",
                "DELETE FROM snapshots WHERE doc_id = $1",
                "DELETE FROM doc_leases WHERE doc_id = $1",
                "DELETE FROM documents WHERE id = $1 AND deleted_at IS NOT NULL",
            })
            {
                var command = new NpgsqlBatchCommand(sql);
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
                batch.BatchCommands.Add(command);
            }

            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        return doomed.Count;
    }
}
