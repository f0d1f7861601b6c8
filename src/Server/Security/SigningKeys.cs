using Microsoft.IdentityModel.Tokens;

namespace Collab.Server.Security;

/// <summary>
/// The keys tokens may be signed with: the HS256 shared secret, and/or the public keys of a JSON Web Key
/// Set read from a file or an https endpoint. The key set is loaded at start, reloaded periodically, and
/// reloaded early when a token names a key id not in it (issuer key rotation), at most once per
/// <see cref="AuthOptions.JwksMinRefreshInterval"/>. A failed reload keeps the previous keys.
/// </summary>
internal sealed class SigningKeys : IDisposable
{
    /// <summary>Largest key set document read (a real one is a few KiB).</summary>
    internal const int MaxKeySetBytes = 1024 * 1024;

    private readonly AuthOptions _options;
    private readonly TimeProvider _time;
    private readonly SecurityLog _log;
    private readonly SymmetricSecurityKey? _sharedKey;
    private readonly HttpClient? _http;
    private readonly SemaphoreSlim _loadGate = new(1, 1);
    private ITimer? _refreshTimer;
    private volatile KeySnapshot _current;
    private long _lastLoadTimestamp;
    private int _disposed;

    public SigningKeys(AuthOptions options, TimeProvider time, SecurityLog log, HttpMessageHandler? httpHandler = null)
    {
        _options = options;
        _time = time;
        _log = log;
        if (options.SigningKeyBytes() is { } secret)
        {
            _sharedKey = new SymmetricSecurityKey(secret);
        }

        if (!string.IsNullOrEmpty(options.JwksUrl))
        {
            _http = new HttpClient(httpHandler ?? new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }, disposeHandler: true)
            {
                Timeout = TimeSpan.FromSeconds(10),
                MaxResponseContentBufferSize = MaxKeySetBytes,
            };
        }

        _current = new KeySnapshot(_sharedKey is null ? [] : [_sharedKey], Version: 0, Loaded: !options.HasKeySet);
    }

    /// <summary>The keys in force; replaced as a whole on every reload.</summary>
    public KeySnapshot Current => _current;

    /// <summary>False while a configured key set has never loaded (every token is refused then; /readyz says so).</summary>
    public bool IsReady => _current.Loaded;

    /// <summary>Loads the key set once and starts the periodic reload. Does not throw: a failed first load is logged and retried.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!_options.HasKeySet)
        {
            return;
        }

        await ReloadAsync(cancellationToken).ConfigureAwait(false);
        _refreshTimer = _time.CreateTimer(
            static state => ((SigningKeys)state!).ReloadOnTimer(),
            this,
            _options.JwksRefreshInterval,
            _options.JwksRefreshInterval);
    }

    /// <summary>
    /// Called when a token names key id <paramref name="keyId"/> that <see cref="Current"/> lacks: reloads the key set
    /// unless that happened within <see cref="AuthOptions.JwksMinRefreshInterval"/>. True when the keys changed.
    /// </summary>
    public async ValueTask<bool> RefreshForUnknownKeyAsync(string keyId, CancellationToken cancellationToken)
    {
        if (!_options.HasKeySet)
        {
            return false;
        }

        long version = _current.Version;
        if (_time.GetElapsedTime(Volatile.Read(ref _lastLoadTimestamp)) < _options.JwksMinRefreshInterval && _current.Loaded)
        {
            return false;
        }

        _log.UnknownKeyId(keyId);
        await ReloadAsync(cancellationToken).ConfigureAwait(false);
        return _current.Version != version;
    }

    /// <summary>Reloads the key set now (serialised: concurrent callers wait for one load).</summary>
    private void ReloadOnTimer() => ReloadAsync(CancellationToken.None).Forget(_log.Logger, "signing key reload");

    internal async Task ReloadAsync(CancellationToken cancellationToken)
    {
        long seenVersion = _current.Version;
        await _loadGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_current.Version != seenVersion || Volatile.Read(ref _disposed) != 0)
            {
                return; // another caller loaded while this one waited
            }

            string json = await ReadKeySetAsync(cancellationToken).ConfigureAwait(false);
            var set = new JsonWebKeySet(json) { SkipUnresolvedJsonWebKeys = true };
            var keys = new List<SecurityKey>();
            if (_sharedKey is not null)
            {
                keys.Add(_sharedKey);
            }

            foreach (SecurityKey key in set.GetSigningKeys())
            {
                // Only public keys come from a key set: a symmetric "oct" key published there would let anyone
                // who can read the set mint tokens.
                if (key is not SymmetricSecurityKey)
                {
                    keys.Add(key);
                }
            }

            _current = new KeySnapshot(keys, seenVersion + 1, Loaded: true);
            SecurityMetrics.KeySetRefreshes.WithLabels("ok").Inc();
            _log.KeySetLoaded(keys.Count - (_sharedKey is null ? 0 : 1), _options.JwksUrl ?? _options.JwksPath!);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Unreachable endpoint, timeout, bad JSON, a file being replaced: all leave the previous keys in force.
            SecurityMetrics.KeySetRefreshes.WithLabels("failed").Inc();
            _log.KeySetLoadFailed(_options.JwksUrl ?? _options.JwksPath!, ex);
        }
        finally
        {
            Volatile.Write(ref _lastLoadTimestamp, _time.GetTimestamp());
            _loadGate.Release();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _refreshTimer?.Dispose();
        _http?.Dispose();
    }

    private async Task<string> ReadKeySetAsync(CancellationToken cancellationToken)
    {
        if (_http is not null)
        {
            using HttpResponseMessage response = await _http.GetAsync(_options.JwksUrl, cancellationToken).ConfigureAwait(false);
            response.EnsureSuccessStatusCode();
            return await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        }

        string path = _options.JwksPath!;
        if (new FileInfo(path).Length > MaxKeySetBytes)
        {
            throw new InvalidDataException($"The key set file is larger than {MaxKeySetBytes} bytes.");
        }

        return await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>One generation of signing keys.</summary>
internal sealed record KeySnapshot(IReadOnlyList<SecurityKey> Keys, long Version, bool Loaded)
{
    public bool Contains(string keyId)
    {
        foreach (SecurityKey key in Keys)
        {
            if (string.Equals(key.KeyId, keyId, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }
}
