namespace Collab.Server.Security;

/// <summary>
/// Who a session acts for: the token's subject (recorded as the author of every op), its id (for
/// revocation), when it expires, and its document rights. Immutable: a re-authentication replaces it.
/// </summary>
public sealed class SessionPrincipal
{
    private SessionPrincipal(string? userId, string? tokenId, DateTimeOffset? expiresAt, DocumentRights rights)
    {
        UserId = userId;
        TokenId = tokenId;
        ExpiresAt = expiresAt;
        Rights = rights;
    }

    /// <summary>The principal of every session on an anonymous server: no user, every right, no expiry.</summary>
    public static SessionPrincipal Anonymous { get; } = new(null, null, null, DocumentRights.All);

    /// <summary>The token's <c>sub</c>; null only in anonymous mode.</summary>
    public string? UserId { get; }

    /// <summary>The token's <c>jti</c>, if it has one (only tokens with one can be revoked individually).</summary>
    public string? TokenId { get; }

    /// <summary>The token's <c>exp</c>; null in anonymous mode.</summary>
    public DateTimeOffset? ExpiresAt { get; }

    /// <summary>What the token allows with documents (everything when anonymous).</summary>
    public DocumentRights Rights { get; }

    /// <summary>True on an anonymous server: no user, no token.</summary>
    public bool IsAnonymous => UserId is null;

    /// <summary>The principal of a validated token.</summary>
    public static SessionPrincipal ForUser(string userId, string? tokenId, DateTimeOffset expiresAt, DocumentRights rights)
    {
        ArgumentException.ThrowIfNullOrEmpty(userId);
        return new SessionPrincipal(userId, tokenId, expiresAt, rights);
    }
}
