using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Collab.Server.Storage;

namespace Collab.Server.Sessions;

/// <summary>
/// Client ids the server issues and recognises (docs/PROTOCOL.md §6, decision P4). An id is 32 characters of base64url:
/// 96 random bits, then 96 bits of HMAC-SHA256 over those bits and the user the id was issued to (empty on an anonymous
/// server), keyed with a secret kept in the op store (<see cref="IOpStore.GetOrCreateSecretAsync"/>), so restarts and every
/// node of a cluster recognise the same ids. Deduplication is keyed on the client id: a Hello with an id this deployment
/// did not issue to that user (made up, another user's, from before ids were signed) gets a fresh one, so nobody can
/// claim, and poison, another client's dedupe state.
/// </summary>
internal sealed class ClientIdIssuer
{
    /// <summary>Name of the key in the op store's secrets.</summary>
    public const string SecretName = "client-ids";

    /// <summary>Length of an issued id.</summary>
    public const int Length = 32;

    private const int KeyBytes = 32;
    private const int RandomBytes = 12;
    private const int MacBytes = 12;
    private const int RandomChars = RandomBytes / 3 * 4;

    private readonly IOpStore? _store;
    private readonly Lock _gate = new();
    private Task<byte[]>? _loading;
    private byte[]? _key;

    /// <summary>An issuer whose key is read from (or created in) <paramref name="store"/> on first use.</summary>
    public ClientIdIssuer(IOpStore store) => _store = store;

    /// <summary>An issuer with a fixed key (tests).</summary>
    public ClientIdIssuer(byte[] key)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(key.Length, 16);
        _key = key;
    }

    /// <summary>The key is loaded: <see cref="Issue"/> and <see cref="IsIssued"/> can be called.</summary>
    public bool IsReady => Volatile.Read(ref _key) is not null;

    /// <summary>Loads the key once; a failed load (storage down) is tried again by the next caller.</summary>
    public async ValueTask EnsureReadyAsync(CancellationToken cancellationToken)
    {
        if (IsReady)
        {
            return;
        }

        Task<byte[]> loading;
        lock (_gate)
        {
            loading = _loading ??= _store!.GetOrCreateSecretAsync(SecretName, KeyBytes, CancellationToken.None).AsTask();
        }

        try
        {
            byte[] key = await loading.WaitAsync(cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _key, key);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            lock (_gate)
            {
                if (ReferenceEquals(_loading, loading))
                {
                    _loading = null;
                }
            }

            throw;
        }
    }

    /// <summary>A fresh id for <paramref name="userId"/> (null: anonymous).</summary>
    public string Issue(string? userId)
    {
        Span<byte> random = stackalloc byte[RandomBytes];
        RandomNumberGenerator.Fill(random);
        Span<byte> mac = stackalloc byte[MacBytes];
        ComputeMac(random, userId, mac);
        Span<char> id = stackalloc char[Length];
        Base64Url.EncodeToChars(random, id);
        Base64Url.EncodeToChars(mac, id[RandomChars..]);
        return new string(id);
    }

    /// <summary>Whether this deployment issued <paramref name="clientId"/> to <paramref name="userId"/> (null: anonymous). Constant time in the MAC.</summary>
    public bool IsIssued(string clientId, string? userId)
    {
        if (clientId.Length != Length)
        {
            return false;
        }

        Span<byte> random = stackalloc byte[RandomBytes];
        Span<byte> claimed = stackalloc byte[MacBytes];
        if (!Base64Url.TryDecodeFromChars(clientId.AsSpan(0, RandomChars), random, out int randomLength) || randomLength != RandomBytes
            || !Base64Url.TryDecodeFromChars(clientId.AsSpan(RandomChars), claimed, out int macLength) || macLength != MacBytes)
        {
            return false;
        }

        Span<byte> expected = stackalloc byte[MacBytes];
        ComputeMac(random, userId, expected);
        return CryptographicOperations.FixedTimeEquals(expected, claimed);
    }

    private void ComputeMac(ReadOnlySpan<byte> random, string? userId, Span<byte> destination)
    {
        byte[] key = Volatile.Read(ref _key) ?? throw new InvalidOperationException("The client-id key is not loaded yet.");
        int userBytes = Encoding.UTF8.GetByteCount(userId ?? string.Empty);
        byte[] input = new byte[RandomBytes + userBytes];
        random.CopyTo(input);
        Encoding.UTF8.GetBytes(userId ?? string.Empty, input.AsSpan(RandomBytes));
        Span<byte> hash = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(key, input, hash);
        hash[..MacBytes].CopyTo(destination);
    }
}

/// <summary>
/// The live session of each client id on this node. A second connection that says Hello with a client id takes the
/// session over: the older connection is closed with 4009 "session replaced" (docs/PROTOCOL.md §10), so one client id
/// never has two connections submitting under it. In a cluster the claim is also published to the other nodes
/// (<see cref="Claimed"/>), which close theirs (<see cref="ReplacedElsewhere"/>).
/// </summary>
internal sealed class LiveClients
{
    private readonly ConcurrentDictionary<string, ClientSession> _sessions = new(StringComparer.Ordinal);

    /// <summary>Called with a resumed client id after a local session claimed it (the cluster tells the other nodes). Null on a single node.</summary>
    public Action<string>? Claimed { get; set; }

    public int Count => _sessions.Count;

    /// <summary>Makes <paramref name="session"/> the live session of <paramref name="clientId"/>; the one it replaces (if any) is closed with 4009.</summary>
    public void Claim(string clientId, ClientSession session, bool resumed)
    {
        ClientSession? previous = null;
        _sessions.AddOrUpdate(clientId, session, (_, existing) =>
        {
            previous = existing;
            return session;
        });

        if (previous is not null && !ReferenceEquals(previous, session))
        {
            SessionMetrics.SessionsReplaced.WithLabels("local").Inc();
            previous.OnReplaced();
        }

        if (resumed)
        {
            Claimed?.Invoke(clientId);
        }
    }

    /// <summary>The session ended: forget it, unless another one took the id over already.</summary>
    public void Release(string clientId, ClientSession session) => _sessions.TryRemove(KeyValuePair.Create(clientId, session));

    /// <summary>Another node's connection claimed <paramref name="clientId"/>: the local one, if any, is replaced.</summary>
    public void ReplacedElsewhere(string clientId)
    {
        if (_sessions.TryRemove(clientId, out ClientSession? session))
        {
            SessionMetrics.SessionsReplaced.WithLabels("remote").Inc();
            session.OnReplaced();
        }
    }
}
