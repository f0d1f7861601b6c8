namespace Collab.Server.Security;

/// <summary>WebSocket close codes of the Collab protocol that the security layer sends (docs/PROTOCOL.md, section 10).</summary>
internal static class SecurityCloseCodes
{
    /// <summary>The token expired (or was revoked) without a valid Reauthenticate: the client reconnects at once with a fresh token.</summary>
    public const ushort AuthExpired = 4001;

    /// <summary>The user lost access to the endpoint (revoked, or a connection tried to change its user): the client does not reconnect.</summary>
    public const ushort Forbidden = 4003;

    /// <summary>The connection stayed over a limit after RATE_LIMITED errors: the client reconnects after a backoff.</summary>
    public const ushort RateLimited = 4008;
}
