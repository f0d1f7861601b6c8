using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Collab.Server.Transport;

namespace Collab.Bench.Transport;

/// <summary>Unmasking throughput (in place, as the read path does it); the GB/s column divides size by time.</summary>
[MemoryDiagnoser]
[Config(typeof(Config))]
public class MaskingBenchmarks
{
    private byte[] _data = Array.Empty<byte>();

    [Params(16, 125, 4096, 65536, 1048576)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup() => _data = new byte[Size];

    [Benchmark]
    public uint UnmaskInPlace() => WebSocketMask.ApplyInPlace(_data, 0x12345678);

    [Benchmark(Baseline = true)]
    public uint UnmaskBytewise()
    {
        // The naive definition, for reference: payload[i] ^= key[i % 4].
        const uint key = 0x12345678;
        byte[] data = _data;
        for (int i = 0; i < data.Length; i++)
        {
            data[i] ^= (byte)(key >> (8 * (i & 3)));
        }

        return key;
    }

    private sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new ThroughputColumn("Size"));
    }
}

/// <summary>Bytes per second from a benchmark's integer parameter and its mean time.</summary>
public sealed class ThroughputColumn : IColumn
{
    private readonly string _parameter;

    public ThroughputColumn(string parameter) => _parameter = parameter;

    public string Id => "Throughput." + _parameter;

    public string ColumnName => "GB/s";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => $"{_parameter} bytes divided by the mean time, in 10^9 bytes per second";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        BenchmarkReport? report = summary[benchmarkCase];
        object? size = benchmarkCase.Parameters.Items.FirstOrDefault(p => p.Name == _parameter)?.Value;
        if (report?.ResultStatistics is null || size is null)
        {
            return "-";
        }

        double nanoseconds = report.ResultStatistics.Mean;
        return (Convert.ToDouble(size, System.Globalization.CultureInfo.InvariantCulture) / nanoseconds).ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
    }

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
}
