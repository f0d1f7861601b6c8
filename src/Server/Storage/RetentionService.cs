using Prometheus;

namespace Collab.Server.Storage;

/// <summary>
/// Prunes the op log once per <see cref="StorageOptions.PruneInterval"/>: ops older than
/// <see cref="StorageOptions.OpRetention"/> that a snapshot already covers. History reads for resuming
/// clients keep working inside the retention; older clients resync from a snapshot.
/// </summary>
internal sealed partial class RetentionService(IOpStore store, StorageOptions options, ILogger<RetentionService> logger) : BackgroundService
{
    private static readonly Counter s_pruned = Metrics.CreateCounter("collab_storage_pruned_ops_total", "Ops removed from the op log by retention.");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.PruneInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                long removed = await store.PruneAsync(options.OpRetention, stoppingToken).ConfigureAwait(false);
                s_pruned.Inc(removed);
                LogPruned(removed, options.OpRetention);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Pruning is housekeeping: a failure (database down) is retried at the next tick.
                LogPruneFailed(ex);
            }
        }
    }

    [LoggerMessage(1100, LogLevel.Information, "Retention removed {Removed} ops older than {Retention} covered by snapshots")]
    private partial void LogPruned(long removed, TimeSpan retention);

    [LoggerMessage(1101, LogLevel.Warning, "Retention pruning failed; retrying at the next interval")]
    private partial void LogPruneFailed(Exception exception);
}
