using System.Diagnostics;
using System.Globalization;
using Collab.Engine.Sequencing;
using Collab.Integration.Tests.Infrastructure;
using Collab.Server.Storage;
using HdrHistogram;
using Prometheus;

namespace Collab.Bench.Storage;

/// <summary>
/// Sustained op-log throughput and commit latency through the group-commit stage, against a PostgreSQL cluster this
/// program starts itself (fsync and synchronous_commit on) or the embedded SQLite file.
/// <code>
/// dotnet run -c Release --project bench -- oplog-pg     [--seconds N] [--docs D] [--window W] [--methods copy,multi,row] [--batch-ops N] [--batch-delay-ms X] [--partitions P]
/// dotnet run -c Release --project bench -- oplog-sqlite [--seconds N] [--docs D] [--window W] [--batch-ops N] [--batch-delay-ms X]
/// </code>
/// Every document is a closed-loop sequencer that keeps <c>W</c> commits outstanding, so the offered concurrency is
/// D x W and latency is what a client waits for its ack: from CommitAsync to completion, HdrHistogram-recorded.
/// </summary>
internal static class OpLogBenchmark
{
    private static readonly byte[] OpPayload = CreatePayload();

    public static async Task<int> RunAsync(string mode, string[] args)
    {
        var settings = Settings.Parse(args);
        Console.WriteLine($"# {mode}: {settings}");
        Console.WriteLine($"# machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}; other work may share the cores");
        var results = new List<Result>();
        if (mode == "oplog-pg")
        {
            await using var server = await PostgresServer.StartAsync(new Dictionary<string, string>
            {
                ["shared_buffers"] = "'512MB'",
                ["wal_buffers"] = "'64MB'",
                ["max_wal_size"] = "'8GB'",
                ["checkpoint_timeout"] = "'30min'",
                ["synchronous_commit"] = "on",
                ["fsync"] = "on",
            });
            foreach (var method in settings.Methods)
            {
                var options = settings.ToOptions(StorageProvider.Postgres);
                options.PostgresConnectionString = await server.CreateDatabaseAsync("bench");
                await using var store = new PostgresOpStore(options) { AppendMethod = method };
                await store.InitializeAsync(default);
                results.Add(await MeasureAsync(MethodName(method), store, options, settings, server.CpuTime));
            }
        }
        else if (mode == "oplog-null")
        {
            // The stage and the load generator alone, over a store that commits nothing: their CPU cost per op.
            await using var store = new NullOpStore();
            results.Add(await MeasureAsync("null store", store, settings.ToOptions(StorageProvider.Sqlite), settings, serverCpu: null));
        }
        else
        {
            var directory = Path.Combine(Path.GetTempPath(), "collab-bench-" + Guid.NewGuid().ToString("N")[..8]);
            try
            {
                var options = settings.ToOptions(StorageProvider.Sqlite);
                options.DataDirectory = directory;
                await using var store = new SqliteOpStore(options);
                await store.InitializeAsync(default);
                results.Add(await MeasureAsync("sqlite", store, options, settings, serverCpu: null));
            }
            finally
            {
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                Directory.Delete(directory, recursive: true);
            }
        }

        Console.WriteLine();
        Console.WriteLine("| method | docs x window | ops/s | batches/s | ops/batch | commit ms | client CPU us/op | db CPU us/op | alloc B/op | p50 ms | p99 ms | p99.9 ms | max ms |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in results)
        {
            Console.WriteLine(r.ToString());
        }

        return 0;
    }

    private static async Task<Result> MeasureAsync(string name, IOpStore store, StorageOptions options, Settings settings, Func<TimeSpan>? serverCpu)
    {
        Console.WriteLine($"# {name}: warming up {settings.WarmupSeconds} s, measuring {settings.Seconds} s ...");
        var registry = Metrics.NewCustomRegistry();
        var metrics = new StorageMetrics(registry);
        var histogram = new LongHistogram(TimeStamp.Seconds(60), 3);
        var starts = new long[settings.Docs][];
        for (var d = 0; d < settings.Docs; d++)
        {
            starts[d] = new long[settings.Window];
        }

        var measuring = 0;
        long completed = 0;

        await using var stage = new GroupCommitStage(store, options, metrics: metrics);

        // Runs on the stage's single completion loop, just before each call completes: exact commit-to-ack latency
        // with no synchronisation on the hot path.
        stage.CompletionObserver = record =>
        {
            if (Volatile.Read(ref measuring) == 0)
            {
                return;
            }

            var d = int.Parse(record.DocId.AsSpan(4), CultureInfo.InvariantCulture);
            histogram.RecordValue(Stopwatch.GetTimestamp() - starts[d][record.Version % settings.Window]);
            completed++;
        };

        using var stop = new CancellationTokenSource();
        var producers = new Task[settings.Docs];
        for (var d = 0; d < settings.Docs; d++)
        {
            var doc = d;
            producers[d] = Task.Run(() => ProduceAsync(stage, doc, settings.Window, starts[doc], stop.Token));
        }

        await Task.Delay(TimeSpan.FromSeconds(settings.WarmupSeconds));
        var batchesBefore = metrics.Batches.Value;
        var opsBefore = metrics.Ops.Value;
        var commitSecondsBefore = metrics.CommitSeconds.Sum;
        var clientCpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: false);
        var serverCpuBefore = serverCpu?.Invoke() ?? TimeSpan.Zero;
        Volatile.Write(ref measuring, 1);
        var clock = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(settings.Seconds));
        Volatile.Write(ref measuring, 0);
        var elapsed = clock.Elapsed.TotalSeconds;
        var batches = metrics.Batches.Value - batchesBefore;
        var ops = metrics.Ops.Value - opsBefore;
        var commitSeconds = metrics.CommitSeconds.Sum - commitSecondsBefore;
        var clientCpu = Process.GetCurrentProcess().TotalProcessorTime - clientCpuBefore;
        var allocated = GC.GetTotalAllocatedBytes(precise: false) - allocatedBefore;
        var serverCpuUsed = (serverCpu?.Invoke() ?? TimeSpan.Zero) - serverCpuBefore;

