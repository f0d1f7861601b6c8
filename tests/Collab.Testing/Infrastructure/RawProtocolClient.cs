using System.Net.WebSockets;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Integration.Tests.Infrastructure;

/// <summary>
/// A bare protocol client (ClientWebSocket + protobuf envelopes, no SDK logic) for tests that must send
/// exactly the bytes they mean, including wrong ones, and read exactly what the server answers.
/// </summary>
public sealed class RawProtocolClient : IAsyncDisposable
{
    private readonly ClientWebSocket _socket = new();
    private readonly byte[] _buffer = new byte[1 << 20];

    public string ClientId { get; private set; } = string.Empty;

    /// <summary>Welcome.resumed of the handshake.</summary>
    public bool Resumed { get; private set; }

    public WebSocketState State => _socket.State;

    public WebSocketCloseStatus? CloseStatus => _socket.CloseStatus;

    public static async Task<RawProtocolClient> ConnectAsync(Uri uri, bool hello = true, string? bearerToken = null, string? clientId = null)
    {
        var client = new RawProtocolClient();
        if (bearerToken is not null)
        {
            client._socket.Options.SetRequestHeader("Authorization", "Bearer " + bearerToken);
        }

        await client._socket.ConnectAsync(uri, Timeout());
        if (hello)
        {
            await client.SendAsync(new ClientMessage { Hello = new Hello { ProtocolVersion = 1, ClientId = clientId ?? string.Empty } });
            ServerMessage welcome = await client.ReceiveAsync();
            client.ClientId = welcome.Welcome.ClientId;
            client.Resumed = welcome.Welcome.Resumed;
        }

        return client;
    }

    public Task SendAsync(ClientMessage message) => SendBytesAsync(message.ToByteArray());

    public async Task SendBytesAsync(byte[] bytes, WebSocketMessageType type = WebSocketMessageType.Binary) =>
        await _socket.SendAsync(bytes, type, endOfMessage: true, Timeout());

    /// <summary>The next server message; throws if the server closes instead.</summary>
    public async Task<ServerMessage> ReceiveAsync()
    {
        int length = 0;
        while (true)
        {
            ValueWebSocketReceiveResult result = await _socket.ReceiveAsync(_buffer.AsMemory(length), Timeout());
            if (result.MessageType == WebSocketMessageType.Close)
            {
                throw new WebSocketException($"The server closed the connection: {_socket.CloseStatus} {_socket.CloseStatusDescription}");
            }

            length += result.Count;
            if (result.EndOfMessage)
            {
                return ServerMessage.Parser.ParseFrom(_buffer, 0, length);
            }
        }
    }

    /// <summary>Reads until a message of the wanted kind arrives (skipping presence and the like).</summary>
    public async Task<ServerMessage> ReceiveAsync(ServerMessage.BodyOneofCase kind)
    {
        while (true)
        {
            ServerMessage message = await ReceiveAsync();
            if (message.BodyCase == kind)
            {
                return message;
            }
        }
    }

    /// <summary>Waits for the server's close frame and returns its status.</summary>
    public async Task<WebSocketCloseStatus?> ReceiveCloseAsync()
    {
        while (true)
        {
            ValueWebSocketReceiveResult result;
            try
            {
                result = await _socket.ReceiveAsync(_buffer.AsMemory(), Timeout());
            }
            catch (WebSocketException)
            {
                return _socket.CloseStatus;
            }

            if (result.MessageType == WebSocketMessageType.Close)
            {
                return _socket.CloseStatus;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_socket.State == WebSocketState.Open)
        {
            try
            {
                await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Timeout());
            }
            catch (WebSocketException)
            {
            }
            catch (OperationCanceledException)
            {
            }
        }

        _socket.Dispose();
    }

    private static CancellationToken Timeout() => new CancellationTokenSource(TimeSpan.FromSeconds(15)).Token;
}
