using System.Buffers;
using Collab.Engine.Text;
using Collab.Protocol.V1;
using Collab.Server.Tests.Security.Infrastructure;
using Collab.Server.Tests.Transport.Infrastructure;
using Google.Protobuf;

namespace Collab.Server.Tests.Protocol;

/// <summary>What the server sent next: a message, or its Close (with the code).</summary>
public readonly record struct Received(ServerMessage? Message, ushort? CloseCode);

/// <summary>
/// A protocol client written from docs/PROTOCOL.md over the raw WebSocket test client (not the SDK): it sends
/// exactly what a test tells it to, answers the server's pings, and reports every message and the Close as seen
/// on the wire.
/// </summary>
public sealed class WireClient : IAsyncDisposable
{
    private WireClient(RawWebSocketClient socket) => Socket = socket;

    public RawWebSocketClient Socket { get; }

    /// <summary>The Welcome of the Hello sent by <see cref="ConnectAsync"/> (null when it sent none).</summary>
    public Welcome? Welcome { get; private set; }

    /// <summary>Opens a WebSocket (with a bearer token when given) and, unless told not to, says Hello and waits for Welcome.</summary>
    public static async Task<WireClient> ConnectAsync(int port, string? token = null, bool hello = true)
    {
        RawWebSocketClient socket = await RawWebSocketClient.ConnectAsync(port, extraHeaders: token is null ? null : $"Authorization: Bearer {token}\r\n");
        var client = new WireClient(socket);
        if (hello)
        {
            await client.SendAsync(new ClientMessage { RequestId = 1, Hello = new Hello { ProtocolVersion = (uint)ProtocolVersion.Current } });
            client.Welcome = (await client.ReceiveAsync(ServerMessage.BodyOneofCase.Welcome)).Welcome;
        }

        return client;
    }

    public Task SendAsync(ClientMessage message) => Socket.SendBinaryAsync(message.ToByteArray());

    /// <summary>The next message or the Close; pings are answered on the way.</summary>
    public async Task<Received> ReceiveAsync(TimeSpan? timeout = null)
    {
        while (true)
        {
            RawFrame frame = await Socket.ReceiveFrameAsync(timeout);
            switch (frame.Opcode)
            {
                case 0x9:
                    await Socket.SendFrameAsync(0xA, frame.Payload);
                    continue;
                case 0x8:
                    return new Received(null, frame.CloseCode);
                case 0x2:
                    return new Received(ServerMessage.Parser.ParseFrom(frame.Payload), null);
                default:
                    throw new InvalidDataException($"Unexpected frame opcode {frame.Opcode} from the server.");
            }
        }
    }

    /// <summary>Skips to the next message of <paramref name="kind"/>; throws if the server closes first.</summary>
    public async Task<ServerMessage> ReceiveAsync(ServerMessage.BodyOneofCase kind)
    {
        while (true)
        {
            Received received = await ReceiveAsync();
            if (received.CloseCode is { } code)
            {
                throw new InvalidOperationException($"The server closed with {code} while a {kind} was expected.");
            }

            if (received.Message!.BodyCase == kind)
            {
                return received.Message;
            }
        }
    }

    /// <summary>Reads until the server's Close; the messages before it are added to <paramref name="before"/>.</summary>
    public async Task<ushort> ReceiveCloseAsync(List<ServerMessage>? before = null, TimeSpan? timeout = null)
    {
        while (true)
        {
            Received received = await ReceiveAsync(timeout);
            if (received.CloseCode is { } code)
            {
                return code;
            }

            before?.Add(received.Message!);
        }
    }

    /// <summary>Subscribes with a snapshot and returns it.</summary>
    public async Task<Snapshot> OpenAsync(string docId)
    {
        await SendAsync(new ClientMessage { RequestId = 2, Subscribe = new Subscribe { DocId = docId, Snapshot = true } });
        return (await ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot)).Snapshot;
    }

    /// <summary>Proves the connection open: a Ping answered by its Pong (other messages are skipped).</summary>
    public async Task PingAsync(ulong nonce = 7)
    {
        await SendAsync(new ClientMessage { Ping = new Ping { Nonce = nonce } });
        while ((await ReceiveAsync(ServerMessage.BodyOneofCase.Pong)).Pong.Nonce != nonce)
        {
        }
    }

    /// <summary>
    /// A server whose message rate is 1/s (burst 2) and that closes after 3 refusals, flooded with Pings by one client:
    /// the scenario of both the rate limit (section 11) and close code 4008 (section 10). Returns what the client got
    /// before the close, and the close code.
    /// </summary>
    public static async Task<(List<ServerMessage> Before, ushort Close)> FloodPastTheMessageRateAsync(string rateSetting = "Limits:MessagesPerSecond")
    {
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>
        {
            [rateSetting] = "1",
            ["Limits:MessageBurst"] = "2",
            ["Limits:ViolationsBeforeClose"] = "3",
            ["Limits:ViolationWindow"] = "00:01:00",
        });
        await using WireClient client = await ConnectAsync(server.Port);
        for (int i = 0; i < 10; i++)
        {
            await client.SendAsync(new ClientMessage { Ping = new Ping { Nonce = (ulong)i } });
        }

        var before = new List<ServerMessage>();
        ushort close = await client.ReceiveCloseAsync(before);
        return (before, close);
    }

    public static ClientMessage Submit(string docId, ulong clientSeq, long baseVersion, TextOp op)
    {
        var buffer = new ArrayBufferWriter<byte>();
        TextOpCodec.Encode(op, buffer);
        return new ClientMessage { Submit = new Submit { DocId = docId, ClientSeq = clientSeq, BaseVersion = baseVersion, Op = ByteString.CopyFrom(buffer.WrittenSpan) } };
    }

    public ValueTask DisposeAsync() => Socket.DisposeAsync();
}
