namespace Collab.Server.Security;

/// <summary><see cref="LimitsOptions"/> turned into token-bucket rates once at start-up.</summary>
internal sealed class LimitRates
{
    public LimitRates(LimitsOptions options)
    {
        Messages = new RateLimit(options.MessagesPerSecond, options.MessageBurst);
        Ops = new RateLimit(options.OpsPerSecond, options.OpsBurst);
        UserOps = new RateLimit(options.UserOpsPerSecond, options.UserOpsBurst);
        Presence = new RateLimit(options.PresencePerSecond, options.PresenceBurst);
        UserPresence = new RateLimit(options.UserPresencePerSecond, options.UserPresenceBurst);
        Violations = new RateLimit(options.ViolationsBeforeClose / options.ViolationWindow.TotalSeconds, options.ViolationsBeforeClose);
    }

    public RateLimit Messages { get; }

    public RateLimit Ops { get; }

    public RateLimit UserOps { get; }

    public RateLimit Presence { get; }

    public RateLimit UserPresence { get; }

    /// <summary>Refusals a connection may collect: a bucket of ViolationsBeforeClose that refills over ViolationWindow.</summary>
    public RateLimit Violations { get; }
}

/// <summary>
/// The rate budgets of one connection; its user's shared ones are checked through the <see cref="UserEntry"/> passed
/// in. Each check answers which limit refused (null when allowed). Refusals are "violations": a connection that
/// keeps collecting them faster than the violation budget refills is closed (4008); one that backs off after the
/// retryable error never is. A mutable struct held in a field of its session (no object, no lock of its own per
/// connection): the message checks run on the connection's message loop only, and the owner serializes
/// <see cref="RecordViolation"/>, which may come from any thread.
/// </summary>
internal struct SessionLimiter
{
    private TokenBucket _messages;
    private TokenBucket _ops;
    private TokenBucket _presence;
    private TokenBucket _violations;
    private bool _presenceThrottled;

    /// <summary>Full budgets as of <paramref name="now"/> (a <see cref="TimeProvider.GetTimestamp"/> value).</summary>
    public SessionLimiter(LimitRates rates, long now)
    {
        _messages = new TokenBucket(rates.Messages, now);
        _ops = new TokenBucket(rates.Ops, now);
        _presence = new TokenBucket(rates.Presence, now);
        _violations = new TokenBucket(rates.Violations, now);
    }

    /// <summary>Any client message (the connection's message loop only).</summary>
    public LimitKind? TryMessage(LimitRates rates, TimeProvider time) =>
        _messages.TryTake(rates.Messages, time.GetTimestamp(), time.TimestampFrequency) ? null : LimitKind.Messages;

    /// <summary>A submit: the connection's budget, then the user's (the message loop only).</summary>
    public LimitKind? TryOp(LimitRates rates, UserEntry? user, TimeProvider time)
    {
        long now = time.GetTimestamp();
        if (!_ops.TryTake(rates.Ops, now, time.TimestampFrequency))
        {
            return LimitKind.OpsConnection;
        }

        return user is null || user.TryTakeOp(now, time.TimestampFrequency) ? null : LimitKind.OpsUser;
    }

    /// <summary>
    /// A presence update (the message loop only). <paramref name="firstInStreak"/> is true for the first refusal
    /// after an accepted update: presence is not retried, so only that one is worth an error frame.
    /// </summary>
    public LimitKind? TryPresence(LimitRates rates, UserEntry? user, TimeProvider time, out bool firstInStreak)
    {
        long now = time.GetTimestamp();
        LimitKind? refused = !_presence.TryTake(rates.Presence, now, time.TimestampFrequency)
            ? LimitKind.PresenceConnection
            : user is null || user.TryTakePresence(now, time.TimestampFrequency) ? null : LimitKind.PresenceUser;
        firstInStreak = refused is not null && !_presenceThrottled;
        _presenceThrottled = refused is not null;
        return refused;
    }

    /// <summary>
    /// Counts a refusal; true when the connection has persisted over its limits and must be closed. Any thread,
    /// but one at a time: the caller holds its session's lock.
    /// </summary>
    public bool RecordViolation(LimitRates rates, TimeProvider time) =>
        !_violations.TryTake(rates.Violations, time.GetTimestamp(), time.TimestampFrequency);
}
