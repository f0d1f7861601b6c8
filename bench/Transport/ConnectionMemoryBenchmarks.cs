using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Collab.Bench.Transport;

/// <summary>
/// Memory held per idle WebSocket connection, our transport against ASP.NET Core's middleware: the setup
/// opens 2,000 connections with the same minimal raw-socket client, measures the managed heap (after a
/// full GC) and the process working set before and after, and reports the difference per connection in
/// the "Heap/conn" and "RSS/conn" columns (client sockets included, identically for both servers). The
/// timed benchmark is one echo round trip on one connection among the 2,000 idle ones.
/// </summary>
[Config(typeof(Config))]
public class ConnectionMemoryBenchmarks
{
    private const int Connections = 2000;
    private static readonly string ResultDirectory = Path.Combine(Path.GetTempPath(), "collab-bench");

    private BenchServer _server = null!;
    private readonly List<Socket> _sockets = new();
    private readonly byte[] _frame = MaskedFrame("x"u8);
    private readonly byte[] _receive = new byte[64];

    [Params(BenchServer.Collab, BenchServer.AspNetCore)]
    public string Server { get; set; } = BenchServer.Collab;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _server = await BenchServer.StartAsync(Server);
        await OpenAsync(); // warm both sides (JIT, pools) before measuring
        CloseAll();
        await Task.Delay(500);

        (long heapBefore, long rssBefore) = Measure();
        await OpenAsync();
        await Task.Delay(500); // let the servers park their per-connection reads
        (long heapAfter, long rssAfter) = Measure();

        Directory.CreateDirectory(ResultDirectory);
        File.WriteAllText(
            Path.Combine(ResultDirectory, $"memory-{Server}.txt"),
            string.Create(CultureInfo.InvariantCulture, $"{(heapAfter - heapBefore) / Connections};{(rssAfter - rssBefore) / Connections}"));
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        CloseAll();
        await _server.DisposeAsync();
    }

    [Benchmark]
    public int EchoAmongIdleConnections()
    {
        Socket socket = _sockets[0];
        socket.Send(_frame);
        int received = 0;
        while (received < 3)
        {
            received += socket.Receive(_receive, received, _receive.Length - received, SocketFlags.None);
        }

        return received;
    }

    private static (long Heap, long Rss) Measure()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }

        using Process process = Process.GetCurrentProcess();
        return (GC.GetTotalMemory(forceFullCollection: true), process.WorkingSet64);
    }

    private async Task OpenAsync()
    {
        byte[] request = Encoding.ASCII.GetBytes(
            $"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{_server.Port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        var buffer = new byte[512];
        for (int i = 0; i < Connections; i++)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _server.Port));
            await socket.SendAsync(request);
            int read = 0;
            while (read < 4 || !buffer.AsSpan(0, read).EndsWith("\r\n\r\n"u8))
            {
                read += await socket.ReceiveAsync(buffer.AsMemory(read));
            }

            _sockets.Add(socket);
        }
    }

    private void CloseAll()
    {
        foreach (Socket socket in _sockets)
        {
            socket.Dispose();
        }

        _sockets.Clear();
    }

    private static byte[] MaskedFrame(ReadOnlySpan<byte> payload)
    {
        var frame = new byte[6 + payload.Length];
        frame[0] = 0x82;
        frame[1] = (byte)(0x80 | payload.Length);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(2), 0x01020304);
        for (int i = 0; i < payload.Length; i++)
        {
            frame[6 + i] = (byte)(payload[i] ^ frame[2 + (i % 4)]);
        }

        return frame;
    }

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddColumn(new MemoryColumn("Heap/conn", 0));
            AddColumn(new MemoryColumn("RSS/conn", 1));
        }
    }

    /// <summary>Reads the per-connection figures the setup wrote (it runs in the benchmark's child process).</summary>
    private sealed class MemoryColumn(string name, int index) : IColumn
    {
        public string Id => "ConnectionMemory." + name;

        public string ColumnName => name;

        public bool AlwaysShow => true;

        public ColumnCategory Category => ColumnCategory.Custom;

        public int PriorityInCategory => index;

        public bool IsNumeric => true;

        public UnitType UnitType => UnitType.Size;

        public string Legend => $"{name}: bytes retained per idle connection ({Connections} connections)";

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            object? server = benchmarkCase.Parameters.Items.FirstOrDefault(p => p.Name == nameof(Server))?.Value;
            string path = Path.Combine(ResultDirectory, $"memory-{server}.txt");
            return File.Exists(path) ? File.ReadAllText(path).Split(';')[index] + " B" : "-";
        }

        public bool IsAvailable(Summary summary) => true;

        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    }
}
