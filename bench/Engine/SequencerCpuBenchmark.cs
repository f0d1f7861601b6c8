using System.Diagnostics;
using System.Globalization;

namespace Collab.Bench.Engine;

/// <summary>
/// The sequencer throughput of <see cref="EngineSequencerBenchmarks"/> (same setup, same loops, run through that class),
/// reported as wall time <b>and CPU time</b> per op. On a machine shared with other work the wall time per op measures
/// the run queue as much as the code (another process holds the core between the submitter's steps); the process's CPU
/// time per op (user + system, all its threads: the GC's included) is inflated far less, so it is the figure to compare
/// across types in a busy sitting, beside the load average it ran under. Each round runs every configuration once, in
/// turn, so a burst of load from elsewhere hits all of them; the report gives every round and the best.
/// </summary>
internal static class SequencerCpuBenchmark
{
    private const string Usage = """
        sequencer-cpu: in-process sequencer throughput per OT type, wall and CPU time per op (200,000 ops per run).
          --rounds N        rounds, each running every configuration once (default 5)
          --types LIST      text,rich,counter (default text,rich)
          --submitters LIST 1,8 (default 1,8)
        """;

    public static int Run(string[] args)
    {
        int rounds = 5;
        string[] types = ["text", "rich"];
        int[] submitters = [1, 8];
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--rounds":
                    rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
                    break;
                case "--types":
                    types = args[i + 1].Split(',');
                    break;
                case "--submitters":
                    submitters = [.. args[i + 1].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))];
                    break;
                default:
                    Console.Error.WriteLine(Usage);
                    return 2;
            }
        }

        if (args.Length % 2 != 0)
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }

        var best = new Dictionary<string, (double Wall, double Cpu, double Bytes)>(StringComparer.Ordinal);
        Console.WriteLine($"load average at start: {LoadAverage()}");
        Console.WriteLine("round | type    | submitters | inline | wall ns/op | cpu ns/op | ops/s (wall) | ops/s (cpu) | B/op | gen0 | load avg");
        for (int round = 1; round <= rounds; round++)
        {
            foreach (int count in submitters)
            {
                foreach (bool inline in (bool[])[false, true])
                {
                    foreach (string type in types)
                    {
                        (double wall, double cpu, double bytes, int gen0) = Measure(type, count, inline);
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"{round,5} | {type,-7} | {count,10} | {(inline ? "yes" : "no"),6} | {wall,10:F0} | {cpu,9:F0} | {1e9 / wall,12:N0} | {1e9 / cpu,11:N0} | {bytes,4:F0} | {gen0,4} | {LoadAverage()}"));
                        string key = $"{type} x{count} inline {(inline ? "yes" : "no")}";
                        best[key] = best.TryGetValue(key, out var b) ? (Math.Min(b.Wall, wall), Math.Min(b.Cpu, cpu), Math.Min(b.Bytes, bytes)) : (wall, cpu, bytes);
                    }
                }
            }
        }

        Console.WriteLine("best of the rounds:");
        foreach ((string key, (double wall, double cpu, double bytes)) in best)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {key,-26} wall {wall,6:F0} ns ({1e9 / wall:N0} ops/s), cpu {cpu,6:F0} ns ({1e9 / cpu:N0} ops/s), {bytes:F0} B/op"));
        }

        return 0;
    }

    private static (double WallNs, double CpuNs, double Bytes, int Gen0) Measure(string type, int submitters, bool inline)
    {
        var bench = new EngineSequencerBenchmarks { Submitters = submitters, InlineContinuations = inline };
        Func<Task> run = type switch
        {
            "text" => bench.Text,
            "rich" => bench.Rich,
            "counter" => bench.Counter,
            _ => throw new ArgumentException($"unknown type '{type}' (text, rich, counter)"),
        };

        // One unmeasured run (JIT, tiering), then the measured one on a fresh document, as BenchmarkDotNet's iterations.
        bench.Setup();
        run().GetAwaiter().GetResult();
        bench.Cleanup();
        bench.Setup();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var process = Process.GetCurrentProcess();
        process.Refresh();
        TimeSpan cpu0 = process.TotalProcessorTime;
        long bytes0 = GC.GetTotalAllocatedBytes(precise: true);
        int gen0 = GC.CollectionCount(0);
        long start = Stopwatch.GetTimestamp();
        run().GetAwaiter().GetResult();
        double wall = Stopwatch.GetElapsedTime(start).TotalNanoseconds;
        process.Refresh();
        double cpu = (process.TotalProcessorTime - cpu0).TotalNanoseconds;
        double bytes = GC.GetTotalAllocatedBytes(precise: true) - bytes0;
        int collections = GC.CollectionCount(0) - gen0;
        bench.Cleanup();
        int ops = EngineSequencerBenchmarks.OpsPerInvoke;
        return (wall / ops, cpu / ops, bytes / ops, collections);
    }

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "?";
        }
    }
}
