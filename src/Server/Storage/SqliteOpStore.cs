using System.Globalization;
using Collab.Engine.Sequencing;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace Collab.Server.Storage;

/// <summary>
/// The embedded single-node op store: one SQLite file in WAL mode with <c>synchronous=FULL</c> by default, so a commit
/// that returned is on disk (survives kill -9 and power loss; <see cref="SqliteSyncMode.Normal"/> only kill -9). All
/// writes go through one connection, one transaction per batch with prepared statements reused across batches; reads
/// use separate pooled read-only connections, which WAL lets run concurrently with the writer.
/// </summary>
/// <remarks>
/// Microsoft.Data.Sqlite executes synchronously even behind its async methods, so a call blocks its thread for the
/// statement (and the fsync on commit). The group-commit stage calls <see cref="AppendAsync"/> from one loop, so this
/// costs one thread, not one per document.
/// </remarks>
public sealed partial class SqliteOpStore : IOpStore, IDocumentHistory
{
    private const int PruneDocsPerTransaction = 256;

    private static readonly Migration[] Migrations =
    [
        new(1, "op log, documents and snapshots", """
            CREATE TABLE documents (
                id         TEXT    NOT NULL PRIMARY KEY,
                created_ms INTEGER NOT NULL,
                metadata   TEXT    NOT NULL DEFAULT '{}'
            ) WITHOUT ROWID;

            CREATE TABLE ops (
                doc_id     TEXT    NOT NULL,
                version    INTEGER NOT NULL,
                client_id  TEXT    NOT NULL,
                client_seq INTEGER NOT NULL,
                author     TEXT,
                op         BLOB    NOT NULL,
                ts_ms      INTEGER NOT NULL,
                PRIMARY KEY (doc_id, version)
            ) WITHOUT ROWID;

            CREATE TABLE snapshots (
                doc_id  TEXT    NOT NULL,
                version INTEGER NOT NULL,
                content BLOB    NOT NULL,
                meta    BLOB    NOT NULL,
                ts_ms   INTEGER NOT NULL,
                PRIMARY KEY (doc_id, version)
            ) WITHOUT ROWID;
            """),
        new(2, "server secrets", """
            CREATE TABLE server_secrets (
                name       TEXT    NOT NULL PRIMARY KEY,
                value      BLOB    NOT NULL,
                created_ms INTEGER NOT NULL
            ) WITHOUT ROWID;
            """),
        new(3, "document type and tombstone", """
            ALTER TABLE documents ADD COLUMN type TEXT NOT NULL DEFAULT 'text-unicode';
            ALTER TABLE documents ADD COLUMN deleted_ms INTEGER;
            """),
    ];

    private readonly string _path;
    private readonly string _writerConnectionString;
    private readonly string _readerConnectionString;
    private readonly int _busyTimeoutMs;
    private readonly int _snapshotsToKeep;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly TimeSpan _checkpointInterval;
    private readonly string _synchronous;
    private readonly long _walRestartBytes;
    private SqliteCheckpointer? _checkpointer;
    private long _walRestarts;

    // Writer state, guarded by _writeLock. Reopened after an infrastructure failure (the connection may be unusable).
    private SqliteConnection? _writer;
    private SqliteAppendStatements? _append;
    private SqliteCommand? _selectExisting;
    private bool _disposed;

    /// <summary>Creates the store for <see cref="StorageOptions.SqlitePath"/>; call <see cref="InitializeAsync"/> before use.</summary>
    public SqliteOpStore(StorageOptions options, ILogger<SqliteOpStore>? logger = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _path = Path.GetFullPath(options.SqlitePath);
        _busyTimeoutMs = (int)Math.Min(int.MaxValue, options.SqliteBusyTimeout.TotalMilliseconds);
        _snapshotsToKeep = options.SnapshotsToKeep;
        _checkpointInterval = options.SqliteCheckpointInterval;
        _synchronous = options.SqliteSynchronous == SqliteSyncMode.Normal ? "NORMAL" : "FULL";
        _walRestartBytes = options.SqliteWalRestartBytes;
        _logger = logger ?? NullLogger<SqliteOpStore>.Instance;
        _time = timeProvider ?? TimeProvider.System;

        // Microsoft.Data.Sqlite retries SQLITE_BUSY itself until the command timeout, so the busy timeout is also
        // the command timeout (whole seconds, at least one).
        var timeoutSeconds = Math.Max(1, (int)Math.Ceiling(options.SqliteBusyTimeout.TotalSeconds));
        _writerConnectionString = new SqliteConnectionStringBuilder
        {
            DataSource = _path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = false,
            DefaultTimeout = timeoutSeconds,
        }.ToString();
        _readerConnectionString = new SqliteConnectionStringBuilder
        {
            DataSource = _path,
            Mode = SqliteOpenMode.ReadOnly,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = timeoutSeconds,
        }.ToString();
    }

