using Collab.Engine.Sequencing;
using Microsoft.Data.Sqlite;

namespace Collab.Server.Storage;

/// <summary>The document catalogue and history reads of the embedded store (<see cref="IDocumentHistory"/>).</summary>
public sealed partial class SqliteOpStore
{
    /// <inheritdoc />
    public async ValueTask<DocumentInfo?> GetDocumentAsync(string docId, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT type, created_ms, deleted_ms FROM documents WHERE id = $doc";
        command.Parameters.AddWithValue("$doc", docId);
        using var reader = command.ExecuteReader();
        return reader.Read()
            ? new DocumentInfo(docId, reader.GetString(0), reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetInt64(2))
            : null;
    }

    /// <inheritdoc />
    public ValueTask<bool> CreateDocumentAsync(string docId, string type, long createdMs, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        return WriteAsync(writer =>
        {
            using var command = writer.CreateCommand();
            command.CommandText = "INSERT OR IGNORE INTO documents (id, created_ms, type) VALUES ($doc, $ts, $type)";
            command.Parameters.AddWithValue("$doc", docId);
            command.Parameters.AddWithValue("$ts", createdMs);
            command.Parameters.AddWithValue("$type", type);
            return command.ExecuteNonQuery() == 1;
        }, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<bool> DeleteDocumentAsync(string docId, long deletedMs, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        return WriteAsync(writer =>
        {
            using var command = writer.CreateCommand();
            command.CommandText = "UPDATE documents SET deleted_ms = $ts WHERE id = $doc AND deleted_ms IS NULL";
            command.Parameters.AddWithValue("$doc", docId);
            command.Parameters.AddWithValue("$ts", deletedMs);
            return command.ExecuteNonQuery() == 1;
        }, cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<DocumentSummary>> ListDocumentsAsync(string prefix, string? after, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();

        // A range on the primary key: ids are ASCII, so every id with the prefix sorts below prefix + DEL.
        command.CommandText = """
            SELECT d.id, d.type, coalesce((SELECT max(version) FROM ops o WHERE o.doc_id = d.id), 0), d.created_ms
            FROM documents d
            WHERE d.id >= $from AND d.id < $to AND d.id > $after AND d.deleted_ms IS NULL
            ORDER BY d.id LIMIT $limit
            """;
        command.Parameters.AddWithValue("$from", prefix);
        command.Parameters.AddWithValue("$to", prefix + "\u007f");
        command.Parameters.AddWithValue("$after", after ?? "");
        command.Parameters.AddWithValue("$limit", limit);
        var documents = new List<DocumentSummary>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            documents.Add(new DocumentSummary(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3)));
        }

        return documents;
    }

    /// <inheritdoc />
    public async ValueTask<SnapshotRecord?> ReadSnapshotAtOrBeforeAsync(string docId, long version, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT version, content, meta, ts_ms FROM snapshots WHERE doc_id = $doc AND version <= $version ORDER BY version DESC LIMIT 1";
        command.Parameters.AddWithValue("$doc", docId);
        command.Parameters.AddWithValue("$version", version);
        using var reader = command.ExecuteReader();
        return reader.Read()
            ? new SnapshotRecord(docId, reader.GetInt64(0), StorageValidation.DecodeText((byte[])reader.GetValue(1)), (byte[])reader.GetValue(2), reader.GetInt64(3))
            : null;
    }

    /// <inheritdoc />
    public async ValueTask<HistoryBounds> GetBoundsAsync(string docId, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        using var transaction = connection.BeginTransaction(deferred: true);
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = """
            SELECT (SELECT min(version) FROM ops WHERE doc_id = $doc), (SELECT max(version) FROM ops WHERE doc_id = $doc),
                   (SELECT max(version) FROM snapshots WHERE doc_id = $doc)
            """;
        command.Parameters.AddWithValue("$doc", docId);
        long? firstOp, lastOp, lastSnapshot;
        using (var reader = command.ExecuteReader())
        {
            reader.Read();
            firstOp = Nullable(reader, 0);
            lastOp = Nullable(reader, 1);
            lastSnapshot = Nullable(reader, 2);
        }

        long earliest = 0;
        if (firstOp is not > 1)
        {
            earliest = firstOp is null ? lastSnapshot ?? 0 : 0;
        }
        else
        {
            // Pruned: the oldest snapshot from which the remaining log continues.
            command.CommandText = "SELECT min(version) FROM snapshots WHERE doc_id = $doc AND version >= $first";
            command.Parameters.AddWithValue("$first", firstOp.Value - 1);
            earliest = command.ExecuteScalar() is long v ? v : lastOp ?? 0;
        }

        return new HistoryBounds(firstOp, lastOp, lastSnapshot, earliest);

        static long? Nullable(SqliteDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetInt64(ordinal);
    }

    /// <inheritdoc />
    public async ValueTask<long> VersionAtAsync(string docId, long timestampMs, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        using var transaction = connection.BeginTransaction(deferred: true);
        using var command = connection.CreateCommand();
        command.Transaction = transaction;

        // Start from the newest snapshot written by then (its version was committed before it was written), so the scan
        // for the first later op covers about one snapshot interval, not the whole log.
        command.CommandText = """
            SELECT coalesce((SELECT max(version) FROM snapshots WHERE doc_id = $doc AND ts_ms <= $ts), 0),
                   (SELECT max(version) FROM ops WHERE doc_id = $doc)
            """;
        command.Parameters.AddWithValue("$doc", docId);
        command.Parameters.AddWithValue("$ts", timestampMs);
        long from;
        long? head;
        using (var reader = command.ExecuteReader())
        {
            reader.Read();
            from = reader.GetInt64(0);
            head = reader.IsDBNull(1) ? null : reader.GetInt64(1);
        }

        command.CommandText = "SELECT version FROM ops WHERE doc_id = $doc AND version > $from AND ts_ms > $ts ORDER BY version LIMIT 1";
        command.Parameters.AddWithValue("$from", from);
        object? first = command.ExecuteScalar();
        return first is long version ? version - 1 : Math.Max(from, head ?? 0);
    }

    /// <inheritdoc />
    public async ValueTask<int> PurgeDeletedAsync(long cutoffMs, CancellationToken cancellationToken)
    {
        var doomed = new List<string>();
        await using (var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false))
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT id FROM documents WHERE deleted_ms < $cutoff";
            command.Parameters.AddWithValue("$cutoff", cutoffMs);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                doomed.Add(reader.GetString(0));
            }
        }

        // One short transaction per document, so commits interleave with a long purge.
        foreach (string docId in doomed)
        {
            await WriteAsync(writer =>
            {
                using var transaction = writer.BeginTransaction(deferred: false);
                using var command = writer.CreateCommand();
                command.Transaction = transaction;
                command.Parameters.AddWithValue("$doc", docId);
                command.CommandText = "DELETE FROM ops WHERE doc_id = $doc; DELETE FROM snapshots WHERE doc_id = $doc; DELETE FROM documents WHERE id = $doc AND deleted_ms IS NOT NULL";
                command.ExecuteNonQuery();
                transaction.Commit();
                return true;
            }, cancellationToken).ConfigureAwait(false);
        }

        return doomed.Count;
    }

    /// <summary>Runs one statement group on the writer connection (reopened after an infrastructure failure).</summary>
    private async ValueTask<T> WriteAsync<T>(Func<SqliteConnection, T> write, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return write(EnsureWriter());
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not ObjectDisposedException)
        {
            ResetWriter();
            throw;
        }
        finally
        {
            _writeLock.Release();
        }
    }
}
