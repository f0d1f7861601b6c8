using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Storage;
using Prometheus;

namespace Collab.Server.Hosting;

/// <summary>
/// What prometheus-net's default registry publishes besides our own collab_* metrics: its built-in series, except
/// sources that are too hot or whose cost grows with the connection count.
/// <list type="bullet">
/// <item>The process_* and dotnet_* series come from <see cref="ProcessCollector"/>, under the same names and help
/// texts as prometheus-net's own process collector. That one reads <see cref="Process.HandleCount"/>, which on
/// Linux is <c>Directory.GetFiles("/proc/&lt;pid&gt;/fd").Length</c>: one path string per open socket plus string
/// arrays on the large object heap, every scrape. At 19,000 connections that was about 1.8 MB of garbage per scrape
/// (2.5 MB/s at a 1 s scrape interval); the large arrays are only reclaimed by full collections, so an idle
/// server's resident memory crept up by tens of megabytes between them. Here descriptors and threads are counted
/// with a non-allocating directory walk.</item>
/// <item>Some .NET meters are not republished (<see cref="IsPublished"/>).</item>
/// </list>
/// </summary>
internal static partial class MetricsDefaults
{
    /// <summary>The meter Kestrel reports its connection metrics on.</summary>
    internal const string KestrelMeterName = "Microsoft.AspNetCore.Server.Kestrel";

    private static int s_applied;

    /// <summary>
    /// Configures the default registry, once per process. Call before the registry is first collected (prometheus-net
    /// applies its default-metrics settings then); the server's composition root and the /metrics endpoint both do,
    /// and later calls change nothing.
    /// </summary>
    public static void Apply()
    {
        if (Interlocked.Exchange(ref s_applied, 1) != 0)
        {
            return;
        }

        // The event-counter adapter and prometheus-net's own debug series stay as they were.
        Metrics.ConfigureMeterAdapter(static options => options.InstrumentFilterPredicate = IsPublished);
        Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions
        {
            SuppressProcessMetrics = true,
            SuppressDebugMetrics = false,
            SuppressEventCounters = false,
            SuppressMeters = false,
        });
        var collector = new ProcessCollector(Metrics.DefaultRegistry);
        Metrics.DefaultRegistry.AddBeforeCollectCallback(collector.Update);

