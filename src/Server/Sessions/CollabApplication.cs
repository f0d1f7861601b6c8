using Collab.Server.Security;
using Collab.Server.Transport;

namespace Collab.Server.Sessions;

/// <summary>
/// The protocol side of the transport seam: accepts upgrades on /ws (negotiating the "collab.v1"
/// subprotocol when offered, never a <c>bearer.</c> one), after the per-address attempt limit and
/// authentication, and gives each connection a <see cref="ClientSession"/> acting for its principal.
/// </summary>
internal sealed class CollabApplication : IWebSocketApplication
{
    /// <summary>The subprotocol name a client may offer in Sec-WebSocket-Protocol.</summary>
    public const string SubProtocol = "collab.v1";

    private readonly SessionServices _services;

    public CollabApplication(SessionServices services) => _services = services;

    public async ValueTask<HandshakeDecision> OnHandshakeAsync(HandshakeRequest request, CancellationToken cancellationToken)
    {
        // Counted before the token is checked: validating signatures is the expensive part a flood would aim at.
        if (!_services.Security.ConnectionAttempts.TryAcquire(request.RemoteEndPoint, out int retryAfter))
        {
            return HandshakeDecision.Reject(429, "too many connection attempts from this address", retryAfter);
        }

        AuthResult auth = await _services.Security.Authenticator.AuthenticateAsync(request, cancellationToken).ConfigureAwait(false);
        if (!auth.Succeeded)
        {
            return HandshakeAuthenticator.Reject(auth);
        }

        string? chosen = null;
        foreach (string offered in request.SubProtocols)
        {
            if (string.Equals(offered, SubProtocol, StringComparison.Ordinal))
            {
                chosen = SubProtocol;
                break;
            }
        }

        // Hello first, within the handshake timeout (docs/PROTOCOL.md section 4.1).
        return HandshakeDecision.Accept(chosen, auth.Principal) with { RequireFirstMessage = true };
    }

    public IWebSocketSession OnOpen(IWebSocketConnection connection, object? handshakeState) =>
        new ClientSession(connection, _services, handshakeState as SessionPrincipal ?? throw new InvalidOperationException("A connection opened without a principal."));
}
