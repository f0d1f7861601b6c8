using Collab.Server.Transport;

namespace Collab.Server.Sessions;

/// <summary>
/// The protocol side of the transport seam: accepts upgrades on /ws (negotiating the "collab.v1"
/// subprotocol when offered) and gives each connection a <see cref="ClientSession"/>.
/// </summary>
internal sealed class CollabApplication : IWebSocketApplication
{
    /// <summary>The subprotocol name a client may offer in Sec-WebSocket-Protocol.</summary>
    public const string SubProtocol = "collab.v1";

    private readonly SessionServices _services;

    public CollabApplication(SessionServices services) => _services = services;

    public ValueTask<HandshakeDecision> OnHandshakeAsync(HandshakeRequest request, CancellationToken cancellationToken)
    {
        string? chosen = null;
        foreach (string offered in request.SubProtocols)
        {
            if (string.Equals(offered, SubProtocol, StringComparison.Ordinal))
            {
                chosen = SubProtocol;
                break;
            }
        }

        return ValueTask.FromResult(HandshakeDecision.Accept(chosen));
    }

    public IWebSocketSession OnOpen(IWebSocketConnection connection, object? handshakeState) =>
        new ClientSession(connection, _services, handshakeState as string);
}
