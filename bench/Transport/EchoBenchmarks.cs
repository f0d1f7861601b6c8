using System.Net.WebSockets;
using BenchmarkDotNet.Attributes;

namespace Collab.Bench.Transport;

/// <summary>
/// End-to-end echo on loopback, our transport against ASP.NET Core's WebSocket middleware, with the same
/// client (ClientWebSocket), the same message sizes and the same load in the same run: 8 connections,
/// each with 32 messages in flight. The time is per message, so messages/s = 1e9 / Mean(ns).
/// </summary>
[MemoryDiagnoser]
public class EchoBenchmarks
{
    private const int Clients = 8;
    private const int InFlight = 32;

    private BenchServer _server = null!;
    private ClientWebSocket[] _clients = Array.Empty<ClientWebSocket>();
    private byte[] _payload = Array.Empty<byte>();
    private byte[][] _receiveBuffers = Array.Empty<byte[]>();

    [Params(BenchServer.Collab, BenchServer.AspNetCore)]
    public string Server { get; set; } = BenchServer.Collab;

    [Params(32, 1024, 16384)]
    public int MessageSize { get; set; }

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _server = await BenchServer.StartAsync(Server);
        _payload = new byte[MessageSize];
        new Random(42).NextBytes(_payload);
        _clients = new ClientWebSocket[Clients];
        _receiveBuffers = new byte[Clients][];
        for (int i = 0; i < Clients; i++)
        {
            _clients[i] = new ClientWebSocket();
            await _clients[i].ConnectAsync(_server.WebSocketUri, CancellationToken.None);
            _receiveBuffers[i] = new byte[Math.Max(MessageSize, 16)];
        }
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        foreach (ClientWebSocket client in _clients)
        {
            await client.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
            client.Dispose();
        }

        await _server.DisposeAsync();
    }

    [Benchmark(OperationsPerInvoke = Clients * InFlight)]
    public Task Echo()
    {
        var tasks = new Task[Clients];
        for (int i = 0; i < Clients; i++)
        {
            tasks[i] = RunClientAsync(_clients[i], _receiveBuffers[i]);
        }

        return Task.WhenAll(tasks);
    }

    private async Task RunClientAsync(ClientWebSocket client, byte[] receiveBuffer)
    {
        Task<int> receiving = ReceiveAsync(client, receiveBuffer);
        for (int i = 0; i < InFlight; i++)
        {
            await client.SendAsync(_payload, WebSocketMessageType.Binary, true, CancellationToken.None);
        }

        int bytes = await receiving;
        if (bytes != InFlight * MessageSize)
        {
            throw new InvalidOperationException($"echoed {bytes} bytes, expected {InFlight * MessageSize}");
        }
    }

    private static async Task<int> ReceiveAsync(ClientWebSocket client, byte[] buffer)
    {
        int messages = 0;
        int bytes = 0;
        while (messages < InFlight)
        {
            ValueWebSocketReceiveResult result = await client.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
            bytes += result.Count;
            if (result.EndOfMessage)
            {
                messages++;
            }
        }

        return bytes;
    }
}
