using Microsoft.Extensions.Options;

namespace Collab.Server.Storage;

/// <summary>Which op store backs the server.</summary>
public enum StorageProvider
{
    /// <summary>Embedded SQLite file under <see cref="StorageOptions.DataDirectory"/>: the single-node default.</summary>
    Sqlite,

    /// <summary>PostgreSQL (one database, or Citus for more than one machine).</summary>
    Postgres,
}

/// <summary>SQLite's <c>synchronous</c> setting for op commits (WAL mode); see <see cref="StorageOptions.SqliteSynchronous"/>.</summary>
public enum SqliteSyncMode
{
    /// <summary>Every commit fsyncs the write-ahead log: durable against power loss.</summary>
    Full,

    /// <summary>Commits are not fsynced (checkpoints are): durable against a process crash, not against power loss.</summary>
    Normal,
}

/// <summary>Storage configuration: which store, where it lives, and how the group-commit stage batches and retries.</summary>
public sealed class StorageOptions
{
    /// <summary>Configuration section name (<c>Storage</c>).</summary>
    public const string Section = "Storage";

    /// <summary>The op store to use. Default <see cref="StorageProvider.Sqlite"/>.</summary>
    public StorageProvider Provider { get; set; } = StorageProvider.Sqlite;

    /// <summary>Directory of the embedded database file. Default <c>./data</c>.</summary>
    public string DataDirectory { get; set; } = "./data";

    /// <summary>File name of the embedded database inside <see cref="DataDirectory"/>. Default <c>collab.db</c>.</summary>
    public string SqliteFileName { get; set; } = "collab.db";

    /// <summary>
    /// How long a SQLite statement waits for a lock held by another connection or process before it fails
    /// (the group-commit stage then retries the batch). Default 5 s.
    /// </summary>
    public TimeSpan SqliteBusyTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// When a SQLite commit counts as durable. <see cref="SqliteSyncMode.Full"/> (default): every commit fsyncs the
    /// write-ahead log, so an acknowledged op survives power loss and OS crashes. <see cref="SqliteSyncMode.Normal"/>:
    /// commits reach the OS without an fsync (the log is fsynced at checkpoints), so an acknowledged op survives a crash
    /// or kill of the server process but the last moments of acks can be lost to power loss; it takes the fsync
    /// (0.27 ms on the reference machine) out of every ack.
    /// </summary>
    public SqliteSyncMode SqliteSynchronous { get; set; } = SqliteSyncMode.Full;

    /// <summary>
    /// A background thread copies the SQLite write-ahead log into the database file (a PASSIVE checkpoint, which never
    /// blocks commits) after every 10,000 committed ops, and at least this often while anything is committed. 0 =
    /// SQLite's own automatic checkpoint inside the commit that passes 1,000 pages, which stalls that commit and every
    /// ack behind it. Default 1 s.
    /// </summary>
    public TimeSpan SqliteCheckpointInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// When the write-ahead log has grown past this size, the background checkpoint briefly holds commits off to copy
    /// the rest and rewind the log, so the WAL file stays bounded under a steady load. Default 64 MiB.
    /// </summary>
    public long SqliteWalRestartBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Npgsql connection string; required when <see cref="Provider"/> is <see cref="StorageProvider.Postgres"/>.</summary>
    public string? PostgresConnectionString { get; set; }

    /// <summary>
    /// Number of hash partitions of the <c>ops</c> table, fixed when the schema is first created
    /// (changing it later requires repartitioning). Default 16.
    /// </summary>
    public int PostgresPartitions { get; set; } = 16;

    /// <summary>A batch closes when it holds this many ops. Default 4096.</summary>
    public int MaxBatchOps { get; set; } = 4096;

