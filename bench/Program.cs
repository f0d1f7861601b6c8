using BenchmarkDotNet.Running;
using Collab.Bench.Client;
using Collab.Bench.Engine;
using Collab.Bench.Storage;

namespace Collab.Bench;

public static class BenchProgram
{
    /// <summary>Console benchmarks by name (they start their own servers); anything else goes to BenchmarkDotNet.</summary>
    public static async Task<int> Main(string[] args)
    {
        switch (args.Length > 0 ? args[0] : string.Empty)
        {
            case "oplog-pg":
            case "oplog-sqlite":
            case "oplog-null":
                return await OpLogBenchmark.RunAsync(args[0], args[1..]);
            case "sdk-latency":
                return await SdkLatencyBenchmark.RunAsync(args[1..]);
            case "sequencer-cpu":
                return SequencerCpuBenchmark.Run(args[1..]);
            default:
                BenchmarkSwitcher.FromAssembly(typeof(BenchProgram).Assembly).Run(args);
                return 0;
        }
    }
}