    /// <summary>Full path of the database file.</summary>
    public string DatabasePath => _path;

    /// <inheritdoc />
    public async ValueTask InitializeAsync(CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var writer = EnsureWriter();
            Migrate(writer);
            if (_checkpointer is null && _checkpointInterval > TimeSpan.Zero)
            {
                _checkpointer = new SqliteCheckpointer(_writerConnectionString, _checkpointInterval, _walRestartBytes, _logger);
            }
        }
        catch
        {
            ResetWriter();
            throw;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask<AppendResult> AppendAsync(IReadOnlyList<OpRecord> batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        StorageValidation.ValidateBatch(batch);
        if (batch.Count == 0)
        {
            return AppendResult.Ok;
        }

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var writer = EnsureWriter();
            RestartLogIfDue(writer);

            BatchExclusions? exclusions = null;
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var append = _append!;
                var failedAt = -1;
                append.Begin();
                try
                {
                    for (var i = 0; i < batch.Count; i++)
                    {
                        var record = batch[i];
                        if (exclusions is not null && exclusions.Skip(record))
                        {
                            continue;
                        }

                        if (!append.TryInsert(record))
                        {
                            failedAt = i;
                            break;
                        }
                    }

                    if (failedAt < 0)
                    {
                        append.Commit();
                        _checkpointer?.OnCommitted(batch.Count);
                        return BatchExclusions.ToResult(exclusions);
                    }
                }
                finally
                {
                    // Whatever was not committed (a clash, an error) is rolled back before the lock is released.
                    append.Rollback();
                }

                // A (doc, version) already exists. Roll back, look up every record of the batch that exists (not just
                // the first clash), fence the documents another writer got to, skip records an earlier attempt of ours
                // committed, and write the rest again. Each round excludes something more, so this terminates.
                exclusions ??= new BatchExclusions();
                ClassifyExisting(batch, exclusions);
                if (!exclusions.TakeProgress() && !exclusions.ExcludeDuplicatesWithinBatch(batch))
                {
                    throw new InvalidOperationException(
                        $"SQLite reported a primary-key violation for document '{batch[failedAt].DocId}' version {batch[failedAt].Version}, but no such row exists.");
                }

                if (exclusions.Conflicted.Count > 0)
                {
                    StorageLog.OpLogConflict(_logger, exclusions.Conflicted.Count, exclusions.Conflicted[0]);
                }
            }
        }
        catch (Exception ex) when (ex is not ArgumentException and not OperationCanceledException)
        {
            // I/O error, disk full, lock timeout: the connection may be unusable; the next call opens a fresh one.
            ResetWriter();
            throw;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask<DocumentLoad?> LoadAsync(string docId, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);

        // One read transaction: the snapshot and the ops after it come from the same WAL snapshot, so a concurrent
        // snapshot write plus prune cannot remove ops between the two reads.
        using var transaction = connection.BeginTransaction(deferred: true);
        SnapshotRecord? snapshot = null;
        using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = "SELECT version, content, meta, ts_ms FROM snapshots WHERE doc_id = $doc ORDER BY version DESC LIMIT 1";
            command.Parameters.AddWithValue("$doc", docId);
            using var reader = command.ExecuteReader();
            if (reader.Read())
            {
                snapshot = new SnapshotRecord(
                    docId,
                    reader.GetInt64(0),
                    StorageValidation.DecodeText((byte[])reader.GetValue(1)),
                    (byte[])reader.GetValue(2),
                    reader.GetInt64(3));
            }
        }

        var ops = ReadOps(connection, transaction, docId, snapshot?.Version ?? 0, long.MaxValue, int.MaxValue);
        transaction.Commit();
        return snapshot is null && ops.Count == 0 ? null : new DocumentLoad(snapshot, ops);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<OpRecord>> ReadOpsAsync(string docId, long afterVersion, long toVersion, int limit, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        if (limit == 0 || toVersion <= afterVersion)
        {
            return Array.Empty<OpRecord>();
        }

        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        return ReadOps(connection, transaction: null, docId, afterVersion, toVersion, limit);
    }

