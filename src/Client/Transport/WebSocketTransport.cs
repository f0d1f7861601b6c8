using System.Buffers;
using System.Net;
using System.Net.WebSockets;

namespace Collab.Client.Transport;

/// <summary>The production transport: <see cref="ClientWebSocket"/>.</summary>
internal sealed class WebSocketTransportFactory : IClientTransportFactory
{
    public static WebSocketTransportFactory Instance { get; } = new();

    // Receives are appended in chunks of this size: big enough for typical op batches in one read,
    // small enough not to waste memory per connection.
    private const int ReceiveChunkBytes = 16 * 1024;

    /// <summary>Prefix of the subprotocol that carries a token (docs/PROTOCOL.md, "Authentication").</summary>
    internal const string BearerSubProtocolPrefix = "bearer.";

    public async ValueTask<IClientTransport> ConnectAsync(TransportConnectRequest request, CancellationToken cancellationToken)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        // The SDK runs its own application-level Ping/Pong (it also proves the server's session loop is alive),
        // so the WebSocket-level keep-alive is off.
        socket.Options.KeepAliveInterval = TimeSpan.Zero;
        if (!string.IsNullOrEmpty(request.SubProtocol))
        {
            socket.Options.AddSubProtocol(request.SubProtocol);
        }

        Uri uri = request.Uri;
        if (request.AccessToken is { Length: > 0 } token)
        {
            switch (request.TokenDelivery)
            {
                case TokenDelivery.QueryParameter:
                    uri = AppendQuery(uri, "access_token", token);
                    break;
                case TokenDelivery.SubProtocol:
                    socket.Options.AddSubProtocol(BearerSubProtocolPrefix + token);
                    break;
                default:
                    socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
                    break;
            }
        }

        try
        {
            await socket.ConnectAsync(uri, cancellationToken).ConfigureAwait(false);
        }
        catch (WebSocketException ex) when (socket.HttpStatusCode != 0 && socket.HttpStatusCode != HttpStatusCode.SwitchingProtocols)
        {
            int status = (int)socket.HttpStatusCode;
            socket.Dispose();
            throw new TransportConnectException(status, ex);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new WebSocketTransport(socket, request.MaxReceiveMessageBytes);
    }

    internal static Uri AppendQuery(Uri uri, string name, string value)
    {
        var builder = new UriBuilder(uri);
        string pair = name + "=" + Uri.EscapeDataString(value);
        builder.Query = builder.Query.Length > 1 ? builder.Query[1..] + "&" + pair : pair;
        return builder.Uri;
    }

    private sealed class WebSocketTransport(ClientWebSocket socket, int maxMessageBytes) : IClientTransport
    {
        public WebSocketCloseStatus? CloseStatus => socket.CloseStatus;

        public string? CloseStatusDescription => socket.CloseStatusDescription;

        public ValueTask SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
            => socket.SendAsync(message, WebSocketMessageType.Binary, endOfMessage: true, cancellationToken);

        public async ValueTask<bool> ReceiveAsync(IBufferWriter<byte> destination, CancellationToken cancellationToken)
        {
            int total = 0;
            while (true)
            {
                Memory<byte> memory = destination.GetMemory(ReceiveChunkBytes);
                ValueWebSocketReceiveResult result = await socket.ReceiveAsync(memory, cancellationToken).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return false;
                }

                if (result.MessageType != WebSocketMessageType.Binary)
                {
                    ThrowHelper.ThrowProtocolViolation("The server sent a text message; the protocol uses binary messages only.");
                }

                total += result.Count;
                if (total > maxMessageBytes)
                {
                    ThrowHelper.ThrowMessageTooLarge(maxMessageBytes);
                }

                destination.Advance(result.Count);
                if (result.EndOfMessage)
                {
                    return true;
                }
            }
        }

        public async ValueTask CloseAsync(WebSocketCloseStatus status, string? description, CancellationToken cancellationToken)
        {
            if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                await socket.CloseOutputAsync(status, description, cancellationToken).ConfigureAwait(false);
            }
        }

        public void Abort() => socket.Abort();

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