        await stop.CancelAsync();
        await Task.WhenAll(producers);
        return new Result(
            name,
            settings.Docs,
            settings.Window,
            ops / elapsed,
            batches / elapsed,
            batches > 0 ? ops / batches : 0,
            batches > 0 ? commitSeconds * 1000 / batches : 0,
            ops > 0 ? clientCpu.TotalMicroseconds / ops : 0,
            ops > 0 && serverCpu is not null ? serverCpuUsed.TotalMicroseconds / ops : double.NaN,
            ops > 0 ? allocated / ops : 0,
            histogram);
    }

    /// <summary>One document's sequencer: keeps <paramref name="window"/> commits outstanding, awaiting them in order.</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2012", Justification = "Each queued ValueTask is awaited exactly once, in order.")]
    private static async Task ProduceAsync(GroupCommitStage stage, int doc, int window, long[] starts, CancellationToken stop)
    {
        var docId = "doc-" + doc.ToString(CultureInfo.InvariantCulture);
        var clientId = "client-" + doc.ToString(CultureInfo.InvariantCulture);
        var outstanding = new Queue<ValueTask>(window);
        long version = 0;
        while (!stop.IsCancellationRequested)
        {
            version++;
            starts[version % window] = Stopwatch.GetTimestamp();
            var op = new OpRecord(docId, version, clientId, version, "bench-user", OpPayload, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            outstanding.Enqueue(stage.CommitAsync(op, CancellationToken.None));
            if (outstanding.Count == window)
            {
                await outstanding.Dequeue();
            }
        }

        while (outstanding.Count > 0)
        {
            await outstanding.Dequeue();
        }
    }

    /// <summary>Accepts every batch without storing it.</summary>
    private sealed class NullOpStore : IOpStore
    {
        public ValueTask InitializeAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask<AppendResult> AppendAsync(IReadOnlyList<OpRecord> batch, CancellationToken cancellationToken) => ValueTask.FromResult(AppendResult.Ok);

        public ValueTask<DocumentLoad?> LoadAsync(string docId, CancellationToken cancellationToken) => ValueTask.FromResult<DocumentLoad?>(null);

        public ValueTask<IReadOnlyList<OpRecord>> ReadOpsAsync(string docId, long afterVersion, long toVersion, int limit, CancellationToken cancellationToken) =>
            ValueTask.FromResult<IReadOnlyList<OpRecord>>(Array.Empty<OpRecord>());

        public ValueTask<OpLookup> FindOpAsync(string docId, string clientId, long clientSeq, long afterVersion, long toVersion, CancellationToken cancellationToken) =>
            ValueTask.FromResult(default(OpLookup));

        public ValueTask<byte[]> GetOrCreateSecretAsync(string name, int length, CancellationToken cancellationToken) => ValueTask.FromResult(new byte[length]);

        public ValueTask WriteSnapshotAsync(SnapshotRecord snapshot, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask<long> PruneAsync(TimeSpan retention, CancellationToken cancellationToken) => ValueTask.FromResult(0L);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private static string MethodName(PostgresAppendMethod method) => method switch
    {
        PostgresAppendMethod.BinaryCopy => "pg binary COPY",
        PostgresAppendMethod.MultiRowInsert => "pg multi-row INSERT",
        _ => "pg row-by-row INSERT",
    };

    private static byte[] CreatePayload()
    {
        // About the size of an encoded "retain n, insert a word" text op.
        var payload = new byte[24];
        for (var i = 0; i < payload.Length; i++)
        {
            payload[i] = (byte)(i * 37);
        }

        return payload;
    }

    private sealed record Result(
        string Name,
        int Docs,
        int Window,
        double OpsPerSecond,
        double BatchesPerSecond,
        double OpsPerBatch,
        double CommitMs,
        double ClientCpuMicrosPerOp,
        double ServerCpuMicrosPerOp,
        double AllocatedBytesPerOp,
        LongHistogram Latency)
    {
        public override string ToString()
        {
            static string Ms(long ticks) => (ticks * 1000.0 / Stopwatch.Frequency).ToString("F2", CultureInfo.InvariantCulture);
            return string.Create(
                CultureInfo.InvariantCulture,
                $"| {Name} | {Docs} x {Window} | {OpsPerSecond:N0} | {BatchesPerSecond:N0} | {OpsPerBatch:N0} | {CommitMs:F1} | {ClientCpuMicrosPerOp:F1} | {(double.IsNaN(ServerCpuMicrosPerOp) ? "-" : ServerCpuMicrosPerOp.ToString("F1", CultureInfo.InvariantCulture))} | {AllocatedBytesPerOp:F0} | {Ms(Latency.GetValueAtPercentile(50))} | {Ms(Latency.GetValueAtPercentile(99))} | {Ms(Latency.GetValueAtPercentile(99.9))} | {Ms(Latency.GetMaxValue())} |");
        }
    }

    private sealed record Settings(int Seconds, int WarmupSeconds, int Docs, int Window, int BatchOps, double BatchDelayMs, int Partitions, PostgresAppendMethod[] Methods)
    {
        public static Settings Parse(string[] args)
        {
            var s = new Settings(10, 2, 1000, 4, new StorageOptions().MaxBatchOps, new StorageOptions().MaxBatchDelay.TotalMilliseconds, 16,
                [PostgresAppendMethod.BinaryCopy, PostgresAppendMethod.MultiRowInsert, PostgresAppendMethod.RowByRowInsert]);
            for (var i = 0; i + 1 < args.Length; i += 2)
            {
                var value = args[i + 1];
                s = args[i] switch
                {
                    "--seconds" => s with { Seconds = int.Parse(value, CultureInfo.InvariantCulture) },
                    "--warmup" => s with { WarmupSeconds = int.Parse(value, CultureInfo.InvariantCulture) },
                    "--docs" => s with { Docs = int.Parse(value, CultureInfo.InvariantCulture) },
                    "--window" => s with { Window = int.Parse(value, CultureInfo.InvariantCulture) },
                    "--batch-ops" => s with { BatchOps = int.Parse(value, CultureInfo.InvariantCulture) },
                    "--batch-delay-ms" => s with { BatchDelayMs = double.Parse(value, CultureInfo.InvariantCulture) },
                    "--partitions" => s with { Partitions = int.Parse(value, CultureInfo.InvariantCulture) },
                    "--methods" => s with { Methods = value.Split(',').Select(ParseMethod).ToArray() },
                    _ => throw new ArgumentException($"Unknown option '{args[i]}'."),
                };
            }

            return s;
        }

        /// <summary>The stage validates these when it starts (after the caller filled in where the store lives).</summary>
        public StorageOptions ToOptions(StorageProvider provider) => new()
        {
            Provider = provider,
            MaxBatchOps = BatchOps,
            MaxBatchDelay = TimeSpan.FromMilliseconds(BatchDelayMs),
            PostgresPartitions = Partitions,
        };

        public override string ToString() =>
            $"{Seconds} s after {WarmupSeconds} s warm-up, {Docs} docs x {Window} outstanding, MaxBatchOps {BatchOps}, MaxBatchDelay {BatchDelayMs} ms, {Partitions} partitions";

        private static PostgresAppendMethod ParseMethod(string name) => name switch
        {
            "copy" => PostgresAppendMethod.BinaryCopy,
            "multi" => PostgresAppendMethod.MultiRowInsert,
            "row" => PostgresAppendMethod.RowByRowInsert,
            _ => throw new ArgumentException($"Unknown method '{name}' (copy, multi, row)."),
        };
    }
}
