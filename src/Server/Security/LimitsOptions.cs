namespace Collab.Server.Security;

/// <summary>
/// Abuse limits (configuration section "Limits"). Rates are token buckets: a sustained rate per second
/// plus a burst. A rate of 0 disables that limit. Per-connection limits apply to every session; per-user
/// limits (summed over all of a user's connections on this node) only to authenticated users. Nothing
/// here is keyed by IP address except <see cref="ConnectionAttemptsPerIpPerMinute"/>, so users behind one
/// NAT never share a budget beyond that cap. Size and subscription caps live in the "Documents" section
/// (MaxOpBytes, MaxDocumentLength, MaxSubscriptionsPerConnection), the pending-handshake bound in
/// "Transport" (MaxPendingHandshakes).
/// </summary>
public sealed class LimitsOptions
{
    public const string Section = "Limits";

    /// <summary>Client messages of any kind per second on one connection.</summary>
    public double MessagesPerSecond { get; set; } = 200;

    /// <summary>Burst of client messages on one connection (covers resubscribing every document after a reconnect).</summary>
    public int MessageBurst { get; set; } = 2000;

    /// <summary>Submits per second on one connection.</summary>
    public double OpsPerSecond { get; set; } = 100;

    /// <summary>Burst of submits on one connection.</summary>
    public int OpsBurst { get; set; } = 200;

    /// <summary>Submits per second of one user over all their connections on this node.</summary>
    public double UserOpsPerSecond { get; set; } = 300;

    /// <summary>Burst of submits of one user.</summary>
    public int UserOpsBurst { get; set; } = 600;

    /// <summary>Presence updates per second on one connection.</summary>
    public double PresencePerSecond { get; set; } = 20;

    /// <summary>Burst of presence updates on one connection.</summary>
    public int PresenceBurst { get; set; } = 40;

    /// <summary>Presence updates per second of one user over all their connections on this node.</summary>
    public double UserPresencePerSecond { get; set; } = 60;

    /// <summary>Burst of presence updates of one user.</summary>
    public int UserPresenceBurst { get; set; } = 120;

    /// <summary>
    /// Requests refused for a limit (message or op rate, size, subscription cap) that a connection may accumulate
    /// within <see cref="ViolationWindow"/> before it is closed with 4008. Each refusal is first answered with an
    /// error (RATE_LIMITED is retryable), so a client that backs off never gets here. Dropped presence updates do
    /// not count (a presence flood runs into the message rate).
    /// </summary>
    public int ViolationsBeforeClose { get; set; } = 50;

    /// <summary>The window over which <see cref="ViolationsBeforeClose"/> counts (refusals older than this are forgiven).</summary>
    public TimeSpan ViolationWindow { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// WebSocket upgrade attempts per client address per minute (IPv6 counted per /64), answered 429 with
    /// Retry-After beyond it. Behind a reverse proxy every client has the proxy's address: raise or disable
    /// (0) this and limit at the proxy instead.
    /// </summary>
    public int ConnectionAttemptsPerIpPerMinute { get; set; } = 300;

    /// <summary>
    /// Loopback clients are not counted by <see cref="ConnectionAttemptsPerIpPerMinute"/>: they are local processes
    /// (a reverse proxy on the same host, through which every client appears as 127.0.0.1; tests; load generators).
    /// </summary>
    public bool ExemptLoopback { get; set; } = true;

    /// <summary>Addresses tracked by the per-address limiter at most; beyond it new addresses are let through untracked (fail open) and counted.</summary>
    public int MaxTrackedAddresses { get; set; } = 100_000;

    /// <summary>Throws <see cref="InvalidOperationException"/> listing every invalid setting.</summary>
    public void Validate()
    {
        var errors = new SettingErrors(Section, typeof(LimitsOptions));
        Rate(MessagesPerSecond, MessageBurst, nameof(MessagesPerSecond), nameof(MessageBurst), errors);
        Rate(OpsPerSecond, OpsBurst, nameof(OpsPerSecond), nameof(OpsBurst), errors);
        Rate(UserOpsPerSecond, UserOpsBurst, nameof(UserOpsPerSecond), nameof(UserOpsBurst), errors);
        Rate(PresencePerSecond, PresenceBurst, nameof(PresencePerSecond), nameof(PresenceBurst), errors);
        Rate(UserPresencePerSecond, UserPresenceBurst, nameof(UserPresencePerSecond), nameof(UserPresenceBurst), errors);
        errors.Positive(ViolationsBeforeClose, nameof(ViolationsBeforeClose));
        errors.Positive(ViolationWindow, nameof(ViolationWindow));
        errors.Positive(ConnectionAttemptsPerIpPerMinute, nameof(ConnectionAttemptsPerIpPerMinute), allowZero: true);
        errors.Positive(MaxTrackedAddresses, nameof(MaxTrackedAddresses));
        errors.ThrowIfAny();
    }

    private static void Rate(double perSecond, int burst, string rateName, string burstName, SettingErrors errors)
    {
        if (double.IsNaN(perSecond) || perSecond < 0)
        {
            errors.Add(rateName, $"must be zero (off) or positive (was {perSecond}).");
        }
        else if (perSecond > 0 && burst < 1)
        {
            errors.Add(burstName, $"must be at least 1 when {rateName} is set (was {burst}).");
        }
    }
}
