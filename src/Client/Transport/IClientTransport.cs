using System.Buffers;
using System.Net.WebSockets;

namespace Collab.Client.Transport;

/// <summary>What a transport needs to open one connection.</summary>
internal readonly record struct TransportConnectRequest(
    Uri Uri,
    string? AccessToken,
    TokenDelivery TokenDelivery,
    string? SubProtocol,
    int MaxReceiveMessageBytes);

/// <summary>
/// Opens message-oriented connections. The SDK uses <see cref="WebSocketTransportFactory"/>; tests plug an
/// in-memory one and the load-test tool can plug a lighter one.
/// </summary>
internal interface IClientTransportFactory
{
    /// <summary>
    /// Opens a connection. Throws <see cref="TransportConnectException"/> when the server rejects the
    /// upgrade (with its HTTP status) and any other exception for network failures.
    /// </summary>
    ValueTask<IClientTransport> ConnectAsync(TransportConnectRequest request, CancellationToken cancellationToken);
}

/// <summary>
/// One open connection carrying whole binary messages. The SDK calls <see cref="SendAsync"/> from one
/// task at a time and <see cref="ReceiveAsync"/> from one (other) task at a time, as WebSocket allows.
/// </summary>
internal interface IClientTransport : IAsyncDisposable
{
    /// <summary>Sends one whole binary message.</summary>
    ValueTask SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken);

    /// <summary>
    /// Appends one whole message to <paramref name="destination"/>; returns <see langword="false"/> when the peer
    /// closed the connection (<see cref="CloseStatus"/> then tells how). Throws on transport failure, on a text
    /// message and on a message larger than the configured limit.
    /// </summary>
    ValueTask<bool> ReceiveAsync(IBufferWriter<byte> destination, CancellationToken cancellationToken);

    /// <summary>Starts or completes the close handshake.</summary>
    ValueTask CloseAsync(WebSocketCloseStatus status, string? description, CancellationToken cancellationToken);

    /// <summary>Tears the connection down at once; pending sends and receives fail.</summary>
    void Abort();

    /// <summary>The close code the peer sent, once it closed.</summary>
    WebSocketCloseStatus? CloseStatus { get; }

    /// <summary>The close reason text the peer sent, once it closed.</summary>
    string? CloseStatusDescription { get; }
}

/// <summary>The server answered the upgrade request with an HTTP error status.</summary>
internal sealed class TransportConnectException : Exception
{
    public TransportConnectException(int httpStatusCode, Exception? inner)
        : base($"The server rejected the WebSocket upgrade with HTTP {httpStatusCode}.", inner)
        => HttpStatusCode = httpStatusCode;

    public int HttpStatusCode { get; }
}
