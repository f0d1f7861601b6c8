using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using BenchmarkDotNet.Attributes;

namespace Collab.Bench.Transport;

/// <summary>
/// End-to-end echo on loopback, our transport against ASP.NET Core's WebSocket middleware, with the same
/// clients, the same message sizes and the same load in the same run: 8 connections, each with 32
/// messages in flight. The time is per message, so messages/s = 1e9 / Mean(ns).
/// Two clients: .NET's ClientWebSocket (realistic, but its own cost dominates on a small machine since
/// it runs in the same process), and a raw-socket client that sends pre-masked frames in one write and
/// reads the echoes in bulk, so nearly all the CPU measured is the server's.
/// </summary>
[MemoryDiagnoser]
public class EchoBenchmarks
{
    public const string ClientWebSocketClient = "ClientWebSocket";
    public const string RawSocketClient = "RawSocket";

    private const int Clients = 8;
    private const int InFlight = 32;

    private BenchServer _server = null!;
    private IEchoClient[] _clients = Array.Empty<IEchoClient>();

    [Params(BenchServer.Collab, BenchServer.AspNetCore)]
    public string Server { get; set; } = BenchServer.Collab;

    [Params(ClientWebSocketClient, RawSocketClient)]
    public string Client { get; set; } = RawSocketClient;

    [Params(32, 1024, 16384)]
    public int MessageSize { get; set; }

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _server = await BenchServer.StartAsync(Server);
        var payload = new byte[MessageSize];
        new Random(42).NextBytes(payload);
        _clients = new IEchoClient[Clients];
        for (int i = 0; i < Clients; i++)
        {
            _clients[i] = Client == RawSocketClient
                ? await RawEchoClient.ConnectAsync(_server.Port, payload, InFlight)
                : await WebSocketEchoClient.ConnectAsync(_server.WebSocketUri, payload, InFlight);
        }
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        foreach (IEchoClient client in _clients)
        {
            await client.DisposeAsync();
        }

        await _server.DisposeAsync();
    }

    [Benchmark(OperationsPerInvoke = Clients * InFlight)]
    public Task Echo()
    {
        var tasks = new Task[Clients];
        for (int i = 0; i < Clients; i++)
        {
            tasks[i] = _clients[i].RoundTripAsync();
        }

        return Task.WhenAll(tasks);
    }

    private interface IEchoClient : IAsyncDisposable
    {
        /// <summary>Sends the batch of messages and waits for every echo.</summary>
        Task RoundTripAsync();
    }

    private sealed class WebSocketEchoClient : IEchoClient
    {
        private readonly ClientWebSocket _socket;
        private readonly byte[] _payload;
        private readonly byte[] _receiveBuffer;
        private readonly int _inFlight;

        private WebSocketEchoClient(ClientWebSocket socket, byte[] payload, int inFlight)
        {
            _socket = socket;
            _payload = payload;
            _inFlight = inFlight;
            _receiveBuffer = new byte[Math.Max(payload.Length, 16)];
        }

        public static async Task<IEchoClient> ConnectAsync(Uri uri, byte[] payload, int inFlight)
        {
            var socket = new ClientWebSocket();
            await socket.ConnectAsync(uri, CancellationToken.None);
            return new WebSocketEchoClient(socket, payload, inFlight);
        }

        public async Task RoundTripAsync()
        {
            Task receiving = ReceiveAsync();
            for (int i = 0; i < _inFlight; i++)
            {
                await _socket.SendAsync(_payload, WebSocketMessageType.Binary, true, CancellationToken.None);
            }

            await receiving;
        }

        public async ValueTask DisposeAsync()
        {
            await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
            _socket.Dispose();
        }

        private async Task ReceiveAsync()
        {
            int messages = 0;
            long bytes = 0;
            while (messages < _inFlight)
            {
                ValueWebSocketReceiveResult result = await _socket.ReceiveAsync(_receiveBuffer.AsMemory(), CancellationToken.None);
                bytes += result.Count;
                if (result.EndOfMessage)
                {
                    messages++;
                }
            }

            if (bytes != (long)_inFlight * _payload.Length)
            {
                throw new InvalidOperationException($"echoed {bytes} bytes, expected {_inFlight * _payload.Length}");
            }
        }
    }

    private sealed class RawEchoClient : IEchoClient
    {
        private readonly Socket _socket;
        private readonly byte[] _batch;
        private readonly byte[] _receiveBuffer;
        private readonly int _expected;

        private RawEchoClient(Socket socket, byte[] batch, int expected)
        {
            _socket = socket;
            _batch = batch;
            _expected = expected;
            _receiveBuffer = new byte[expected];
        }

        public static async Task<IEchoClient> ConnectAsync(int port, byte[] payload, int inFlight)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
            await socket.SendAsync(Encoding.ASCII.GetBytes(
                "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
            var head = new byte[1024];
            int read = 0;
            while (read < 4 || !head.AsSpan(0, read).EndsWith("\r\n\r\n"u8))
            {
                read += await socket.ReceiveAsync(head.AsMemory(read));
            }

            byte[] frame = MaskedFrame(payload);
            byte[] batch = new byte[frame.Length * inFlight];
            for (int i = 0; i < inFlight; i++)
            {
                frame.CopyTo(batch, i * frame.Length);
            }

            int serverFrame = (payload.Length <= 125 ? 2 : payload.Length <= ushort.MaxValue ? 4 : 10) + payload.Length;
            return new RawEchoClient(socket, batch, serverFrame * inFlight);
        }

        public async Task RoundTripAsync()
        {
            await _socket.SendAsync(_batch);
            int received = 0;
            while (received < _expected)
            {
                received += await _socket.ReceiveAsync(_receiveBuffer.AsMemory(received));
            }
        }

        public ValueTask DisposeAsync()
        {
            _socket.Dispose();
            return ValueTask.CompletedTask;
        }

        private static byte[] MaskedFrame(byte[] payload)
        {
            int lengthBytes = payload.Length <= 125 ? 0 : 2;
            var frame = new byte[2 + lengthBytes + 4 + payload.Length];
            frame[0] = 0x82;
            if (lengthBytes == 0)
            {
                frame[1] = (byte)(0x80 | payload.Length);
            }
            else
            {
                frame[1] = 0x80 | 126;
                BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), (ushort)payload.Length);
            }

            int maskAt = 2 + lengthBytes;
            BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(maskAt), 0x9A3C55E1);
            for (int i = 0; i < payload.Length; i++)
            {
                frame[maskAt + 4 + i] = (byte)(payload[i] ^ frame[maskAt + (i % 4)]);
            }

            return frame;
        }
    }
}