        // Every collab_* series a node exports exists from start-up rather than from its first use (the first session,
        // the first prune an hour later). Prometheus sees no increase() in a series that first appears non-zero, so the
        // first document loads or token failures after a start would be missing from rates, the dashboard and the
        // alerts (deploy/prometheus; tests/Integration/Deploy). The collab_cluster_* series stay for cluster mode to
        // create: on a single node they would read as a NATS connection that is down.
        // (StorageMetrics is created with the group-commit stage, at start-up too.)
        RuntimeHelpers.RunClassConstructor(typeof(Transport.TransportMetrics).TypeHandle);
        RuntimeHelpers.RunClassConstructor(typeof(SessionMetrics).TypeHandle);
        RuntimeHelpers.RunClassConstructor(typeof(LatencyMetrics).TypeHandle);
        RuntimeHelpers.RunClassConstructor(typeof(SecurityMetrics).TypeHandle);
        RuntimeHelpers.RunClassConstructor(typeof(RetentionMetrics).TypeHandle);
        RuntimeHelpers.RunClassConstructor(typeof(Api.ApiMetrics).TypeHandle);
    }

    /// <summary>
    /// Whether the meter adapter republishes an instrument. Not:
    /// <list type="bullet">
    /// <item>Kestrel's memory-pool meter: it records a measurement on every buffer rent and return, i.e. several per
    /// socket write; republished through the adapter (a dictionary lookup and a lock per measurement) it cost 8 % of
    /// the server's CPU in the small-rooms profile, for a figure our own transport metrics already give.</item>
    /// <item>Kestrel's connection meter: once anything listens to it, Kestrel gives every connection a metrics-tags
    /// feature and its list and formats the local address into a string the connection keeps (about 110 bytes per
    /// connection, 2 MB at 19,000 idle connections), and records each connection's start and duration. The
    /// transport's collab_tcp_connections_open and collab_ws_* series count the same connections.</item>
    /// <item>The runtime's private diagnostics meters (QUIC internals), which are not meant for users.</item>
    /// </list>
    /// </summary>
    internal static bool IsPublished(Instrument instrument) =>
        !instrument.Meter.Name.StartsWith("Microsoft.AspNetCore.MemoryPool", StringComparison.Ordinal)
        && !string.Equals(instrument.Meter.Name, KestrelMeterName, StringComparison.Ordinal)
        && !instrument.Meter.Name.StartsWith("Private.", StringComparison.Ordinal);

    /// <summary>Open file descriptors of this process (sockets included; the one the count itself opens too, as before), or -1 when they cannot be counted.</summary>
    internal static int CountOpenHandles(Process process) =>
        OperatingSystem.IsLinux() ? CountEntries("/proc/self/fd") : process.HandleCount;

    /// <summary>Threads of this process, or -1 when they cannot be counted.</summary>
    internal static int CountThreads(Process process) =>
        OperatingSystem.IsLinux() ? CountEntries("/proc/self/task") : process.Threads.Count;

    /// <summary>
    /// Entries of a directory (without "." and ".."), counted with plain <c>readdir</c>: no name or path is
    /// materialized, and no entry is stat'ed. .NET's own enumeration stats every symbolic link to learn whether it
    /// points to a directory, and every entry of /proc/self/fd is one: a system call per open socket, a stall on a
    /// one-core server every time Prometheus (or the load generator, every second) scrapes. On this VM, stat'ing 5,000
    /// descriptors took 32 ms against 3.4 ms to read the directory alone (measured from Python, the same calls).
    /// </summary>
    private static int CountEntries(string directory)
    {
        nint stream = LibC.opendir(directory);
        if (stream == 0)
        {
            return -1;
        }

        try
        {
            int count = 0;
            while (LibC.readdir(stream) != 0)
            {
                count++;
            }

            return Math.Max(0, count - 2);
        }
        finally
        {
            _ = LibC.closedir(stream);
        }
    }

    /// <summary>The three directory-stream calls of the C library (Linux only; callers check).</summary>
    private static partial class LibC
    {
        [LibraryImport("libc", EntryPoint = "opendir", StringMarshalling = StringMarshalling.Utf8)]
        public static partial nint opendir(string name);

        [LibraryImport("libc", EntryPoint = "readdir")]
        public static partial nint readdir(nint stream);

        [LibraryImport("libc", EntryPoint = "closedir")]
        public static partial int closedir(nint stream);
    }

    /// <summary>The process_* and dotnet_* series of prometheus-net's DotNetStats, same names and help texts.</summary>
    private sealed class ProcessCollector
    {
        private readonly Process _process = Process.GetCurrentProcess();
        private readonly Lock _update = new();
        private readonly Counter.Child[] _collections;
        private readonly Gauge _totalMemory;
        private readonly Gauge _virtualMemory;
        private readonly Gauge _workingSet;
        private readonly Gauge _privateMemory;
        private readonly Counter _cpuSeconds;
        private readonly Gauge _openHandles;
        private readonly Gauge _threads;

        public ProcessCollector(CollectorRegistry registry)
        {
            // Dashboards and the load-test tool read these names unchanged.
            MetricFactory metrics = Metrics.WithCustomRegistry(registry);
            Counter collections = metrics.CreateCounter("dotnet_collection_count_total", "GC collection count", ["generation"]);
            _collections = new Counter.Child[GC.MaxGeneration + 1];
            for (int generation = 0; generation < _collections.Length; generation++)
            {
                _collections[generation] = collections.WithLabels(generation.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            Gauge startTime = metrics.CreateGauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.");
            _cpuSeconds = metrics.CreateCounter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.");
            _virtualMemory = metrics.CreateGauge("process_virtual_memory_bytes", "Virtual memory size in bytes.");
            _workingSet = metrics.CreateGauge("process_working_set_bytes", "Process working set");
            _privateMemory = metrics.CreateGauge("process_private_memory_bytes", "Process private memory size");
            _openHandles = metrics.CreateGauge("process_open_handles", "Number of open handles");
            _threads = metrics.CreateGauge("process_num_threads", "Total number of threads");
            _totalMemory = metrics.CreateGauge("dotnet_total_memory_bytes", "Total known allocated memory");
            startTime.Set((_process.StartTime.ToUniversalTime() - DateTime.UnixEpoch).TotalSeconds);
        }

        public void Update()
        {
            // Scrapes may overlap; Process is not thread-safe.
            lock (_update)
            {
                _process.Refresh();
                for (int generation = 0; generation < _collections.Length; generation++)
                {
                    _collections[generation].IncTo(GC.CollectionCount(generation));
                }

                _totalMemory.Set(GC.GetTotalMemory(forceFullCollection: false));
                _virtualMemory.Set(_process.VirtualMemorySize64);
                _workingSet.Set(_process.WorkingSet64);
                _privateMemory.Set(_process.PrivateMemorySize64);
                _cpuSeconds.IncTo(Environment.CpuUsage.TotalTime.TotalSeconds);
                SetIfCounted(_openHandles, CountOpenHandles(_process));
                SetIfCounted(_threads, CountThreads(_process));
            }
        }

        private static void SetIfCounted(Gauge gauge, int count)
        {
            // A failed count keeps the last value rather than publishing a bogus one.
            if (count >= 0)
            {
                gauge.Set(count);
            }
        }
    }
}
