using System.Data;
using System.Globalization;
using System.Text;
using Collab.Engine.Sequencing;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;

namespace Collab.Server.Storage;

/// <summary>How <see cref="PostgresOpStore"/> writes a batch. Binary COPY is the production path; the others exist to measure it against.</summary>
internal enum PostgresAppendMethod
{
    /// <summary><c>COPY ops FROM STDIN (FORMAT BINARY)</c>: one streamed statement per batch.</summary>
    BinaryCopy,

    /// <summary>Multi-row <c>INSERT ... VALUES (...), (...)</c> statements of up to 1000 rows.</summary>
    MultiRowInsert,

    /// <summary>One <c>INSERT</c> round trip per op (inside the batch's transaction).</summary>
    RowByRowInsert,
}

/// <summary>
/// The PostgreSQL op store. A batch from any number of documents is written with one binary COPY inside one
/// transaction; the primary key (doc_id, version) is the fence between two writers of a document. <c>ops</c> is hash
/// partitioned on doc_id, which maps one to one onto a Citus distributed table (see docs/STORAGE.md).
/// </summary>
public sealed partial class PostgresOpStore : IOpStore, IDocumentHistory
{
    /// <summary>pg_advisory_lock key serialising migrations across nodes starting at once ("CollabMg").</summary>
    private const long MigrationLockKey = 0x436F6C6C61624D67;

    private const int MultiRowChunk = 1000;

    private const string OpColumns = "version, client_id, client_seq, author, op, ts";

    private readonly NpgsqlDataSource _dataSource;
    private readonly bool _ownsDataSource;
    private readonly int _partitions;
    private readonly int _snapshotsToKeep;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private string[]? _partitionNames;
    private string? _fullChunkInsertSql;

    /// <summary>Creates the store and its own <see cref="NpgsqlDataSource"/> from <see cref="StorageOptions.PostgresConnectionString"/>.</summary>
    public PostgresOpStore(StorageOptions options, ILogger<PostgresOpStore>? logger = null, TimeProvider? timeProvider = null)
        : this(CreateDataSource(options), ownsDataSource: true, options, logger, timeProvider)
    {
    }

    /// <summary>Creates the store over a data source the caller owns (and disposes).</summary>
    public PostgresOpStore(NpgsqlDataSource dataSource, StorageOptions options, ILogger<PostgresOpStore>? logger = null, TimeProvider? timeProvider = null)
        : this(dataSource, ownsDataSource: false, options, logger, timeProvider)
    {
    }

    private PostgresOpStore(NpgsqlDataSource dataSource, bool ownsDataSource, StorageOptions options, ILogger? logger, TimeProvider? timeProvider)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        _dataSource = dataSource;
        _ownsDataSource = ownsDataSource;
        _partitions = options.PostgresPartitions;
        _snapshotsToKeep = options.SnapshotsToKeep;
        _logger = logger ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Which write path <see cref="AppendAsync"/> uses (benchmarks compare them; production uses binary COPY).</summary>
    internal PostgresAppendMethod AppendMethod { get; init; } = PostgresAppendMethod.BinaryCopy;

    /// <summary>
    /// Cluster mode: the lease check made inside every append transaction (see <see cref="IWriteFence"/>). Null on a single
    /// node: nothing is checked and ops are stored without an epoch.
    /// </summary>
    public IWriteFence? WriteFence { get; init; }

