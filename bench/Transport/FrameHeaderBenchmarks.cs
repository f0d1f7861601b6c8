using BenchmarkDotNet.Attributes;
using Collab.Server.Transport;

namespace Collab.Bench.Transport;

/// <summary>Client header parse (all three length encodings) and server header encode.</summary>
[MemoryDiagnoser]
public class FrameHeaderBenchmarks
{
    private const int Headers = 1024;
    private readonly byte[] _small = { 0x82, 0x80 | 100, 1, 2, 3, 4 };
    private readonly byte[] _medium = { 0x82, 0x80 | 126, 0x10, 0x00, 1, 2, 3, 4 };
    private readonly byte[] _large = { 0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4 };
    private readonly byte[] _output = new byte[WebSocketFrame.MaxServerHeaderLength];

    [Benchmark(OperationsPerInvoke = Headers)]
    public ulong Parse7BitLength() => ParseMany(_small);

    [Benchmark(OperationsPerInvoke = Headers)]
    public ulong Parse16BitLength() => ParseMany(_medium);

    [Benchmark(OperationsPerInvoke = Headers)]
    public ulong Parse64BitLength() => ParseMany(_large);

    [Benchmark(OperationsPerInvoke = Headers)]
    public int ParseAndValidate()
    {
        int sum = 0;
        for (int i = 0; i < Headers; i++)
        {
            _ = WebSocketFrame.TryParseHeader(_medium, out FrameHeader header);
            sum += WebSocketFrame.Validate(header, 1 << 20) + header.HeaderLength;
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Headers)]
    public int EncodeServerHeader()
    {
        int sum = 0;
        for (int i = 0; i < Headers; i++)
        {
            sum += WebSocketFrame.WriteServerHeader(_output, WebSocketOpcode.Binary, i * 97);
        }

        return sum;
    }

    private static ulong ParseMany(byte[] bytes)
    {
        ulong sum = 0;
        for (int i = 0; i < Headers; i++)
        {
            _ = WebSocketFrame.TryParseHeader(bytes, out FrameHeader header);
            sum += header.PayloadLength;
        }

        return sum;
    }
}
