namespace Collab.Server.Security;

/// <summary>Source-generated log messages of authentication, authorization and limits, with stable event ids (4000–4099).</summary>
internal sealed partial class SecurityLog
{
    private readonly ILogger _logger;

    public SecurityLog(ILogger logger) => _logger = logger;

    /// <summary>The logger behind these messages, for work started with <see cref="FireAndForget"/>.</summary>
    public ILogger Logger => _logger;

    [LoggerMessage(4000, LogLevel.Warning,
        "\n************************************************************************************\n" +
        "*  AUTHENTICATION IS DISABLED (Auth:Mode=Anonymous).                                *\n" +
        "*  Anyone who can reach this port can read and write EVERY document.               *\n" +
        "*  This is for local development only. In production set Auth:Mode=Jwt with         *\n" +
        "*  Auth:Issuers, Auth:Audiences and keys (see docs/SECURITY.md).                    *\n" +
        "************************************************************************************")]
    public partial void AnonymousMode();

    [LoggerMessage(4001, LogLevel.Information, "Authentication: JWT (issuers {Issuers}; audiences {Audiences}; algorithms {Algorithms}; rights claim '{RightsClaim}')")]
    public partial void JwtMode(string issuers, string audiences, string algorithms, string rightsClaim);

    [LoggerMessage(4002, LogLevel.Information, "Signing keys loaded: {Count} public keys from {Source}")]
    public partial void KeySetLoaded(int count, string source);

    [LoggerMessage(4003, LogLevel.Warning, "Signing keys could not be loaded from {Source}; the previous keys stay in force")]
    public partial void KeySetLoadFailed(string source, Exception exception);

    [LoggerMessage(4004, LogLevel.Debug, "A token names key id {KeyId}, which is not in the key set; reloading it")]
    public partial void UnknownKeyId(string keyId);

    [LoggerMessage(4005, LogLevel.Debug, "Token refused at {Stage} from {Remote}: {Reason} ({Detail})")]
    public partial void TokenRefused(AuthStage stage, string remote, AuthFailure reason, string detail);

    [LoggerMessage(4006, LogLevel.Information, "Connection {ConnectionId} (user {UserId}) closed: {Reason}")]
    public partial void SessionClosed(long connectionId, string? userId, string reason);

    [LoggerMessage(4007, LogLevel.Warning, "Revoked {Kind} '{Value}' until {ExpiresAt:O}; {Sessions} open sessions on this node closed")]
    public partial void Revoked(RevocationKind kind, string value, DateTimeOffset expiresAt, int sessions);

    [LoggerMessage(4008, LogLevel.Warning, "Admin request refused: {Reason}")]
    public partial void AdminRefused(string reason);

    [LoggerMessage(4009, LogLevel.Information, "Connection {ConnectionId} closed with 4008: over the {Limit} limit for too long")]
    public partial void LimitClose(long connectionId, LimitKind limit);

    [LoggerMessage(4010, LogLevel.Warning, "Revocation could not be published to the other nodes; it is in force on this node only")]
    public partial void RevocationPublishFailed(Exception exception);
}
