namespace Collab.Server.Storage;

/// <summary>
/// Source-generated log messages of the storage layer, with stable event ids (1100–1199: retention 1100–1103 in
/// <see cref="RetentionService"/>, the group commit 1110–1119, the op stores 1120–1139).
/// </summary>
internal static partial class StorageLog
{
    [LoggerMessage(1110, LogLevel.Critical, "The group-commit loop failed")]
    public static partial void CommitLoopFailed(ILogger logger, Exception exception);

    [LoggerMessage(1111, LogLevel.Warning, "Commit of {Ops} ops failed (attempt {Attempt}); retrying in {Delay}")]
    public static partial void CommitRetrying(ILogger logger, int ops, int attempt, TimeSpan delay, Exception exception);

    [LoggerMessage(1112, LogLevel.Error, "Commit of {Ops} ops failed with an unexpected error (attempt {Attempt}); retrying in {Delay}")]
    public static partial void CommitFailedUnexpectedly(ILogger logger, int ops, int attempt, TimeSpan delay, Exception exception);

    [LoggerMessage(1113, LogLevel.Warning, "Version conflict: {Count} document(s) fenced, first '{DocId}'")]
    public static partial void DocumentsFenced(ILogger logger, int count, string docId);

    [LoggerMessage(1114, LogLevel.Information, "Op store commits succeed again")]
    public static partial void CommitsRecovered(ILogger logger);

    [LoggerMessage(1115, LogLevel.Error, "Op store commits are failing; ops stay pending and are retried")]
    public static partial void CommitsFailing(ILogger logger, Exception? exception);

    [LoggerMessage(1116, LogLevel.Error, "A storage health handler threw")]
    public static partial void HealthHandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(1120, LogLevel.Information, "Applied PostgreSQL migration {Version} ({Description})")]
    public static partial void PostgresMigrationApplied(ILogger logger, int version, string description);

    [LoggerMessage(1121, LogLevel.Debug, "Releasing the migration lock failed; the session holding it has ended")]
    public static partial void MigrationUnlockFailed(ILogger logger, Exception exception);

    [LoggerMessage(1122, LogLevel.Warning, "The ops table has {Existing} hash partitions, not the configured {Configured}; the partition count is fixed when the schema is created")]
    public static partial void PartitionCountMismatch(ILogger logger, int existing, int configured);

    [LoggerMessage(1123, LogLevel.Debug, "Unique violation on the op log with no clashing row left; retrying the batch")]
    public static partial void UniqueViolationRetried(ILogger logger, Exception exception);

    [LoggerMessage(1124, LogLevel.Warning, "Version conflict in the op log: {Count} document(s) fenced, first '{DocId}'")]
    public static partial void OpLogConflict(ILogger logger, int count, string docId);

    [LoggerMessage(1125, LogLevel.Information, "Pruned {Removed} ops older than {Retention} covered by snapshots")]
    public static partial void PostgresPruned(ILogger logger, long removed, TimeSpan retention);

    [LoggerMessage(1130, LogLevel.Information, "Applied SQLite migration {Version} ({Description}) to {Path}")]
    public static partial void SqliteMigrationApplied(ILogger logger, int version, string description, string path);

    [LoggerMessage(1131, LogLevel.Information, "Pruned {Removed} ops older than {Retention} covered by snapshots from {Path}")]
    public static partial void SqlitePruned(ILogger logger, long removed, TimeSpan retention, string path);

    [LoggerMessage(1132, LogLevel.Warning, "SQLite WAL checkpoint failed; retrying in {Interval}")]
    public static partial void CheckpointFailed(ILogger logger, TimeSpan interval, Exception exception);

    [LoggerMessage(1133, LogLevel.Warning, "SQLite WAL restart checkpoint failed; the log keeps growing until the next one")]
    public static partial void RestartCheckpointFailed(ILogger logger, Exception exception);
}
