namespace Collab.Server.Hosting;

/// <summary>
/// The thread pool's floor for a server process. The embedded store's commit (SQLite, fsync included: 0.1 ms to tens of
/// milliseconds on a busy disk) runs synchronously on the group-commit loop, which holds a pool thread while it does,
/// and so do the store's history reads. On a server given one or two cores the pool's minimum is one or two workers, so
/// while a commit blocks one of them, the other work items (a document's sequencer turn, a connection's drain, a socket
/// read) queue behind it until the pool injects another thread: measured at 1,000 ops/s with an fsync per commit, the
/// `sequence` stage's p99 (received → sequenced) was 1.5–4.8 ms with the default minimum and 0.15 ms with four workers
/// (docs/PERFORMANCE.md, "Where the tail at light load comes from").
/// </summary>
internal static class ThreadPoolDefaults
{
    /// <summary>Workers the pool keeps ready without waiting for its starvation heuristic.</summary>
    internal const int MinWorkerThreads = 4;

    /// <summary>Raises the pool's minimum worker count to <see cref="MinWorkerThreads"/>; never lowers a larger one (many cores, or a runtimeconfig/environment setting).</summary>
    public static void Apply()
    {
        ThreadPool.GetMinThreads(out int workers, out int completionPorts);
        if (workers < MinWorkerThreads)
        {
            ThreadPool.SetMinThreads(MinWorkerThreads, completionPorts);
        }
    }
}
