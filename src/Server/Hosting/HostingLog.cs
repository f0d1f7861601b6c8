namespace Collab.Server.Hosting;

/// <summary>Source-generated log messages of the hosting layer (listeners, shutdown), with stable event ids (5100–5199).</summary>
internal static partial class HostingLog
{
    [LoggerMessage(5100, LogLevel.Warning, "Shutdown deadline passed with {Remaining} of {Total} connections still open; aborting them")]
    public static partial void AbortingOnShutdown(ILogger logger, int remaining, int total);

    [LoggerMessage(5110, LogLevel.Information, "Management endpoints (/healthz, /readyz, /metrics) listening on port {Port}")]
    public static partial void ManagementListening(ILogger logger, int port);

    [LoggerMessage(5111, LogLevel.Warning, "Management listener: accept failed")]
    public static partial void ManagementAcceptFailed(ILogger logger, Exception exception);

    [LoggerMessage(5112, LogLevel.Warning, "Management request failed")]
    public static partial void ManagementRequestFailed(ILogger logger, Exception exception);

    [LoggerMessage(5120, LogLevel.Information, "Quiet-time compaction: heap {HeapBeforeBytes} -> {HeapAfterBytes} bytes, GC committed {CommittedBeforeBytes} -> {CommittedAfterBytes} bytes, resident {ResidentBeforeBytes} -> {ResidentAfterCollectionBytes} -> {ResidentAfterTrimBytes} bytes (after the collection, after trimming the native heap), paused {PauseMs:F1} ms (grown {GrowthBytes} bytes since the last compaction, quiet for {QuietSeconds:F0} s)")]
    public static partial void QuietCompaction(ILogger logger, long heapBeforeBytes, long heapAfterBytes, long committedBeforeBytes, long committedAfterBytes, long residentBeforeBytes, long residentAfterCollectionBytes, long residentAfterTrimBytes, double pauseMs, long growthBytes, double quietSeconds);
}
