using Collab.Server.Api;
using Collab.Server.Cluster;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Storage;
using Collab.Server.Transport;
using Collab.Server.Web;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Collab.Server.Hosting;

/// <summary>
/// The server's settings through the .NET options pattern: one typed options class per configuration section, each
/// registered with <c>AddOptions&lt;T&gt;()</c>, bound by <see cref="SettingsBinder"/> (every key of the section checked
/// against the class first, so a misspelt key or a value of the wrong type is reported instead of ignored or thrown
/// from deep inside the binder), validated by an <see cref="IValidateOptions{TOptions}"/> and <c>ValidateOnStart</c>.
/// <para>
/// <see cref="CollabServerHost.Build"/> reads them all once, through these same registrations, before it composes the
/// server (<see cref="Read"/>): what it composes depends on them (single node or cluster, the API, the page, TLS), and an
/// operator is shown every invalid setting of every section at once (Program prints one line each and exits 2) rather
/// than the first one the host happens to resolve. The host's own container registers them again, so anything may take
/// <see cref="IOptions{TOptions}"/> and the host validates them at start as the pattern does.
/// </para>
/// </summary>
internal static class CollabSettings
{
    /// <summary>Every section of the server, in the order their failures are reported.</summary>
    public static IServiceCollection AddCollabSettings(this IServiceCollection services, IConfiguration configuration)
    {
        Add<TransportOptions>(services, (o, c) => TransportOptions.BindInto(c, o), _ => o => o.Validate());
        Add<StorageOptions>(
            services,
            (o, c) =>
            {
                SettingsBinder.BindInto(c, StorageOptions.Section, o);
                if (!string.IsNullOrEmpty(o.PostgresConnectionString) && c[$"{StorageOptions.Section}:Provider"] is null)
                {
                    o.Provider = StorageProvider.Postgres; // --postgres alone selects PostgreSQL
                }
            },
            _ => o => o.Validate());
        Add<DocumentOptions>(services, Section<DocumentOptions>(DocumentOptions.Section), _ => o => o.Validate());
        Add<NodeOptions>(services, Section<NodeOptions>(NodeOptions.Section), _ => o => o.Validate());
        Add<SchedulingOptions>(services, Section<SchedulingOptions>(SchedulingOptions.Section), _ => o => o.Validate());

        // Settings that span sections are checked against the other section's values, or its defaults when that section
        // is itself invalid (its own failures are reported once, by its own validator).
        Add<AuthOptions>(services, Section<AuthOptions>(AuthOptions.Section), sp => o => o.ValidateWithOrigins(ValidOrDefault<TransportOptions>(sp).AllowedOrigins));
        Add<LimitsOptions>(services, Section<LimitsOptions>(LimitsOptions.Section), _ => o => o.Validate());
        Add<ApiOptions>(services, Section<ApiOptions>(ApiOptions.Section), sp => o => o.Validate(ValidOrDefault<StorageOptions>(sp).SnapshotEveryOps));
        Add<WebOptions>(services, Section<WebOptions>(WebOptions.Section), validate: null);
        Add<ClusterOptions>(
            services,
            (o, c) =>
            {
                SettingsBinder.BindInto(c, ClusterOptions.Section, o);
                if (c[$"{ClusterOptions.Section}:NatsUrl"] is not null && c[$"{ClusterOptions.Section}:Enabled"] is null)
                {
                    o.Enabled = true; // --nats alone (or Cluster:NatsUrl) selects cluster mode
                }
            },
            _ => o => o.Validate());
        Add<MemoryOptions>(services, Section<MemoryOptions>(MemoryOptions.Section), _ => o => o.Validate());
        services.TryAddSingleton(configuration);
        return services;
    }

    /// <summary>
    /// Resolves every section from <paramref name="configuration"/> (binding and validating each); throws one
    /// <see cref="OptionsValidationException"/> listing the invalid settings of all of them.
    /// </summary>
    public static Settings Read(IConfiguration configuration)
    {
        using ServiceProvider provider = new ServiceCollection().AddCollabSettings(configuration).BuildServiceProvider();
        var invalid = new List<string>();
        var settings = new Settings(
            Get<TransportOptions>(provider, invalid),
            Get<StorageOptions>(provider, invalid),
            Get<DocumentOptions>(provider, invalid),
            Get<NodeOptions>(provider, invalid),
            Get<SchedulingOptions>(provider, invalid),
            Get<AuthOptions>(provider, invalid),
            Get<LimitsOptions>(provider, invalid),
            Get<ApiOptions>(provider, invalid),
            Get<WebOptions>(provider, invalid),
            Get<ClusterOptions>(provider, invalid),
            Get<MemoryOptions>(provider, invalid));
        if (invalid.Count > 0)
        {
            throw new OptionsValidationException("Collab", typeof(CollabServerHost), invalid);
        }

        return settings;
    }

    private static Action<T, IConfiguration> Section<T>(string section)
        where T : class => (o, c) => SettingsBinder.BindInto(c, section, o);

    private static void Add<T>(IServiceCollection services, Action<T, IConfiguration> bind, Func<IServiceProvider, Action<T>>? validate)
        where T : class
    {
        services.AddOptions<T>().Configure<IConfiguration>(bind).ValidateOnStart();
        if (validate is not null)
        {
            services.AddSingleton<IValidateOptions<T>>(sp => new SettingsValidator<T>(validate(sp)));
        }
    }

    private static T Get<T>(IServiceProvider provider, List<string> invalid)
        where T : class, new()
    {
        try
        {
            return provider.GetRequiredService<IOptions<T>>().Value;
        }
        catch (OptionsValidationException ex)
        {
            invalid.AddRange(ex.Failures);
            return new T();
        }
    }

    private static T ValidOrDefault<T>(IServiceProvider provider)
        where T : class, new()
    {
        try
        {
            return provider.GetRequiredService<IOptions<T>>().Value;
        }
        catch (OptionsValidationException)
        {
            return new T();
        }
    }

    /// <summary>The server's validated settings, one options class per section.</summary>
    public sealed record Settings(
        TransportOptions Transport,
        StorageOptions Storage,
        DocumentOptions Documents,
        NodeOptions Node,
        SchedulingOptions Scheduling,
        AuthOptions Auth,
        LimitsOptions Limits,
        ApiOptions Api,
        WebOptions Web,
        ClusterOptions Cluster,
        MemoryOptions Memory);
}

/// <summary>
/// The <see cref="IValidateOptions{TOptions}"/> of one options class: runs its rules (which collect every invalid setting
/// of the section, each as "<c>Section:Name: why</c>") and turns them into a <see cref="ValidateOptionsResult"/>.
/// </summary>
internal sealed class SettingsValidator<T>(Action<T> rules) : IValidateOptions<T>
    where T : class
{
    public ValidateOptionsResult Validate(string? name, T options)
    {
        try
        {
            rules(options);
            return ValidateOptionsResult.Success;
        }
        catch (OptionsValidationException ex)
        {
            return ValidateOptionsResult.Fail(ex.Failures);
        }
    }
}
