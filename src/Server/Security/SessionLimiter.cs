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
/// The rate budgets of one connection, plus its user's shared ones. Each check answers which limit refused
/// (null when allowed). Refusals are "violations": a connection that keeps collecting them faster than the
/// violation budget refills is closed (4008); one that backs off after the retryable error never is.
/// </summary>
internal sealed class SessionLimiter
{
    private readonly LimitRates _rates;
    private readonly UserEntry? _user;
    private readonly TimeProvider _time;
    private readonly Lock _violationGate = new();
    private TokenBucket _messages;
    private TokenBucket _ops;
    private TokenBucket _presence;
    private TokenBucket _violations;
    private bool _presenceThrottled;

    public SessionLimiter(LimitRates rates, UserEntry? user, TimeProvider time)
    {
        _rates = rates;
        _user = user;
        _time = time;
        long now = time.GetTimestamp();
        _messages = new TokenBucket(rates.Messages, now);
        _ops = new TokenBucket(rates.Ops, now);
        _presence = new TokenBucket(rates.Presence, now);
        _violations = new TokenBucket(rates.Violations, now);
    }

    /// <summary>Any client message (the connection's message loop only).</summary>
    public LimitKind? TryMessage() =>
        _messages.TryTake(_rates.Messages, _time.GetTimestamp(), _time.TimestampFrequency) ? null : LimitKind.Messages;

    /// <summary>A submit: the connection's budget, then the user's (the message loop only).</summary>
    public LimitKind? TryOp()
    {
        long now = _time.GetTimestamp();
        if (!_ops.TryTake(_rates.Ops, now, _time.TimestampFrequency))
        {
            return LimitKind.OpsConnection;
        }

        return _user is null || _user.TryTakeOp(now, _time.TimestampFrequency) ? null : LimitKind.OpsUser;
    }

    /// <summary>
    /// A presence update (the message loop only). <paramref name="firstInStreak"/> is true for the first refusal
    /// after an accepted update: presence is not retried, so only that one is worth an error frame.
    /// </summary>
    public LimitKind? TryPresence(out bool firstInStreak)
    {
        long now = _time.GetTimestamp();
        LimitKind? refused = !_presence.TryTake(_rates.Presence, now, _time.TimestampFrequency)
            ? LimitKind.PresenceConnection
            : _user is null || _user.TryTakePresence(now, _time.TimestampFrequency) ? null : LimitKind.PresenceUser;
        firstInStreak = refused is not null && !_presenceThrottled;
        _presenceThrottled = refused is not null;
        return refused;
    }

    /// <summary>Counts a refusal; true when the connection has persisted over its limits and must be closed (any thread).</summary>
    public bool RecordViolation()
    {
        lock (_violationGate)
        {
            return !_violations.TryTake(_rates.Violations, _time.GetTimestamp(), _time.TimestampFrequency);
        }
    }
}
