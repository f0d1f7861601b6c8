namespace Collab.Server.Storage;

/// <summary>
/// Housekeeping once per <see cref="StorageOptions.PruneInterval"/>: prunes ops older than
/// <see cref="StorageOptions.OpRetention"/> that a snapshot already covers (only when a retention is set: by default every
/// op is kept), and purges documents deleted more than <see cref="StorageOptions.DeletedDocumentRetention"/> ago. History
/// reads for resuming clients keep working inside the retention; older clients resync from a snapshot.
/// </summary>
internal sealed partial class RetentionService(IOpStore store, StorageOptions options, ILogger<RetentionService> logger, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.PruneInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            await RunOnceAsync(stoppingToken).ConfigureAwait(false);
        }
    }

    /// <summary>One round of housekeeping (internal: tests run it directly). Failures are logged and retried next round.</summary>
    internal async Task RunOnceAsync(CancellationToken cancellationToken)
    {
        if (options.OpRetention is { } retention)
        {
            try
            {
                long removed = await store.PruneAsync(retention, cancellationToken).ConfigureAwait(false);
                RetentionMetrics.PrunedOps.Inc(removed);
                LogPruned(removed, retention);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Pruning is housekeeping: a failure (database down) is retried at the next tick.
                LogPruneFailed(ex);
            }
        }

        if (store is IDocumentHistory history)
        {
            try
            {
                long cutoff = (time.GetUtcNow() - options.DeletedDocumentRetention).ToUnixTimeMilliseconds();
                int purged = await history.PurgeDeletedAsync(cutoff, cancellationToken).ConfigureAwait(false);
                RetentionMetrics.PurgedDocuments.Inc(purged);
                if (purged > 0)
                {
                    LogPurged(purged, options.DeletedDocumentRetention);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogPurgeFailed(ex);
            }
        }
    }

    [LoggerMessage(1100, LogLevel.Information, "Retention removed {Removed} ops older than {Retention} covered by snapshots")]
    private partial void LogPruned(long removed, TimeSpan retention);

    [LoggerMessage(1101, LogLevel.Warning, "Retention pruning failed; retrying at the next interval")]
    private partial void LogPruneFailed(Exception exception);

    [LoggerMessage(1102, LogLevel.Information, "Retention removed the data of {Purged} documents deleted more than {Retention} ago")]
    private partial void LogPurged(int purged, TimeSpan retention);

    [LoggerMessage(1103, LogLevel.Warning, "Purging deleted documents failed; retrying at the next interval")]
    private partial void LogPurgeFailed(Exception exception);
}
