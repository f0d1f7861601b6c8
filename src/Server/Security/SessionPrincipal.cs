using System.Security.Cryptography;
using System.Text;

namespace Collab.Server.Security;

/// <summary>
/// Who a session acts for: the token's subject (recorded as the author of every op), its id (for
/// revocation), when it expires, and its document rights. Immutable: a re-authentication replaces it.
/// </summary>
public sealed class SessionPrincipal
{
    /// <summary>Length of the user tag that binds client ids to users (base64url of 66 bits of SHA-256).</summary>
    public const int UserTagLength = 11;

    private SessionPrincipal(string? userId, string? tokenId, DateTimeOffset? expiresAt, DocumentRights rights)
    {
        UserId = userId;
        TokenId = tokenId;
        ExpiresAt = expiresAt;
        Rights = rights;
        UserTag = userId is null ? null : ComputeUserTag(userId);
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

    /// <summary>
    /// A short digest of <see cref="UserId"/> that every client id of this user ends with (after '_'), so one user
    /// cannot resume, and so poison the deduplication state of, another user's client id (docs/SECURITY.md).
    /// </summary>
    public string? UserTag { get; }

    /// <summary>The principal of a validated token.</summary>
    public static SessionPrincipal ForUser(string userId, string? tokenId, DateTimeOffset expiresAt, DocumentRights rights)
    {
        ArgumentException.ThrowIfNullOrEmpty(userId);
        return new SessionPrincipal(userId, tokenId, expiresAt, rights);
    }

    /// <summary>Whether a client id was issued to this principal's user (always true when anonymous).</summary>
    public bool OwnsClientId(string clientId) =>
        UserTag is null
        || (clientId.Length > UserTagLength + 1
            && clientId[^(UserTagLength + 1)] == '_'
            && clientId.EndsWith(UserTag, StringComparison.Ordinal));

    /// <summary>A fresh client id for this principal: random, and bound to the user when there is one.</summary>
    public string NewClientId()
    {
        string random = Sessions.ClientId.New();
        return UserTag is null ? random : random + "_" + UserTag;
    }

    private static string ComputeUserTag(string userId)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(userId), hash);
        string encoded = Convert.ToBase64String(hash[..9]);
        return encoded.Replace('+', '-').Replace('/', '_')[..UserTagLength];
    }
}
