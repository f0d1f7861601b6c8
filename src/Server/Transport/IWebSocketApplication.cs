using System.Buffers;

namespace Collab.Server.Transport;

/// <summary>
/// The one narrow seam between the socket and the protocol. The transport (handshake, RFC 6455
/// framing, limits, write coalescing) calls into the application; the application (sessions)
/// never sees a socket, a pipe or a frame header. Both sides are testable alone.
/// </summary>
public interface IWebSocketApplication
{
    /// <summary>
    /// Called once the upgrade request for <c>/ws</c> is parsed and valid, before the 101 response.
    /// Authentication happens here: a rejection is answered with a real HTTP status (e.g. 401),
    /// so a client never gets a half-open session.
    /// </summary>
    ValueTask<HandshakeDecision> OnHandshakeAsync(HandshakeRequest request, CancellationToken cancellationToken);

    /// <summary>Called once the 101 has been written. Returns the per-connection session.</summary>
    IWebSocketSession OnOpen(IWebSocketConnection connection, object? handshakeState);
}

/// <summary>The per-connection half of the seam.</summary>
public interface IWebSocketSession
{
    /// <summary>
    /// One complete message (fragments joined). The payload is only valid during the call; the
    /// transport reads the next message when the returned task completes (per-connection backpressure).
    /// </summary>
    ValueTask OnMessageAsync(ReadOnlySequence<byte> payload, bool isText);

    /// <summary>The connection has ended; called exactly once, with the one recorded reason.</summary>
    void OnClosed(ConnectionEndReason reason);
}
