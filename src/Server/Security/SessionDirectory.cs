using System.Collections.Concurrent;

namespace Collab.Server.Security;

/// <summary>What the security layer needs of an authenticated session (implemented by the protocol session).</summary>
internal interface ISecuredSession
{
    long ConnectionId { get; }

    /// <summary>The principal in force (replaced on re-authentication).</summary>
    SessionPrincipal Principal { get; }

    /// <summary>UTC ticks of the next auth deadline (expiry warning or expiry); <see cref="long.MaxValue"/> for none.</summary>
    long NextAuthCheckUtcTicks { get; }

    /// <summary>Called when <see cref="NextAuthCheckUtcTicks"/> has passed: warn, or close with 4001.</summary>
    void OnAuthDeadline(DateTimeOffset now);

    /// <summary>The session's token or user was revoked: close at once (4001 for a token, 4003 for a user).</summary>
    void OnRevoked(RevocationKind kind);
}

/// <summary>
/// The authenticated sessions of this node, grouped by user: the shared per-user rate budgets live here,
/// revocations find the sessions to close here, and one timer (not one per session) walks the sessions
/// for token-expiry deadlines. Anonymous sessions are not tracked: they have no user, token or expiry.
/// </summary>
internal sealed class SessionDirectory : IDisposable
{
    private readonly ConcurrentDictionary<string, UserEntry> _users = new(StringComparer.Ordinal);
    private readonly LimitRates _rates;
    private readonly TimeProvider _time;
    private readonly RevocationList _revocations;
    private readonly SecurityLog _log;
    private readonly ITimer _timer;
    private readonly List<ISecuredSession> _due = [];
    private int _checking;

    public SessionDirectory(LimitRates rates, TimeProvider time, RevocationList revocations, SecurityLog log, TimeSpan deadlineResolution)
    {
        _rates = rates;
        _time = time;
        _revocations = revocations;
        _log = log;
        _revocations.Revoked += OnRevoked;
        _timer = time.CreateTimer(static state => ((SessionDirectory)state!).CheckDeadlines(), this, deadlineResolution, deadlineResolution);
    }

    /// <summary>Users with at least one session on this node.</summary>
    public int UserCount => _users.Count;

    /// <summary>
    /// Tracks an authenticated session and returns its user's shared budget. Afterwards re-checks the revocation
    /// list: a revocation that arrived while the handshake was in flight closes the session at once.
    /// </summary>
    public UserEntry Register(ISecuredSession session)
    {
        string userId = session.Principal.UserId ?? throw new ArgumentException("Anonymous sessions are not tracked.", nameof(session));
        UserEntry entry;
        while (true)
        {
            entry = _users.GetOrAdd(userId, static (_, state) => new UserEntry(state._rates, state._time.GetTimestamp()), this);
            lock (entry)
            {
                if (!entry.Removed)
                {
                    entry.Sessions.Add(session);
                    break;
                }
            }
        }

        if (_revocations.IsRevoked(session.Principal, out RevocationKind kind))
        {
            session.OnRevoked(kind);
        }

        return entry;
    }

    public void Unregister(ISecuredSession session, UserEntry entry)
    {
        lock (entry)
        {
            entry.Sessions.Remove(session);
            if (entry.Sessions.Count > 0)
            {
                return;
            }

            // Marked under the lock so a concurrent Register never adds to an entry that is leaving the table.
            entry.Removed = true;
        }

        _users.TryRemove(new KeyValuePair<string, UserEntry>(session.Principal.UserId!, entry));
    }

    public void Dispose()
    {
        _revocations.Revoked -= OnRevoked;
        _timer.Dispose();
    }

    /// <summary>Walks every session once; the due ones are called outside every lock.</summary>
    internal void CheckDeadlines()
    {
        // A slow walk (many sessions on a loaded box) must not overlap the next tick.
        if (Interlocked.Exchange(ref _checking, 1) != 0)
        {
            return;
        }

        try
        {
            DateTimeOffset now = _time.GetUtcNow();
            long nowTicks = now.UtcTicks;
            foreach (KeyValuePair<string, UserEntry> pair in _users)
            {
                lock (pair.Value)
                {
                    foreach (ISecuredSession session in pair.Value.Sessions)
                    {
                        if (session.NextAuthCheckUtcTicks <= nowTicks)
                        {
                            _due.Add(session);
                        }
                    }
                }
            }

            foreach (ISecuredSession session in _due)
            {
                session.OnAuthDeadline(now);
            }
        }
        finally
        {
            _due.Clear();
            Volatile.Write(ref _checking, 0);
        }
    }

    private void OnRevoked(RevocationEntry revoked)
    {
        var affected = new List<ISecuredSession>();
        if (revoked.Kind == RevocationKind.User)
        {
            if (_users.TryGetValue(revoked.Value, out UserEntry? entry))
            {
                lock (entry)
                {
                    affected.AddRange(entry.Sessions);
                }
            }
        }
        else
        {
            // Token revocations are rare; a walk beats keeping a second index in step with every re-authentication.
            foreach (KeyValuePair<string, UserEntry> pair in _users)
            {
                lock (pair.Value)
                {
                    foreach (ISecuredSession session in pair.Value.Sessions)
                    {
                        if (string.Equals(session.Principal.TokenId, revoked.Value, StringComparison.Ordinal))
                        {
                            affected.Add(session);
                        }
                    }
                }
            }
        }

        foreach (ISecuredSession session in affected)
        {
            session.OnRevoked(revoked.Kind);
        }

        _log.Revoked(revoked.Kind, revoked.Value, revoked.ExpiresAt, affected.Count);
    }
}

/// <summary>One user's sessions on this node and the rate budgets they share. Lock the entry to touch any field.</summary>
internal sealed class UserEntry
{
    private readonly LimitRates _rates;
    private TokenBucket _ops;
    private TokenBucket _presence;

    public UserEntry(LimitRates rates, long now)
    {
        _rates = rates;
        _ops = new TokenBucket(rates.UserOps, now);
        _presence = new TokenBucket(rates.UserPresence, now);
    }

    public HashSet<ISecuredSession> Sessions { get; } = [];

    public bool Removed { get; set; }

    public bool TryTakeOp(long now, long frequency)
    {
        lock (this)
        {
            return _ops.TryTake(_rates.UserOps, now, frequency);
        }
    }

    public bool TryTakePresence(long now, long frequency)
    {
        lock (this)
        {
            return _presence.TryTake(_rates.UserPresence, now, frequency);
        }
    }
}
