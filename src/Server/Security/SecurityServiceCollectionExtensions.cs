using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Collab.Server.Security;

/// <summary>Registers authentication, authorization and abuse limits with the host.</summary>
internal static class SecurityServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="SecurityServices"/> (its admin route is mapped with the HTTP pipeline) and the lifetime service that
    /// logs the mode and loads keys at start (the host adds the signing-key readiness check: Security does not depend on
    /// Hosting). Register before the transport so keys load before
    /// the first connection. The revocation bus defaults to <see cref="InProcessRevocationBus"/>; a cluster
    /// registers its own <see cref="IRevocationBus"/> first (this uses TryAdd).
    /// </summary>
    public static IServiceCollection AddCollabSecurity(this IServiceCollection services, AuthOptions auth, LimitsOptions limits)
    {
        auth.Validate();
        limits.Validate();
        services.AddSingleton(auth);
        services.AddSingleton(limits);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IRevocationBus, InProcessRevocationBus>();
        services.AddSingleton(sp => SecurityServices.Create(
            auth,
            limits,
            sp.GetRequiredService<IRevocationBus>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Collab.Server.Security")));
        services.AddHostedService<SecurityLifetimeService>();
        return services;
    }
}