    /// <summary>
    /// Under load, a batch closes this long after its oldest op was queued, even if not full (see
    /// <see cref="BatchDelayMinOps"/> for what counts as load). Waiting turns many small commits into fewer large ones,
    /// and, more importantly for the server's CPU, lets each document's ops of one batch reach each subscriber as one
    /// frame in one socket write instead of one write per op: at 20,000 ops/s in 200 small rooms, 10 ms took the
    /// server from collapsing (17,300 acked, p99 4.9 s) to keeping up (20,000 acked, p99 0.14 s). Default 5 ms.
    /// </summary>
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// <see cref="MaxBatchDelay"/> applies only while the previous batch held at least this many ops (PostgreSQL's
    /// <c>commit_siblings</c> idea): at light load a batch commits as soon as the previous commit is done, so an ack
    /// waits for one fsync and no timer (at 1,000 ops/s a 1 ms delay took ack p50 from 0.6 ms to 3.1 ms). 0 = always
    /// wait. Default 32.
    /// </summary>
    public int BatchDelayMinOps { get; set; } = 32;

    /// <summary>
    /// The document host writes a snapshot after this many ops since the last one, plus a fixed per-document spread
    /// of up to half as many again (so documents under the same load do not all snapshot at once). Default 1000.
    /// </summary>
    public int SnapshotEveryOps { get; set; } = 1000;

    /// <summary>
    /// Snapshots kept per document (the newest ones); 0 (default) keeps every snapshot. The stored snapshots are what make
    /// reading a past version cheap (the HTTP API's <c>?version=</c> replays at most <c>Api:MaxReplayOps</c> ops from the
    /// nearest older one), so a limit here makes older versions unreadable once they are further than that from a kept
    /// snapshot.
    /// </summary>
    public int SnapshotsToKeep { get; set; }

    /// <summary>
    /// Ops older than this that are covered by a snapshot are pruned from the op log. Unset (default): every op is kept
    /// forever. Versions before the oldest op still held can then only be read where a snapshot is (the API answers 410
    /// with the earliest available version for the others).
    /// </summary>
    public TimeSpan? OpRetention { get; set; }

    /// <summary>How often the retention service prunes the op log and purges deleted documents. Default 1 hour.</summary>
    public TimeSpan PruneInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// A deleted document (HTTP API <c>DELETE</c>: a tombstone) keeps its data this long, then the retention service
    /// removes its ops, snapshots and catalogue row and the id can be created again. Default 30 days.
    /// </summary>
    public TimeSpan DeletedDocumentRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>
    /// Npgsql connection string of a PostgreSQL streaming replica (hot standby) of the op store. When set, the HTTP API
    /// reads explicit past versions (<c>?version=</c>, <c>?at=</c>) there when the replica has applied them, and from the
    /// primary otherwise; the live head and everything else always come from the primary. PostgreSQL store only.
    /// </summary>
    public string? ReadReplicaConnectionString { get; set; }