    /// <inheritdoc />
    public async ValueTask InitializeAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);

        // A session-level advisory lock, taken before anything is created: several nodes starting against an empty
        // database would otherwise race on CREATE TABLE (even IF NOT EXISTS collides in the catalog).
        await ExecuteAsync(connection, $"SELECT pg_advisory_lock({MigrationLockKey})", cancellationToken).ConfigureAwait(false);
        try
        {
            await ExecuteAsync(connection, """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version     integer     PRIMARY KEY,
                    description text        NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now())
                """, cancellationToken).ConfigureAwait(false);

            var migrations = BuildMigrations(_partitions);
            long current;
            await using (var command = new NpgsqlCommand("SELECT coalesce(max(version), 0) FROM schema_migrations", connection))
            {
                current = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
            }

            if (current > migrations[^1].Version)
            {
                StorageSchemaException.ThrowNewerSchema("PostgreSQL", current, migrations[^1].Version);
            }

            foreach (var migration in migrations)
            {
                if (migration.Version <= current)
                {
                    continue;
                }

                await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await ExecuteAsync(connection, migration.Sql, cancellationToken).ConfigureAwait(false);
                await using (var record = new NpgsqlCommand("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)", connection))
                {
                    record.Parameters.Add(new NpgsqlParameter<int> { TypedValue = migration.Version });
                    record.Parameters.Add(new NpgsqlParameter<string> { TypedValue = migration.Description });
                    await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }

                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                StorageLog.PostgresMigrationApplied(_logger, migration.Version, migration.Description);
            }
        }
        finally
        {
            // Unlock even when cancelled: the connection goes back to the pool and must not carry the lock. If the
            // connection itself broke, its session (and with it the lock) is gone already.
            try
            {
                await ExecuteAsync(connection, $"SELECT pg_advisory_unlock({MigrationLockKey})", CancellationToken.None).ConfigureAwait(false);
            }
            catch (NpgsqlException ex)
            {
                StorageLog.MigrationUnlockFailed(_logger, ex);
            }
        }

        _partitionNames = await ReadPartitionNamesAsync(connection, cancellationToken).ConfigureAwait(false);
        if (_partitionNames.Length != _partitions)
        {
            StorageLog.PartitionCountMismatch(_logger, _partitionNames.Length, _partitions);
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

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        BatchExclusions? exclusions = null;
        var fruitlessRounds = 0;
        while (true)
        {
            try
            {
                // A batch that is one COPY and nothing else runs as that statement alone, in autocommit: the COPY is
                // atomic by itself and its CommandComplete comes back after the commit's WAL flush, so the batch costs
                // two round trips (COPY ... FROM STDIN, then the data and CopyDone) instead of three with an explicit
                // COMMIT, and the database backend and the committer wake one time fewer per batch. The lease check
                // (cluster mode), a new document's row and the INSERT methods' several statements need the transaction.
                await using var transaction = NeedsTransaction(batch, exclusions)
                    ? await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false)
                    : null;
                Dictionary<string, long>? epochs = null;
                if (WriteFence is { } fence)
                {
                    exclusions ??= new BatchExclusions();
                    epochs = await CheckLeasesAsync(connection, batch, fence, exclusions, cancellationToken).ConfigureAwait(false);
                }

                if (await WriteBatchAsync(connection, batch, exclusions, epochs, cancellationToken).ConfigureAwait(false) > 0 && transaction is not null)
                {
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                }

                return BatchExclusions.ToResult(exclusions);
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation
                                               && ex.TableName is not null && ex.TableName.StartsWith("ops", StringComparison.Ordinal))
            {
                // The transaction is rolled back (disposed above). Look up every (doc, version) of the batch that exists
                // now — not just the one in the error — fence the documents another writer got to, skip records an
                // earlier attempt of ours committed, and write the rest again.
                exclusions ??= new BatchExclusions();
                await ClassifyExistingAsync(connection, batch, exclusions, cancellationToken).ConfigureAwait(false);
                if (!exclusions.TakeProgress() && !exclusions.ExcludeDuplicatesWithinBatch(batch))
                {
                    // The clashing row is gone again (a prune removed it between the two statements): retry a few
                    // times, then let the caller's back-off take over rather than spin.
                    if (++fruitlessRounds == 3)
                    {
                        throw new InvalidOperationException("The op log keeps reporting a unique violation for a row that does not exist.", ex);
                    }

                    StorageLog.UniqueViolationRetried(_logger, ex);
                }
                else if (exclusions.Conflicted.Count > 0)
                {
                    StorageLog.OpLogConflict(_logger, exclusions.Conflicted.Count, exclusions.Conflicted[0]);
                }
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask<DocumentLoad?> LoadAsync(string docId, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateDocId(docId);
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);

        // REPEATABLE READ: the snapshot and the ops after it come from one MVCC snapshot, so a snapshot written and
        // pruned in between cannot leave a gap.
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false);
        SnapshotRecord? snapshot = null;
        await using (var command = new NpgsqlCommand("SELECT version, content, meta, ts FROM snapshots WHERE doc_id = $1 ORDER BY version DESC LIMIT 1", connection, transaction))
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                snapshot = new SnapshotRecord(
                    docId,
                    reader.GetInt64(0),
                    StorageValidation.DecodeText(reader.GetFieldValue<byte[]>(1)),
                    reader.GetFieldValue<byte[]>(2),
                    StorageValidation.ToUnixMilliseconds(reader.GetFieldValue<DateTime>(3)));
            }
        }

        var ops = await ReadOpsAsync(connection, transaction, docId, snapshot?.Version ?? 0, long.MaxValue, int.MaxValue, cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
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

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await ReadOpsAsync(connection, transaction: null, docId, afterVersion, toVersion, limit, cancellationToken).ConfigureAwait(false);
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

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("""
            SELECT count(*), coalesce(max(version) FILTER (WHERE client_seq = $5 AND client_id = $4), 0) FROM ops
            WHERE doc_id = $1 AND version > $2 AND version <= $3
            """, connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = afterVersion });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = toVersion });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = clientId });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = clientSeq });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return new OpLookup(reader.GetInt64(1), reader.GetInt64(0));
    }

    /// <inheritdoc />
    public async ValueTask<byte[]> GetOrCreateSecretAsync(string name, int length, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);

        // Two statements, not one: a data-modifying CTE cannot see a row a concurrent first caller inserted, so the insert
        // that loses the race must be followed by a read that does.
        await using (var insert = new NpgsqlCommand("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", connection))
        {
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
            insert.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = System.Security.Cryptography.RandomNumberGenerator.GetBytes(length), NpgsqlDbType = NpgsqlDbType.Bytea });
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using var select = new NpgsqlCommand("SELECT value FROM server_secrets WHERE name = $1", connection);
        select.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
        return (byte[])(await select.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <inheritdoc />
    public async ValueTask WriteSnapshotAsync(SnapshotRecord snapshot, CancellationToken cancellationToken)
    {
        StorageValidation.ValidateSnapshot(snapshot);
        var content = StorageValidation.EncodeText(snapshot.Text);
        var ts = StorageValidation.ToUtcDateTime(snapshot.TimestampMs);
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);

        // One round trip, one implicit transaction: insert unless a snapshot at least as new exists, trim to the newest
        // few (the statements of a batch see each other's rows), make sure the document row exists.
        await using var batch = new NpgsqlBatch(connection);
        var insert = new NpgsqlBatchCommand("""
            INSERT INTO snapshots (doc_id, version, content, meta, ts)
            SELECT $1, $2, $3, $4, $5
            WHERE NOT EXISTS (SELECT 1 FROM snapshots WHERE doc_id = $1 AND version >= $2)
            ON CONFLICT DO NOTHING
            """);
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = snapshot.DocId });
        insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = snapshot.Version });
        insert.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = content, NpgsqlDbType = NpgsqlDbType.Bytea });
        insert.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = StorageValidation.AsArray(snapshot.Meta), NpgsqlDbType = NpgsqlDbType.Bytea });
        insert.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = ts, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        batch.BatchCommands.Add(insert);

        if (_snapshotsToKeep > 0)
        {
            var trim = new NpgsqlBatchCommand("""
                DELETE FROM snapshots WHERE doc_id = $1 AND version <
                    (SELECT version FROM snapshots WHERE doc_id = $1 ORDER BY version DESC LIMIT 1 OFFSET $2)
                """);
            trim.Parameters.Add(new NpgsqlParameter<string> { TypedValue = snapshot.DocId });
            trim.Parameters.Add(new NpgsqlParameter<long> { TypedValue = _snapshotsToKeep - 1 });
            batch.BatchCommands.Add(trim);
        }

        var document = new NpgsqlBatchCommand("INSERT INTO documents (id, created) VALUES ($1, $2) ON CONFLICT DO NOTHING");
        document.Parameters.Add(new NpgsqlParameter<string> { TypedValue = snapshot.DocId });
        document.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = ts, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        batch.BatchCommands.Add(document);
        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<long> PruneAsync(TimeSpan retention, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retention, TimeSpan.Zero);
        var cutoff = (_time.GetUtcNow() - retention).UtcDateTime;
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        _partitionNames ??= await ReadPartitionNamesAsync(connection, cancellationToken).ConfigureAwait(false);

        // One statement per partition keeps each delete (and its locks and WAL burst) to a slice of the table.
        long removed = 0;
        foreach (var partition in _partitionNames)
        {
            await using var command = new NpgsqlCommand($"""
                DELETE FROM {partition} o
                USING (SELECT doc_id, max(version) AS version FROM snapshots GROUP BY doc_id) s
                WHERE o.doc_id = s.doc_id AND o.version <= s.version AND o.ts < $1
                """, connection);
            command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = cutoff, NpgsqlDbType = NpgsqlDbType.TimestampTz });
            removed += await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        if (removed > 0)
        {
            StorageLog.PostgresPruned(_logger, removed, retention);
        }

        return removed;
    }

    /// <summary>Disposes the data source when the store created it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_ownsDataSource)
        {
            await _dataSource.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static NpgsqlDataSource CreateDataSource(StorageOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.PostgresConnectionString))
        {
            throw new ArgumentException($"{nameof(StorageOptions.PostgresConnectionString)} is required.", nameof(options));
        }

        var builder = new NpgsqlDataSourceBuilder(options.PostgresConnectionString);
        builder.ConnectionStringBuilder.ApplicationName ??= "collab";
        return builder.Build();
    }

    private static Migration[] BuildMigrations(int partitions)
    {
        // COLLATE "C": ids compare bytewise, which is both faster for the primary keys and independent of the
        // database's locale.
        var initial = new StringBuilder("""
            CREATE TABLE documents (
                id       text COLLATE "C" PRIMARY KEY,
                created  timestamptz NOT NULL DEFAULT now(),
                metadata jsonb       NOT NULL DEFAULT '{}'::jsonb);

            CREATE TABLE ops (
                doc_id     text COLLATE "C" NOT NULL,
                version    bigint      NOT NULL,
                client_id  text COLLATE "C" NOT NULL,
                client_seq bigint      NOT NULL,
                author     text,
                op         bytea       NOT NULL,
                ts         timestamptz NOT NULL,
                PRIMARY KEY (doc_id, version)
            ) PARTITION BY HASH (doc_id);

            CREATE TABLE snapshots (
                doc_id  text COLLATE "C" NOT NULL,
                version bigint      NOT NULL,
                content bytea       NOT NULL,
                meta    bytea       NOT NULL,
                ts      timestamptz NOT NULL,
                PRIMARY KEY (doc_id, version));

            """);
        for (var i = 0; i < partitions; i++)
        {
            initial.Append(CultureInfo.InvariantCulture, $"CREATE TABLE ops_p{i:D3} PARTITION OF ops FOR VALUES WITH (MODULUS {partitions}, REMAINDER {i});\n");
        }

        // Cluster mode: one lease per document (owner node, fencing epoch, expiry on the database clock) and the epoch each
        // op was written under (NULL on a single node). Adding a nullable column is a catalog-only change.
        const string Cluster = """
            CREATE TABLE doc_leases (
                doc_id     text COLLATE "C" PRIMARY KEY,
                owner      text        NOT NULL,
                epoch      bigint      NOT NULL,
                expires_at timestamptz NOT NULL);

            ALTER TABLE ops ADD COLUMN epoch bigint;
            """;

        // Cluster mode: the token deny list, so nodes that start later still refuse revoked tokens and users.
        const string Revocations = """
            CREATE TABLE revocations (
                kind       smallint    NOT NULL,
                value      text COLLATE "C" NOT NULL,
                expires_at timestamptz NOT NULL,
                PRIMARY KEY (kind, value));
            """;

        // Secrets every node must share (the key that signs client ids), created once by whichever node comes first.
        const string Secrets = """
            CREATE TABLE server_secrets (
                name    text COLLATE "C" PRIMARY KEY,
                value   bytea       NOT NULL,
                created timestamptz NOT NULL DEFAULT now());
            """;

        // The HTTP API: a document's OT type, fixed when it is created, and its tombstone (DELETE); catalog-only changes.
        const string DocumentCatalog = """
            ALTER TABLE documents ADD COLUMN type text NOT NULL DEFAULT 'text-unicode', ADD COLUMN deleted_at timestamptz;
            """;

        return
        [
            new Migration(1, $"op log ({partitions} hash partitions), documents and snapshots", initial.ToString()),
            new Migration(2, "cluster: document leases and the writer epoch of each op", Cluster),
            new Migration(3, "cluster: revoked token ids and users", Revocations),
            new Migration(4, "server secrets", Secrets),
            new Migration(5, "document type and tombstone", DocumentCatalog),
        ];
    }

    private static async Task<string[]> ReadPartitionNamesAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var names = new List<string>();
        await using var command = new NpgsqlCommand(
            "SELECT quote_ident(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'ops'::regclass ORDER BY c.relname",
            connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            names.Add(reader.GetString(0));
        }

        return names.Count == 0 ? ["ops"] : [.. names];
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static bool Skip(in OpRecord record, BatchExclusions? exclusions) => exclusions is not null && exclusions.Skip(record);

    /// <summary>
    /// Whether the batch needs an explicit transaction around its statements: in cluster mode (the lease check and the
    /// COPY must be one transaction), when it creates a document (its row and its first op commit together), and for the
    /// INSERT methods (up to one statement per chunk or row).
    /// </summary>
    private bool NeedsTransaction(IReadOnlyList<OpRecord> batch, BatchExclusions? exclusions)
    {
        if (WriteFence is not null || AppendMethod != PostgresAppendMethod.BinaryCopy)
        {
            return true;
        }

        for (var i = 0; i < batch.Count; i++)
        {
            if (batch[i].Version == 1 && !Skip(batch[i], exclusions))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Writes the batch minus skipped records inside the open transaction; returns the rows written.</summary>
    private async Task<int> WriteBatchAsync(
        NpgsqlConnection connection,
        IReadOnlyList<OpRecord> batch,
        BatchExclusions? exclusions,
        Dictionary<string, long>? epochs,
        CancellationToken cancellationToken)
    {
        // First ops create their document rows; the rest of the batch never touches documents.
        List<string>? newDocs = null;
        var rows = 0;
        for (var i = 0; i < batch.Count; i++)
        {
            var record = batch[i];
            if (Skip(record, exclusions))
            {
                continue;
            }

            rows++;
            if (record.Version == 1)
            {
                (newDocs ??= []).Add(record.DocId);
            }
        }

        if (rows == 0)
        {
            return 0;
        }

        if (newDocs is not null)
        {
            await using var command = new NpgsqlCommand("INSERT INTO documents (id, created) SELECT unnest($1::text[]), now() ON CONFLICT DO NOTHING", connection);
            command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. newDocs] });
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        switch (AppendMethod)
        {
            case PostgresAppendMethod.BinaryCopy:
                await CopyAsync(connection, batch, exclusions, epochs, cancellationToken).ConfigureAwait(false);
                break;
            case PostgresAppendMethod.MultiRowInsert:
                await MultiRowInsertAsync(connection, batch, exclusions, epochs, cancellationToken).ConfigureAwait(false);
                break;
            default:
                await RowByRowInsertAsync(connection, batch, exclusions, epochs, cancellationToken).ConfigureAwait(false);
                break;
        }

        return rows;
    }

    private static async Task CopyAsync(
        NpgsqlConnection connection,
        IReadOnlyList<OpRecord> batch,
        BatchExclusions? exclusions,
        Dictionary<string, long>? epochs,
        CancellationToken cancellationToken)
    {
        // Raw binary COPY with rows encoded by PgCopyWriter: one streamed statement, a few span writes per row.
        // Disposing the stream ends the COPY; a unique violation surfaces there as a PostgresException.
        var stream = await connection.BeginRawBinaryCopyAsync(PgCopyWriter.OpsCopyCommand, cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var writer = new PgCopyWriter(stream);
            for (var i = 0; i < batch.Count; i++)
            {
                var record = batch[i];
                if (!Skip(record, exclusions))
                {
                    await writer.WriteOpAsync(record, EpochOf(record, epochs), cancellationToken).ConfigureAwait(false);
                }
            }

            await writer.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task MultiRowInsertAsync(
        NpgsqlConnection connection,
        IReadOnlyList<OpRecord> batch,
        BatchExclusions? exclusions,
        Dictionary<string, long>? epochs,
        CancellationToken cancellationToken)
    {
        var chunk = new List<OpRecord>(MultiRowChunk);
        for (var i = 0; i < batch.Count; i++)
        {
            if (Skip(batch[i], exclusions))
            {
                continue;
            }

            chunk.Add(batch[i]);
            if (chunk.Count == MultiRowChunk)
            {
                await InsertChunkAsync(connection, chunk, epochs, cancellationToken).ConfigureAwait(false);
                chunk.Clear();
            }
        }

        if (chunk.Count > 0)
        {
            await InsertChunkAsync(connection, chunk, epochs, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task InsertChunkAsync(NpgsqlConnection connection, List<OpRecord> chunk, Dictionary<string, long>? epochs, CancellationToken cancellationToken)
    {
        string sql;
        if (chunk.Count == MultiRowChunk)
        {
            sql = _fullChunkInsertSql ??= BuildMultiRowInsert(MultiRowChunk);
        }
        else
        {
            sql = BuildMultiRowInsert(chunk.Count);
        }

        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var record in chunk)
        {
            AddOpParameters(command.Parameters, record, EpochOf(record, epochs));
        }

        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task RowByRowInsertAsync(
        NpgsqlConnection connection,
        IReadOnlyList<OpRecord> batch,
        BatchExclusions? exclusions,
        Dictionary<string, long>? epochs,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(BuildMultiRowInsert(1), connection);
        for (var i = 0; i < batch.Count; i++)
        {
            if (Skip(batch[i], exclusions))
            {
                continue;
            }

            command.Parameters.Clear();
            AddOpParameters(command.Parameters, batch[i], EpochOf(batch[i], epochs));
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private static string BuildMultiRowInsert(int rows)
    {
        var sql = new StringBuilder("INSERT INTO ops (doc_id, version, client_id, client_seq, author, op, ts, epoch) VALUES ", 64 + (rows * 56));
        for (var r = 0; r < rows; r++)
        {
            var p = (r * 8) + 1;
            sql.Append(r == 0 ? "(" : ",(")
                .Append(CultureInfo.InvariantCulture, $"${p},${p + 1},${p + 2},${p + 3},${p + 4},${p + 5},${p + 6},${p + 7})");
        }

        return sql.ToString();
    }

    private static void AddOpParameters(NpgsqlParameterCollection parameters, in OpRecord record, long? epoch)
    {
        parameters.Add(new NpgsqlParameter<string> { TypedValue = record.DocId });
        parameters.Add(new NpgsqlParameter<long> { TypedValue = record.Version });
        parameters.Add(new NpgsqlParameter<string> { TypedValue = record.ClientId });
        parameters.Add(new NpgsqlParameter<long> { TypedValue = record.ClientSeq });
        parameters.Add(new NpgsqlParameter { Value = (object?)record.Author ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>> { TypedValue = record.Op, NpgsqlDbType = NpgsqlDbType.Bytea });
        parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = StorageValidation.ToUtcDateTime(record.TimestampMs), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        parameters.Add(new NpgsqlParameter { Value = epoch is { } e ? e : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
    }

    private static long? EpochOf(in OpRecord record, Dictionary<string, long>? epochs) =>
        epochs is not null && epochs.TryGetValue(record.DocId, out var epoch) ? epoch : null;

    /// <summary>
    /// The write fence (cluster mode), run first in the append transaction: bounds the transaction's duration, locks the
    /// batch's lease rows FOR KEY SHARE and leaves out every document whose lease is not this node's live lease of the
    /// expected epoch. Returns the epoch to store with each remaining document's ops. A rival's acquisition locks the row
    /// FOR UPDATE, which waits until this transaction ends (so it loads every op written here); this node's own renewals
    /// only update a non-key column and do not wait for its writes (a FOR SHARE lock here would starve them).
    /// </summary>
    private static async Task<Dictionary<string, long>> CheckLeasesAsync(
        NpgsqlConnection connection,
        IReadOnlyList<OpRecord> batch,
        IWriteFence fence,
        BatchExclusions exclusions,
        CancellationToken cancellationToken)
    {
        var expected = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var i = 0; i < batch.Count; i++)
        {
            var docId = batch[i].DocId;
            if (exclusions.IsExcluded(docId) || expected.ContainsKey(docId))
            {
                continue;
            }

            if (fence.TryGetEpoch(docId, out var epoch))
            {
                expected.Add(docId, epoch);
            }
            else
            {
                exclusions.ExcludeFenced(docId);
            }
        }

        if (expected.Count == 0)
        {
            return expected;
        }

        var timeoutMs = Math.Max(1, (long)fence.WriteTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        await using var command = new NpgsqlBatch(connection);
        command.BatchCommands.Add(new NpgsqlBatchCommand($"SET LOCAL statement_timeout = {timeoutMs}"));
        command.BatchCommands.Add(new NpgsqlBatchCommand($"SET LOCAL idle_in_transaction_session_timeout = {timeoutMs}"));
        var select = new NpgsqlBatchCommand(
            "SELECT doc_id, owner, epoch, expires_at > clock_timestamp() FROM doc_leases WHERE doc_id = ANY($1) FOR KEY SHARE");
        select.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. expected.Keys] });
        command.BatchCommands.Add(select);

        var valid = new HashSet<string>(StringComparer.Ordinal);
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            // The two SETs return no rows; the lease rows come in the last result set.
            while (reader.FieldCount != 4 && await reader.NextResultAsync(cancellationToken).ConfigureAwait(false))
            {
            }

            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var docId = reader.GetString(0);
                if (string.Equals(reader.GetString(1), fence.NodeId, StringComparison.Ordinal)
                    && expected.TryGetValue(docId, out var epoch) && reader.GetInt64(2) == epoch && reader.GetBoolean(3))
                {
                    valid.Add(docId);
                }
            }
        }

        foreach (var docId in expected.Keys)
        {
            if (!valid.Contains(docId))
            {
                exclusions.ExcludeFenced(docId);
                expected.Remove(docId);
            }
        }

        return expected;
    }

    /// <summary>
    /// Reads the batch's (doc, version) pairs that exist now. A document with any record owned by another writer
    /// (different client id / seq) is conflicted and left out entirely; records identical to ours were committed by an
    /// earlier attempt whose acknowledgement was lost, and are skipped.
    /// </summary>
    private static async Task ClassifyExistingAsync(NpgsqlConnection connection, IReadOnlyList<OpRecord> batch, BatchExclusions exclusions, CancellationToken cancellationToken)
    {
        var docs = new List<string>(batch.Count);
        var versions = new List<long>(batch.Count);
        for (var i = 0; i < batch.Count; i++)
        {
            if (exclusions.IsExcluded(batch[i].DocId))
            {
                continue;
            }

            docs.Add(batch[i].DocId);
            versions.Add(batch[i].Version);
        }

        var existing = new Dictionary<(string DocId, long Version), (string ClientId, long ClientSeq)>();
        await using (var command = new NpgsqlCommand("""
            SELECT o.doc_id, o.version, o.client_id, o.client_seq
            FROM unnest($1::text[], $2::bigint[]) AS b(doc_id, version)
            JOIN ops o ON o.doc_id = b.doc_id AND o.version = b.version
            """, connection))
        {
            command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. docs] });
            command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. versions] });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                existing[(reader.GetString(0), reader.GetInt64(1))] = (reader.GetString(2), reader.GetInt64(3));
            }
        }

        for (var i = 0; i < batch.Count; i++)
        {
            var record = batch[i];
            if (existing.TryGetValue((record.DocId, record.Version), out var owner))
            {
                exclusions.ObserveExisting(record, owner.ClientId, owner.ClientSeq);
            }
        }
    }

    private static async Task<List<OpRecord>> ReadOpsAsync(
        NpgsqlConnection connection,
        NpgsqlTransaction? transaction,
        string docId,
        long afterVersion,
        long toVersion,
        int limit,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT {OpColumns} FROM ops WHERE doc_id = $1 AND version > $2 AND version <= $3 ORDER BY version LIMIT $4",
            connection,
            transaction);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = docId });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = afterVersion });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = toVersion });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = limit });
        var ops = new List<OpRecord>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            ops.Add(new OpRecord(
                docId,
                reader.GetInt64(0),
                reader.GetString(1),
                reader.GetInt64(2),
                reader.IsDBNull(3) ? null : reader.GetString(3),
                reader.GetFieldValue<byte[]>(4),
                StorageValidation.ToUnixMilliseconds(reader.GetFieldValue<DateTime>(5))));
        }

        return ops;
    }

    private sealed record Migration(int Version, string Description, string Sql);
}