    /// <inheritdoc />
    public async ValueTask<OpLookup> FindOpAsync(string docId, string clientId, long clientSeq, long afterVersion, long toVersion, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        ArgumentNullException.ThrowIfNull(clientId);
        if (toVersion <= afterVersion)
        {
            return default;
        }

        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT count(*), coalesce(max(CASE WHEN client_seq = $seq AND client_id = $client THEN version END), 0) FROM ops
            WHERE doc_id = $doc AND version > $after AND version <= $to
            """;
        command.Parameters.AddWithValue("$doc", docId);
        command.Parameters.AddWithValue("$after", afterVersion);
        command.Parameters.AddWithValue("$to", toVersion);
        command.Parameters.AddWithValue("$client", clientId);
        command.Parameters.AddWithValue("$seq", clientSeq);
        using var reader = command.ExecuteReader();
        reader.Read();
        return new OpLookup(reader.GetInt64(1), reader.GetInt64(0));
    }

    /// <inheritdoc />
    public async ValueTask<byte[]> GetOrCreateSecretAsync(string name, int length, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var writer = EnsureWriter();
            using var transaction = writer.BeginTransaction(deferred: false);
            using var command = writer.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "INSERT OR IGNORE INTO server_secrets (name, value, created_ms) VALUES ($name, $value, $ts)";
            command.Parameters.AddWithValue("$name", name);
            command.Parameters.Add("$value", SqliteType.Blob).Value = System.Security.Cryptography.RandomNumberGenerator.GetBytes(length);
            command.Parameters.AddWithValue("$ts", _time.GetUtcNow().ToUnixTimeMilliseconds());
            command.ExecuteNonQuery();
            command.Parameters.Clear();
            command.CommandText = "SELECT value FROM server_secrets WHERE name = $name";
            command.Parameters.AddWithValue("$name", name);
            var value = (byte[])command.ExecuteScalar()!;
            transaction.Commit();
            return value;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            ResetWriter();
            throw;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask WriteSnapshotAsync(SnapshotRecord snapshot, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateSnapshot(snapshot);
        var content = StorageValidation.EncodeText(snapshot.Text);
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var writer = EnsureWriter();

            // A snapshot is derived data (the ops it covers are in the log), so its commit skips the fsync: the next
            // op commit's fsync of the WAL makes it durable too, and a crash before that only costs a replay from
            // the previous snapshot. With an fsync each, the 200 documents of a uniform load reaching their snapshot
            // threshold together held the writer for 200 fsyncs and stalled every ack behind them.
            using var relaxed = RelaxedSync(writer);
            using var transaction = writer.BeginTransaction(deferred: false);
            using var command = writer.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = """
                INSERT INTO snapshots (doc_id, version, content, meta, ts_ms)
                SELECT $doc, $version, $content, $meta, $ts
                WHERE NOT EXISTS (SELECT 1 FROM snapshots WHERE doc_id = $doc AND version >= $version)
                """;
            command.Parameters.AddWithValue("$doc", snapshot.DocId);
            command.Parameters.AddWithValue("$version", snapshot.Version);
            command.Parameters.Add("$content", SqliteType.Blob).Value = content;
            command.Parameters.Add("$meta", SqliteType.Blob).Value = StorageValidation.AsArray(snapshot.Meta);
            command.Parameters.AddWithValue("$ts", snapshot.TimestampMs);
            if (command.ExecuteNonQuery() == 0)
            {
                transaction.Rollback();
                return;
            }

            if (_snapshotsToKeep > 0)
            {
                command.Parameters.Clear();
                command.CommandText = """
                    DELETE FROM snapshots WHERE doc_id = $doc AND version <
                        (SELECT version FROM snapshots WHERE doc_id = $doc ORDER BY version DESC LIMIT 1 OFFSET $keep)
                    """;
                command.Parameters.AddWithValue("$doc", snapshot.DocId);
                command.Parameters.AddWithValue("$keep", _snapshotsToKeep - 1);
                command.ExecuteNonQuery();
            }

            command.Parameters.Clear();
            command.CommandText = "INSERT OR IGNORE INTO documents (id, created_ms) VALUES ($doc, $ts)";
            command.Parameters.AddWithValue("$doc", snapshot.DocId);
            command.Parameters.AddWithValue("$ts", snapshot.TimestampMs);
            command.ExecuteNonQuery();
            transaction.Commit();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            ResetWriter();
            throw;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask<long> PruneAsync(TimeSpan retention, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retention, TimeSpan.Zero);
        var cutoffMs = (_time.GetUtcNow() - retention).ToUnixTimeMilliseconds();

        // Which documents have a snapshot, and up to which version it covers: read once, then delete per document in
        // short transactions so group commits interleave with a long prune instead of waiting behind it.
        var covered = new List<(string DocId, long Version)>();
        await using (var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false))
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT doc_id, max(version) FROM snapshots GROUP BY doc_id";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                covered.Add((reader.GetString(0), reader.GetInt64(1)));
            }
        }

        long removed = 0;
        for (var start = 0; start < covered.Count; start += PruneDocsPerTransaction)
        {
            await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                var writer = EnsureWriter();
                using var transaction = writer.BeginTransaction(deferred: false);
                using var command = writer.CreateCommand();
                command.Transaction = transaction;
                command.CommandText = "DELETE FROM ops WHERE doc_id = $doc AND version <= $version AND ts_ms < $cutoff";
                var doc = command.Parameters.Add("$doc", SqliteType.Text);
                var version = command.Parameters.Add("$version", SqliteType.Integer);
                command.Parameters.AddWithValue("$cutoff", cutoffMs);
                var end = Math.Min(covered.Count, start + PruneDocsPerTransaction);
                for (var i = start; i < end; i++)
                {
                    doc.Value = covered[i].DocId;
                    version.Value = covered[i].Version;
                    removed += command.ExecuteNonQuery();
                }

                transaction.Commit();
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                ResetWriter();
                throw;
            }
            finally
            {
                _writeLock.Release();
            }
        }

        if (removed > 0)
        {
            StorageLog.SqlitePruned(_logger, removed, retention, _path);
        }

        return removed;
    }

    /// <summary>Closes the writer and releases pooled reader connections (the file can be opened again afterwards).</summary>
    public async ValueTask DisposeAsync()
    {
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _checkpointer?.Dispose();
            ResetWriter();
            using var probe = new SqliteConnection(_readerConnectionString);
            SqliteConnection.ClearPool(probe);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>The background WAL checkpointer, or null when SQLite checkpoints in the commit path (tests).</summary>
    internal SqliteCheckpointer? Checkpointer => _checkpointer;

    /// <summary>RESTART checkpoints the writer ran because the log had grown past the restart size (tests).</summary>
    internal long WalRestarts => Interlocked.Read(ref _walRestarts);

    /// <summary>Rewinds the log between two transactions when the checkpointer asks for it (caller holds _writeLock).</summary>
    private void RestartLogIfDue(SqliteConnection writer)
    {
        if (_checkpointer?.TakeRestartDue() != true)
        {
            return;
        }

        try
        {
            SqliteCheckpointer.Checkpoint(writer, "RESTART");
            Interlocked.Increment(ref _walRestarts);
        }
        catch (SqliteException ex)
        {
            // A reader held the log past the busy timeout: the batch must not fail for it; the checkpointer asks again.
            StorageLog.RestartCheckpointFailed(_logger, ex);
        }
    }

    /// <summary>Reads a pragma on the writer connection (tests check the durability settings).</summary>
    internal async ValueTask<string?> ReadWriterPragmaAsync(string pragma, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            using var command = EnsureWriter().CreateCommand();
            command.CommandText = "PRAGMA " + pragma;
            return Convert.ToString(command.ExecuteScalar(), CultureInfo.InvariantCulture);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private void ClassifyExisting(IReadOnlyList<OpRecord> batch, BatchExclusions exclusions)
    {
        var select = _selectExisting!;
        select.Transaction = null;
        for (var i = 0; i < batch.Count; i++)
        {
            var record = batch[i];
            if (exclusions.IsExcluded(record.DocId))
            {
                continue;
            }

            select.Parameters[0].Value = record.DocId;
            select.Parameters[1].Value = record.Version;
            using var reader = select.ExecuteReader();
            if (reader.Read())
            {
                exclusions.ObserveExisting(record, reader.GetString(0), reader.GetInt64(1));
            }
        }
    }

    private static List<OpRecord> ReadOps(SqliteConnection connection, SqliteTransaction? transaction, string docId, long afterVersion, long toVersion, int limit)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = """
            SELECT version, client_id, client_seq, author, op, ts_ms FROM ops
            WHERE doc_id = $doc AND version > $after AND version <= $to
            ORDER BY version LIMIT $limit
            """;
        command.Parameters.AddWithValue("$doc", docId);
        command.Parameters.AddWithValue("$after", afterVersion);
        command.Parameters.AddWithValue("$to", toVersion);
        command.Parameters.AddWithValue("$limit", limit);
        var ops = new List<OpRecord>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            ops.Add(new OpRecord(
                docId,
                reader.GetInt64(0),
                reader.GetString(1),
                reader.GetInt64(2),
                reader.IsDBNull(3) ? null : reader.GetString(3),
                (byte[])reader.GetValue(4),
                reader.GetInt64(5)));
        }

        return ops;
    }

    private async ValueTask<SqliteConnection> OpenReaderAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var connection = new SqliteConnection(_readerConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Sets <c>synchronous=NORMAL</c> on the writer until disposed (outside any transaction).</summary>
    private SyncScope RelaxedSync(SqliteConnection writer)
    {
        SetSynchronous(writer, "NORMAL");
        return new SyncScope(writer, _synchronous);
    }

    private static void SetSynchronous(SqliteConnection writer, string level)
    {
        using var pragma = writer.CreateCommand();
        pragma.CommandText = "PRAGMA synchronous=" + level;
        pragma.ExecuteNonQuery();
    }

    /// <summary>Restores the configured level (declared after the transaction, so disposed after it ends).</summary>
    private readonly struct SyncScope(SqliteConnection writer, string level) : IDisposable
    {
        public void Dispose()
        {
            if (writer.State == System.Data.ConnectionState.Open)
            {
                SetSynchronous(writer, level);
            }
        }
    }

    private SqliteConnection EnsureWriter()
    {
        if (_writer is not null)
        {
            return _writer;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        var connection = new SqliteConnection(_writerConnectionString);
        try
        {
            connection.Open();
            using (var pragma = connection.CreateCommand())
            {
                // WAL: readers never block the writer. synchronous=FULL (the default, StorageOptions.SqliteSynchronous):
                // every commit fsyncs the WAL, so an acknowledged op survives power loss; NORMAL only a process crash.
                pragma.CommandText = "PRAGMA journal_mode=WAL";
                var mode = Convert.ToString(pragma.ExecuteScalar(), CultureInfo.InvariantCulture);
                if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
                {
                    throw new StorageSchemaException($"SQLite refused WAL mode for '{_path}' (journal_mode={mode}).");
                }
                // A 64 MB page cache and memory-mapped reads keep the op-log B-tree's hot pages out of read() calls
                // (the default 2 MB cache made every batch re-read interior pages through the kernel).
                pragma.CommandText = $"PRAGMA synchronous={_synchronous}; PRAGMA busy_timeout={_busyTimeoutMs}; PRAGMA foreign_keys=OFF; " +
                                     "PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456; PRAGMA temp_store=MEMORY;" +
                                     (_checkpointInterval > TimeSpan.Zero ? " PRAGMA wal_autocheckpoint=0;" : ""); // see SqliteCheckpointer
                pragma.ExecuteNonQuery();
            }

            _append = new SqliteAppendStatements(connection);

            _selectExisting = connection.CreateCommand();
            _selectExisting.CommandText = "SELECT client_id, client_seq FROM ops WHERE doc_id = $doc AND version = $version";
            _selectExisting.Parameters.Add("$doc", SqliteType.Text);
            _selectExisting.Parameters.Add("$version", SqliteType.Integer);

            _writer = connection;
            return connection;
        }
        catch
        {
            DisposeCommands();
            connection.Dispose();
            throw;
        }
    }

    private void Migrate(SqliteConnection writer)
    {
        using (var create = writer.CreateCommand())
        {
            create.CommandText = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY, description TEXT NOT NULL, applied_ms INTEGER NOT NULL)";
            create.ExecuteNonQuery();
        }

        foreach (var migration in Migrations)
        {
            // BEGIN IMMEDIATE takes the write lock first, so two processes opening the same file cannot both apply
            // a migration: the second waits, then sees it recorded.
            using var transaction = writer.BeginTransaction(deferred: false);
            using var command = writer.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "SELECT coalesce(max(version), 0) FROM schema_version";
            var current = Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
            if (current > Migrations[^1].Version)
            {
                StorageSchemaException.ThrowNewerSchema("SQLite", current, Migrations[^1].Version);
            }

            if (current >= migration.Version)
            {
                transaction.Rollback();
                continue;
            }

            command.CommandText = migration.Sql;
            command.ExecuteNonQuery();
            command.CommandText = "INSERT INTO schema_version (version, description, applied_ms) VALUES ($v, $d, $t)";
            command.Parameters.AddWithValue("$v", migration.Version);
            command.Parameters.AddWithValue("$d", migration.Description);
            command.Parameters.AddWithValue("$t", _time.GetUtcNow().ToUnixTimeMilliseconds());
            command.ExecuteNonQuery();
            transaction.Commit();
            StorageLog.SqliteMigrationApplied(_logger, migration.Version, migration.Description, _path);
        }
    }

    private void ResetWriter()
    {
        DisposeCommands();
        _writer?.Dispose();
        _writer = null;
    }

    private void DisposeCommands()
    {
        _append?.Dispose();
        _selectExisting?.Dispose();
        _append = null;
        _selectExisting = null;
    }

    private sealed record Migration(int Version, string Description, string Sql);
}