    /// <summary>First back-off after a failed commit; doubles per attempt (with jitter) up to <see cref="RetryMaxDelay"/>. Default 50 ms.</summary>
    public TimeSpan RetryInitialDelay { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Cap of the commit retry back-off. Default 5 s.</summary>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long disposing the group-commit stage keeps trying to flush queued ops before cancelling them. Default 10 s.</summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The SQLite database path: <see cref="DataDirectory"/>/<see cref="SqliteFileName"/>.</summary>
    public string SqlitePath => Path.Combine(DataDirectory, SqliteFileName);

    /// <summary>Checks every setting and throws one <see cref="OptionsValidationException"/> listing all problems.</summary>
    public void Validate()
    {
        var errors = new SettingErrors(Section, typeof(StorageOptions));
        if (!Enum.IsDefined(Provider))
        {
            errors.Add(nameof(Provider), $"'{Provider}' is not a known storage provider.");
        }

        if (Provider == StorageProvider.Sqlite)
        {
            if (string.IsNullOrWhiteSpace(DataDirectory))
            {
                errors.Add(nameof(DataDirectory), "is required for the SQLite store.");
            }

            if (string.IsNullOrWhiteSpace(SqliteFileName) || SqliteFileName.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
            {
                errors.Add(nameof(SqliteFileName), $"'{SqliteFileName}' is not a valid file name.");
            }
        }

        if (Provider == StorageProvider.Postgres && string.IsNullOrWhiteSpace(PostgresConnectionString))
        {
            errors.Add(nameof(PostgresConnectionString), "is required for the PostgreSQL store.");
        }
        else if (!string.IsNullOrWhiteSpace(PostgresConnectionString))
        {
            try
            {
                _ = new Npgsql.NpgsqlConnectionStringBuilder(PostgresConnectionString);
            }
            catch (ArgumentException ex)
            {
                // Npgsql's message names the keyword or position, never the value (which may hold a password).
                errors.Add(nameof(PostgresConnectionString), "is not a valid connection string: " + ex.Message);
            }
        }

        if (PostgresPartitions is < 1 or > 1024)
        {
            errors.Add(nameof(PostgresPartitions), $"must be between 1 and 1024 (was {PostgresPartitions}).");
        }

        if (MaxBatchOps is < 1 or > 1_000_000)
        {
            errors.Add(nameof(MaxBatchOps), $"must be between 1 and 1,000,000 (was {MaxBatchOps}).");
        }

        if (MaxBatchDelay < TimeSpan.Zero || MaxBatchDelay > TimeSpan.FromSeconds(1))
        {
            errors.Add(nameof(MaxBatchDelay), $"must be between 0 and 1 s (was {MaxBatchDelay}).");
        }

        if (BatchDelayMinOps < 0)
        {
            errors.Add(nameof(BatchDelayMinOps), $"must not be negative (was {BatchDelayMinOps}).");
        }

        if (SnapshotEveryOps < 1)
        {
            errors.Add(nameof(SnapshotEveryOps), $"must be positive (was {SnapshotEveryOps}).");
        }

        if (SnapshotsToKeep < 0)
        {
            errors.Add(nameof(SnapshotsToKeep), $"must be 0 (keep all) or positive (was {SnapshotsToKeep}).");
        }

        if (OpRetention < TimeSpan.Zero)
        {
            errors.Add(nameof(OpRetention), $"must not be negative (was {OpRetention}).");
        }

        if (DeletedDocumentRetention < TimeSpan.Zero)
        {
            errors.Add(nameof(DeletedDocumentRetention), $"must not be negative (was {DeletedDocumentRetention}).");
        }

        if (!string.IsNullOrWhiteSpace(ReadReplicaConnectionString) && Provider != StorageProvider.Postgres)
        {
            errors.Add(nameof(ReadReplicaConnectionString), $"needs the PostgreSQL store (Provider=Postgres).");
        }

        if (PruneInterval <= TimeSpan.Zero)
        {
            errors.Add(nameof(PruneInterval), $"must be positive (was {PruneInterval}).");
        }

        if (RetryInitialDelay <= TimeSpan.Zero)
        {
            errors.Add(nameof(RetryInitialDelay), $"must be positive (was {RetryInitialDelay}).");
        }

        if (RetryMaxDelay < RetryInitialDelay)
        {
            errors.Add(nameof(RetryMaxDelay), $"must be at least {nameof(RetryInitialDelay)} (was {RetryMaxDelay}).");
        }

        if (ShutdownTimeout < TimeSpan.Zero)
        {
            errors.Add(nameof(ShutdownTimeout), $"must not be negative (was {ShutdownTimeout}).");
        }

        if (SqliteBusyTimeout < TimeSpan.Zero)
        {
            errors.Add(nameof(SqliteBusyTimeout), $"must not be negative (was {SqliteBusyTimeout}).");
        }

        if (SqliteCheckpointInterval < TimeSpan.Zero || SqliteCheckpointInterval > TimeSpan.FromMinutes(1))
        {
            errors.Add(nameof(SqliteCheckpointInterval), $"must be between 0 and 1 minute (was {SqliteCheckpointInterval}).");
        }

        if (SqliteWalRestartBytes < 64 * 1024)
        {
            errors.Add(nameof(SqliteWalRestartBytes), $"must be at least 64 KiB (was {SqliteWalRestartBytes}).");
        }

        errors.ThrowIfAny();
    }

    /// <summary>
    /// At light load (the stage idle: no batch committing or completing, nothing queued, no batch delay due) the thread
    /// that hands the stage an op commits it itself, synchronously, and completes it before returning, instead of waking
    /// the commit loop and the completion loop (and the sequencer's worker a second time): three thread wake-ups fewer per
    /// op. Ops arriving meanwhile queue and form the next batch as usual, so batching under load is unchanged. SQLite only
    /// (its commit is synchronous); PostgreSQL keeps its commit loops. Default true.
    /// </summary>
    public bool InlineCommits { get; set; } = true;
}
