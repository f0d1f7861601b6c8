
namespace Collab.Server.Security;

/// <summary>
/// Everything the session layer needs from security, built once per server: the handshake authenticator,
/// the token validator (null when anonymous), the revocation list, the directory of authenticated
/// sessions, the rate budgets and the per-address connection limiter.
/// </summary>
internal sealed class SecurityServices : IDisposable
{
    /// <summary>How often token-expiry deadlines are checked; a session is closed at most this late after its token expired.</summary>
    internal static readonly TimeSpan DeadlineResolution = TimeSpan.FromSeconds(1);

    private SecurityServices(
        AuthOptions auth,
        LimitsOptions limits,
        TimeProvider time,
        SecurityLog log,
        SigningKeys? keys,
        TokenValidator? validator,
        RevocationList revocations)
    {
        Auth = auth;
        Limits = limits;
        Time = time;
        Log = log;
        Keys = keys;
        Validator = validator;
        Revocations = revocations;
        Rates = new LimitRates(limits);
        Authenticator = new HandshakeAuthenticator(auth, validator, log);
        Sessions = new SessionDirectory(Rates, time, revocations, log, DeadlineResolution);
        ConnectionAttempts = new ConnectionAttemptLimiter(limits, time);
        Admin = new AdminEndpoints(auth, revocations, time, log);
    }

    public AuthOptions Auth { get; }

    public LimitsOptions Limits { get; }

    public TimeProvider Time { get; }

    public SecurityLog Log { get; }

    /// <summary>Null in anonymous mode.</summary>
    public SigningKeys? Keys { get; }

    /// <summary>Null in anonymous mode.</summary>
    public TokenValidator? Validator { get; }

    public RevocationList Revocations { get; }

    public LimitRates Rates { get; }

    public HandshakeAuthenticator Authenticator { get; }

    public SessionDirectory Sessions { get; }

    public ConnectionAttemptLimiter ConnectionAttempts { get; }

    public AdminEndpoints Admin { get; }

    /// <summary>Validates both options classes and builds the services. <paramref name="jwksHandler"/> replaces the HTTP stack of JWKS fetches (tests).</summary>
    public static SecurityServices Create(
        AuthOptions auth,
        LimitsOptions limits,
        IRevocationBus bus,
        TimeProvider time,
        ILogger logger,
        HttpMessageHandler? jwksHandler = null)
    {
        auth.Validate();
        limits.Validate();
        var log = new SecurityLog(logger);
        var revocations = new RevocationList(bus, time);
        SigningKeys? keys = null;
        TokenValidator? validator = null;
        if (auth.IsJwt)
        {
            keys = new SigningKeys(auth, time, log, jwksHandler);
            validator = new TokenValidator(auth, keys, revocations);
        }

        return new SecurityServices(auth, limits, time, log, keys, validator, revocations);
    }

    /// <summary>Says which mode is in force (loudly when anonymous) and loads the signing keys.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!Auth.IsJwt)
        {
            Log.AnonymousMode();
            return;
        }

        Log.JwtMode(string.Join(", ", Auth.Issuers), string.Join(", ", Auth.Audiences), string.Join(", ", Auth.EffectiveAlgorithms()), Auth.RightsClaim);
        if (Keys is not null)
        {
            await Keys.StartAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        Sessions.Dispose();
        ConnectionAttempts.Dispose();
        Revocations.Dispose();
        Keys?.Dispose();
    }
}

/// <summary>Starts <see cref="SecurityServices"/> with the host (before connections are accepted) and disposes it at the end.</summary>
internal sealed class SecurityLifetimeService(SecurityServices security) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => security.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken)
    {
        security.Dispose();
        return Task.CompletedTask;
    }
}
