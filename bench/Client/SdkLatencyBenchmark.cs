using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Collab.Client;
using Collab.Client.Transport;
using Collab.LoadTest.Hosting;
using Collab.Protocol.V1;
using Google.Protobuf;
using HdrHistogram;

namespace Collab.Bench.Client;

/// <summary>
/// SDK submit-to-ack latency and allocation per op, one transport against another in one sitting (docs/PERFORMANCE.md,
/// "C# SDK transports"). Starts the real server (Release build of src/Server, pinned with taskset, SQLite in a temp
/// directory), then for each repetition runs every transport in turn against it: one client, one document, an edit at
/// each scheduled slot of an open-loop schedule (<c>--rate</c> per second), one edit in flight at a time (ShareDB's
/// discipline, so each ack answers exactly one edit); a slot whose previous ack is late waits for it, and its latency
/// still counts from the slot's scheduled time (no coordinated omission). Latency = scheduled time to the SDK's
/// <see cref="CollabDocument.Acknowledged"/> event, what an application sees. Allocation per op = the whole process's
/// allocated bytes over the measured window / acknowledged ops (the same edits and SDK code run on both transports, so
/// the difference is the transport's). Then, per transport, the transport alone: Ping → Pong round trips through
/// <see cref="IClientTransport"/> at the same rate, with the allocation per round trip (the transport's own).
/// </summary>
internal static class SdkLatencyBenchmark
{
    private const string Usage = """
        sdk-latency: SDK submit-to-ack latency and allocations per op, per transport, against a spawned server.
        Run the bench itself pinned, e.g.:  taskset -c 1 dotnet bench/bin/Release/net10.0/Collab.Bench.dll sdk-latency
          --rate N            edits per second (default 1000)
          --duration S        measured seconds per run (default 20)
          --warmup S          unmeasured seconds before each run (default 5)
          --repeat N          repetitions; each runs every transport once, in turn (default 5)
          --rtt-duration S    measured seconds of the transport-alone Ping/Pong run after each SDK run (default 10; 0: none)
          --transports LIST   pipelines, pipelines-pool (thread-pool scheduling), clientwebsocket (default pipelines,clientwebsocket)
          --server-cpus LIST  taskset CPUs for the server (default 0; "none": unpinned)
          --sync normal|full  the server's SqliteSynchronous (default normal: fsync noise out of a transport comparison)
          --url URL           use a running server instead of spawning one
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["--rate"] = "1000",
            ["--duration"] = "20",
            ["--warmup"] = "5",
            ["--repeat"] = "5",
            ["--rtt-duration"] = "10",
            ["--transports"] = "pipelines,clientwebsocket",
            ["--server-cpus"] = "0",
            ["--sync"] = "normal",
        };
        for (int i = 0; i < args.Length; i++)
        {
            if (!options.ContainsKey(args[i]) && args[i] != "--url" || i + 1 >= args.Length)
            {
                Console.Error.WriteLine(Usage);
                return 2;
            }

            options[args[i]] = args[++i];
        }

        double rate = double.Parse(options["--rate"], CultureInfo.InvariantCulture);
        TimeSpan duration = TimeSpan.FromSeconds(double.Parse(options["--duration"], CultureInfo.InvariantCulture));
        TimeSpan warmup = TimeSpan.FromSeconds(double.Parse(options["--warmup"], CultureInfo.InvariantCulture));
        int repeat = int.Parse(options["--repeat"], CultureInfo.InvariantCulture);
        TimeSpan rttDuration = TimeSpan.FromSeconds(double.Parse(options["--rtt-duration"], CultureInfo.InvariantCulture));
        string[] transports = options["--transports"].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

        Console.WriteLine($"sdk-latency: {rate} edits/s, {warmup.TotalSeconds} s warm-up + {duration.TotalSeconds} s measured, {repeat} repetitions of [{string.Join(", ", transports)}]");
        Console.WriteLine($"client: CPUs {Native.AllowedCpuList() ?? "?"} ({Environment.ProcessorCount} seen by the runtime), .NET {Environment.Version}, server GC {System.Runtime.GCSettings.IsServerGC}");
        Native.SetTightTimerSlack();

        await using SpawnedServer? server = options.TryGetValue("--url", out string? url) ? null : await SpawnedServer.StartAsync(options["--server-cpus"], options["--sync"]);
        var uri = new Uri(url ?? server!.WebSocketUri.ToString());
        var results = new List<RunResult>();
        for (int r = 1; r <= repeat; r++)
        {
            // Each repetition starts with another transport, so no transport always runs right after the same one.
            foreach (string transport in transports.Skip((r - 1) % transports.Length).Concat(transports.Take((r - 1) % transports.Length)))
            {
                RunResult result = await RunOnceAsync(uri, transport, rate, warmup, duration, $"bench/{transport}/{r}-{Guid.NewGuid():N}") with { Repetition = r };
                results.Add(result);
                Console.WriteLine($"  run {r} {result}");
                if (rttDuration > TimeSpan.Zero)
                {
                    RunResult rtt = await RoundTripsAsync(uri, transport, rate, warmup, rttDuration) with { Repetition = r };
                    results.Add(rtt);
                    Console.WriteLine($"  run {r} {rtt}");
                }
            }
        }

        Console.WriteLine();
        Console.WriteLine($"medians over {repeat} repetitions (p50/p90/p99/p99.9 in ms; client CPU µs per op; bytes allocated per op; gen0 GCs per 10k ops):");
        Console.WriteLine("| transport | p50 | p90 | p99 | p99.9 | max | CPU µs/op | B/op | gen0/10k |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (string transport in transports.Concat(transports.Select(t => t + " ping")).Where(t => results.Any(x => x.Transport == t)))
        {
            List<RunResult> runs = results.Where(x => x.Transport == transport).ToList();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {transport} | {Median(runs, x => x.P50):F3} | {Median(runs, x => x.P90):F3} | {Median(runs, x => x.P99):F3} | {Median(runs, x => x.P999):F3} | {Median(runs, x => x.Max):F2} | {Median(runs, x => x.CpuMicrosPerOp):F1} | {Median(runs, x => x.BytesPerOp):F0} | {Median(runs, x => x.Gen0Per10k):F2} |"));
        }

        // The machine is shared: a repetition's runs are minutes apart at most, so comparing within a repetition and taking
        // the median of those ratios cancels much of the drift that the medians above still carry.
        string baseline = transports[^1];
        Console.WriteLine();
        Console.WriteLine($"paired: median over repetitions of (transport / {baseline}) within each repetition:");
        Console.WriteLine("| transport | p50 ratio | p90 ratio | p99 ratio | p99.9 ratio |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (string suffix in new[] { string.Empty, " ping" })
        {
            foreach (string transport in transports[..^1])
            {
                var ratios = results.Where(x => x.Transport == transport + suffix)
                    .Select(x => (Run: x, Base: results.SingleOrDefault(b => b.Transport == baseline + suffix && b.Repetition == x.Repetition)))
                    .Where(pair => pair.Base is not null)
                    .Select(pair => new RunResult(pair.Run.Transport, 0, 0, pair.Run.P50 / pair.Base!.P50, pair.Run.P90 / pair.Base.P90, pair.Run.P99 / pair.Base.P99, pair.Run.P999 / pair.Base.P999, 0, 0, 0, 0))
                    .ToList();
                if (ratios.Count > 0)
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {transport + suffix} | {Median(ratios, x => x.P50):F2} | {Median(ratios, x => x.P90):F2} | {Median(ratios, x => x.P99):F2} | {Median(ratios, x => x.P999):F2} |"));
                }
            }
        }

        return 0;
    }

    private static double Median(List<RunResult> runs, Func<RunResult, double> metric)
    {
        double[] values = runs.Select(metric).Order().ToArray();
        return values.Length % 2 == 1 ? values[values.Length / 2] : (values[(values.Length / 2) - 1] + values[values.Length / 2]) / 2;
    }

    private static IClientTransportFactory Factory(string transport) => transport switch
    {
        "pipelines" => PipelinesTransportFactory.Instance,
        "pipelines-pool" => new PipelinesTransportFactory(inlineScheduling: false),
        "clientwebsocket" => WebSocketTransportFactory.Instance,
        _ => throw new ArgumentException($"Unknown transport '{transport}'."),
    };

    private static async Task<RunResult> RunOnceAsync(Uri uri, string transport, double rate, TimeSpan warmup, TimeSpan duration, string docId)
    {
        await using CollabClient client = await CollabClient.ConnectAsync(uri, new CollabClientOptions { TransportFactory = Factory(transport) });
        await using CollabDocument document = await client.OpenDocumentAsync(docId);

        long interval = (long)(Stopwatch.Frequency / rate);
        int warmupOps = (int)(warmup.TotalSeconds * rate);
        int totalOps = warmupOps + (int)(duration.TotalSeconds * rate);
        long[] scheduled = new long[totalOps];
        var histogram = new LongHistogram(TimeStamp.Seconds(10), 3);
        // Signalled per ack. Not SemaphoreSlim: its wait spins with sched_yield first, which on the client's one CPU
        // burns the time the SDK needs to deliver the very ack being waited for (measured: ~60 % of the process's samples).
        using var ackSignal = new ManualResetEventSlim(false, spinCount: 0);
        long ackedOps = 0;
        long firstSeq = client.LastClientSeq + 1;
        long measuredFrom = 0;
        document.Acknowledged += (_, e) =>
        {
            long now = Stopwatch.GetTimestamp();
            int index = (int)(e.ClientSeq - firstSeq);
            if (index >= warmupOps)
            {
                histogram.RecordValue(now - scheduled[index]);
            }

            Interlocked.Increment(ref ackedOps);
            ackSignal.Set();
        };

        void WaitForAcks(long count)
        {
            while (Volatile.Read(ref ackedOps) < count)
            {
                ackSignal.Wait();
                ackSignal.Reset();
            }
        }


        var random = new Random(42);
        long allocatedBefore = 0;
        TimeSpan cpuBefore = TimeSpan.Zero;
        int gen0Before = 0;
        long start = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 10);
        // The edits leave from a dedicated thread that sleeps until each slot on an absolute deadline (not the thread
        // pool, whose timers are millisecond-coarse), at the highest priority the system allows.
        var editor = new Thread(() =>
        {
            Native.SetTightTimerSlack();
            Native.RaiseThreadPriority();
            for (int n = 0; n < totalOps; n++)
            {
                long due = start + (n * interval);
                if (n == warmupOps)
                {
                    Native.SleepUntil(due);
                    measuredFrom = Stopwatch.GetTimestamp();
                    allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
                    cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
                    gen0Before = GC.CollectionCount(0);
                }

                Native.SleepUntil(due);
                WaitForAcks(n);

                scheduled[n] = due;
                int length = document.Snapshot.Length;
                document.Insert(random.Next(length + 1), "abcd");
            }

            WaitForAcks(totalOps);
        })
        { IsBackground = true, Name = "sdk-latency editor" };
        editor.Start();
        await Task.Run(editor.Join);

        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
        int gen0 = GC.CollectionCount(0) - gen0Before;
        return Result(transport, histogram, measuredFrom, allocated, cpu, gen0);
    }

    /// <summary>
    /// The transport alone: Hello/Welcome, then a Ping each slot and its Pong (one in flight, as above). The loop is one
    /// async method, so its own awaits allocate nothing after the first; what is allocated per round trip is the transport's.
    /// </summary>
    private static async Task<RunResult> RoundTripsAsync(Uri uri, string transport, double rate, TimeSpan warmup, TimeSpan duration)
    {
        var request = new TransportConnectRequest(uri, null, TokenDelivery.AuthorizationHeader, CollabClientOptions.DefaultSubProtocol, 1 << 20);
        await using IClientTransport connection = await Factory(transport).ConnectAsync(request, CancellationToken.None);
        await connection.SendAsync(new ClientMessage { Hello = new Hello { ProtocolVersion = 1, ClientName = "sdk-latency" } }.ToByteArray(), CancellationToken.None);
        var buffer = new ArrayBufferWriter<byte>(4096);
        if (!await connection.ReceiveAsync(buffer, CancellationToken.None) || ServerMessage.Parser.ParseFrom(buffer.WrittenSpan).BodyCase != ServerMessage.BodyOneofCase.Welcome)
        {
            throw new InvalidOperationException("No Welcome.");
        }

        byte[] ping = new ClientMessage { Ping = new Ping { Nonce = 42 } }.ToByteArray();
        long interval = (long)(Stopwatch.Frequency / rate);
        int warmupOps = (int)(warmup.TotalSeconds * rate);
        int totalOps = warmupOps + (int)(duration.TotalSeconds * rate);
        var histogram = new LongHistogram(TimeStamp.Seconds(10), 3);
        long allocatedBefore = 0;
        long measuredFrom = 0;
        TimeSpan cpuBefore = TimeSpan.Zero;
        int gen0Before = 0;
        long start = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 10);
        await Task.Run(async () =>
        {
            Native.SetTightTimerSlack();
            for (int n = 0; n < totalOps; n++)
            {
                long due = start + (n * interval);
                Native.SleepUntil(due);
                if (n == warmupOps)
                {
                    measuredFrom = Stopwatch.GetTimestamp();
                    allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
                    cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
                    gen0Before = GC.CollectionCount(0);
                }

                await connection.SendAsync(ping, CancellationToken.None);
                buffer.ResetWrittenCount();
                if (!await connection.ReceiveAsync(buffer, CancellationToken.None))
                {
                    throw new InvalidOperationException("The server closed the connection.");
                }

                if (n >= warmupOps)
                {
                    histogram.RecordValue(Stopwatch.GetTimestamp() - due);
                }
            }
        });

        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
        int gen0 = GC.CollectionCount(0) - gen0Before;
        await connection.CloseAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        return Result(transport + " ping", histogram, measuredFrom, allocated, cpu, gen0);
    }

    private static RunResult Result(string transport, LongHistogram histogram, long measuredFrom, long allocated, TimeSpan cpu, int gen0)
    {
        long ops = histogram.TotalCount;
        double ms(double percentile) => histogram.GetValueAtPercentile(percentile) * 1000.0 / Stopwatch.Frequency;
        return new RunResult(
            transport,
            ops,
            Stopwatch.GetElapsedTime(measuredFrom).TotalSeconds,
            ms(50),
            ms(90),
            ms(99),
            ms(99.9),
            histogram.GetMaxValue() * 1000.0 / Stopwatch.Frequency,
            cpu.TotalMicroseconds / ops,
            (double)allocated / ops,
            gen0 * 10_000.0 / ops);
    }

    private sealed record RunResult(string Transport, long Ops, double Seconds, double P50, double P90, double P99, double P999, double Max, double CpuMicrosPerOp, double BytesPerOp, double Gen0Per10k)
    {
        public int Repetition { get; init; }

        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"{Transport,-16} {Ops} ops in {Seconds:F1} s: p50 {P50:F3} p90 {P90:F3} p99 {P99:F3} p99.9 {P999:F3} max {Max:F2} ms; client CPU {CpuMicrosPerOp:F1} µs/op; {BytesPerOp:F0} B/op; gen0 {Gen0Per10k:F2}/10k ops");
    }

    /// <summary>The Release build of src/Server, pinned with taskset, SQLite in a temp directory, rate limits lifted.</summary>
    private sealed class SpawnedServer : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly string _directory;

        private SpawnedServer(Process process, string directory, int port)
        {
            _process = process;
            _directory = directory;
            WebSocketUri = new Uri($"ws://127.0.0.1:{port}/ws");
        }

        public Uri WebSocketUri { get; }

        public static async Task<SpawnedServer> StartAsync(string cpus, string sync)
        {
            string root = AppContext.BaseDirectory;
            while (!File.Exists(Path.Combine(root, "Collab.sln")))
            {
                root = Path.GetDirectoryName(root.TrimEnd('/')) ?? throw new InvalidOperationException("Run from inside the repository.");
            }

            string dll = Path.Combine(root, "src", "Server", "bin", "Release", "net10.0", "Collab.Server.dll");
            if (!File.Exists(dll))
            {
                throw new InvalidOperationException($"Build the server first: dotnet build -c Release src/Server ({dll} is missing).");
            }

            int port;
            using (var probe = new TcpListener(IPAddress.Loopback, 0))
            {
                probe.Start();
                port = ((IPEndPoint)probe.LocalEndpoint).Port;
            }

            string directory = Directory.CreateTempSubdirectory("collab-sdk-bench-").FullName;
            var start = new ProcessStartInfo(cpus == "none" ? "dotnet" : "taskset") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            if (cpus != "none")
            {
                foreach (string argument in new[] { "-c", cpus, "dotnet" })
                {
                    start.ArgumentList.Add(argument);
                }
            }

            foreach (string argument in new[]
            {
                dll, "--port", port.ToString(CultureInfo.InvariantCulture), "--data-dir", directory, "--Logging:LogLevel:Default=Warning",
                "--Storage:SqliteSynchronous=" + (sync == "full" ? "Full" : "Normal"),
                "--Limits:OpsPerSecond=1000000", "--Limits:OpsBurst=1000000", "--Limits:MessagesPerSecond=1000000", "--Limits:MessageBurst=1000000",
                "--Limits:UserOpsPerSecond=1000000", "--Limits:UserOpsBurst=1000000",
            })
            {
                start.ArgumentList.Add(argument);
            }

            Process process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the server.");
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    Console.Error.WriteLine("server: " + e.Data);
                }
            };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var server = new SpawnedServer(process, directory, port);
            Console.WriteLine($"server: pid {process.Id}, CPUs {cpus}, SqliteSynchronous={sync}, {server.WebSocketUri}");
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            for (int attempt = 0; attempt < 600 && !process.HasExited; attempt++)
            {
                try
                {
                    using HttpResponseMessage ready = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/readyz"));
                    if (ready.IsSuccessStatusCode)
                    {
                        return server;
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    // Not listening yet.
                }

                await Task.Delay(100);
            }

            await server.DisposeAsync();
            throw new InvalidOperationException("The server did not become ready within 60 s.");
        }

        public async ValueTask DisposeAsync()
        {
            Native.Terminate(_process.Id);
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            try
            {
                await _process.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }

            _process.Dispose();
            Directory.Delete(_directory, recursive: true);
        }
    }
}
