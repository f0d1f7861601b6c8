using System.Collections.Concurrent;

namespace Collab.Server.Security;

/// <summary>What a revocation names.</summary>
public enum RevocationKind
{
    /// <summary>One token, by its <c>jti</c>: its sessions are closed with 4001 and reconnect with a fresh token.</summary>
    TokenId = 0,

    /// <summary>Every token of one user, by <c>sub</c>: the sessions are closed with 4003 and not reconnected.</summary>
    User = 1,
}

/// <summary>A deny-list entry: in force on every node until <see cref="ExpiresAt"/>.</summary>
public sealed record RevocationEntry(RevocationKind Kind, string Value, DateTimeOffset ExpiresAt);

/// <summary>
/// Carries revocations to every node. <see cref="PublishAsync"/> must deliver the entry to the handlers of
/// every node, this one included (a node that joins later should receive the entries still in force, e.g.
/// from a stream whose retention is the longest entry TTL). Delivery may repeat an entry: the list is idempotent.
/// </summary>
public interface IRevocationBus
{
    /// <summary>Sends an entry to every node (this one included).</summary>
    ValueTask PublishAsync(RevocationEntry entry, CancellationToken cancellationToken);

    /// <summary>Registers the handler that receives every entry from every node.</summary>
    void Subscribe(Action<RevocationEntry> handler);
}

/// <summary>The bus of a single node: publishing delivers to this process's handlers at once.</summary>
public sealed class InProcessRevocationBus : IRevocationBus
{
    private readonly List<Action<RevocationEntry>> _handlers = [];
    private readonly Lock _gate = new();

    /// <inheritdoc />
    public ValueTask PublishAsync(RevocationEntry entry, CancellationToken cancellationToken)
    {
        Action<RevocationEntry>[] handlers;
        lock (_gate)
        {
            handlers = [.. _handlers];
        }

        foreach (Action<RevocationEntry> handler in handlers)
        {
            handler(entry);
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public void Subscribe(Action<RevocationEntry> handler)
    {
        lock (_gate)
        {
            _handlers.Add(handler);
        }
    }
}

/// <summary>
/// The deny list of this node: revoked token ids and users, each until its own expiry. Entries arrive from
/// the <see cref="IRevocationBus"/> (including this node's own); <see cref="Revoked"/> fires for each so the
/// sessions using them are closed at once. Lookups are lock-free dictionary reads on the handshake path.
/// </summary>
public sealed class RevocationList : IDisposable
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> _tokens = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _users = new(StringComparer.Ordinal);
    private readonly IRevocationBus _bus;
    private readonly TimeProvider _time;
    private readonly ITimer _sweeper;

    public RevocationList(IRevocationBus bus, TimeProvider time)
    {
        _bus = bus;
        _time = time;
        _bus.Subscribe(Apply);
        _sweeper = time.CreateTimer(static state => ((RevocationList)state!).Sweep(), this, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1));
    }

    /// <summary>Raised (on the delivering thread) for every entry applied, repeated deliveries included.</summary>
    public event Action<RevocationEntry>? Revoked;

    /// <summary>Entries in force (expired ones linger until the next sweep but never match).</summary>
    public int Count => _tokens.Count + _users.Count;

    /// <summary>Whether the principal's token or user is revoked now; <paramref name="kind"/> says which.</summary>
    public bool IsRevoked(SessionPrincipal principal, out RevocationKind kind)
    {
        DateTimeOffset now = _time.GetUtcNow();
        if (principal.UserId is { } user && _users.TryGetValue(user, out DateTimeOffset until) && until > now)
        {
            kind = RevocationKind.User;
            return true;
        }

        if (principal.TokenId is { } jti && _tokens.TryGetValue(jti, out until) && until > now)
        {
            kind = RevocationKind.TokenId;
            return true;
        }

        kind = default;
        return false;
    }

    /// <summary>Revokes on every node: applied here first (so this node refuses at once even if the bus is slow), then published.</summary>
    public async ValueTask RevokeAsync(RevocationEntry entry, CancellationToken cancellationToken)
    {
        Apply(entry);
        await _bus.PublishAsync(entry, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Adds an entry from any node. Idempotent: a repeated entry keeps the later expiry, and only an entry that
    /// adds or extends a revocation raises <see cref="Revoked"/> (this node's own entries come back over the bus).
    /// </summary>
    internal void Apply(RevocationEntry entry)
    {
        if (entry.ExpiresAt <= _time.GetUtcNow() || string.IsNullOrEmpty(entry.Value))
        {
            return;
        }

        ConcurrentDictionary<string, DateTimeOffset> map = entry.Kind == RevocationKind.User ? _users : _tokens;
        while (true)
        {
            if (map.TryGetValue(entry.Value, out DateTimeOffset existing))
            {
                if (existing >= entry.ExpiresAt)
                {
                    return;
                }

                if (map.TryUpdate(entry.Value, entry.ExpiresAt, existing))
                {
                    break;
                }
            }
            else if (map.TryAdd(entry.Value, entry.ExpiresAt))
            {
                break;
            }
        }

        SecurityMetrics.RevocationsActive.Set(Count);
        Revoked?.Invoke(entry);
    }

    /// <summary>Stops the sweep of expired entries.</summary>
    public void Dispose() => _sweeper.Dispose();

    internal void Sweep()
    {
        DateTimeOffset now = _time.GetUtcNow();
        foreach (ConcurrentDictionary<string, DateTimeOffset> map in (ReadOnlySpan<ConcurrentDictionary<string, DateTimeOffset>>)[_tokens, _users])
        {
            foreach (KeyValuePair<string, DateTimeOffset> entry in map)
            {
                if (entry.Value <= now)
                {
                    // Only removes the pair as read: an entry extended meanwhile stays.
                    map.TryRemove(entry);
                }
            }
        }

        SecurityMetrics.RevocationsActive.Set(Count);
    }
}
