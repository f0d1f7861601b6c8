using Collab.Engine.Sequencing;
using Collab.Server.Api;
using Collab.Server.Cluster;
using Collab.Server.Hosting;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Storage;
using Collab.Server.Transport;
using Microsoft.Extensions.Options;
using Collab.Server.Web;

namespace Collab.Server;

/// <summary>
/// The composition root: binds every options class from configuration, wires storage → sequencers →
/// sessions → transport, and orders start-up and shutdown (drain the connections first, then flush the
/// op log). Program.cs and in-process tests both build the server here.
/// </summary>
public static class CollabServerHost
{
    /// <summary>Command-line shortcuts for the settings people change most.</summary>
    private static readonly Dictionary<string, string> s_switches = new(StringComparer.Ordinal)
    {
        ["--port"] = "port",
        ["--data-dir"] = "Storage:DataDirectory",
        ["--postgres"] = "Storage:PostgresConnectionString",
        ["--node-id"] = "Node:NodeId",
        ["--nats"] = "Cluster:NatsUrl",
    };

    /// <summary>The configuration sections the server reads; a command-line key outside them sets nothing.</summary>
    private static readonly string[] s_sections =
    [
        TransportOptions.Section, StorageOptions.Section, DocumentOptions.Section, NodeOptions.Section, SchedulingOptions.Section,
        AuthOptions.Section, LimitsOptions.Section, ClusterOptions.Section, MemoryOptions.Section, "Logging",
    ];

    /// <summary>Builds the server. <paramref name="configure"/> lets tests add configuration last (highest precedence).</summary>
    public static WebApplication Build(string[] args, Action<IConfigurationBuilder>? configure = null)
    {
        // Arguments that set nothing are reported before the configuration providers see them (an undefined short switch
        // would make them throw).
        if (SettingsBinder.CheckCommandLine(args, s_switches, s_sections) is { Count: > 0 } stray)
        {
            throw new OptionsValidationException("Collab", typeof(CollabServerHost), stray);
        }

        MetricsDefaults.Apply();
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args });
        OnlyHierarchicalEnvironmentVariables(builder.Configuration);
        builder.Configuration.AddInMemoryCollection(EnvironmentShortcuts());
        builder.Configuration.AddCommandLine(args, s_switches);
        configure?.Invoke(builder.Configuration);
        ConfigurationManager config = builder.Configuration;

        // Every section is bound with the options pattern and checked key by key before it binds (SettingsBinder), then
        // validated (CollabSettings); a typo, a value of the wrong type or an invalid combination is reported with all the
        // others at once (Program prints one line each and exits 2), never an ignored key or an unhandled exception. The
        // values are read here because they decide what the server is composed of.
        (TransportOptions transport, StorageOptions storage, DocumentOptions documents, NodeOptions node, _, AuthOptions auth,
            LimitsOptions limits, ApiOptions api, WebOptions web, ClusterOptions cluster, MemoryOptions memory) = CollabSettings.Read(config);

        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });

        IServiceCollection services = builder.Services;
        services.AddCollabSettings(config);
        services.AddSingleton(storage);
        services.AddSingleton(documents);
        services.AddSingleton(node);
        if (!cluster.Enabled)
        {
            services.AddSingleton(sp => OpStoreFactory.Create(storage, sp.GetRequiredService<ILoggerFactory>()));
        }
        services.AddSingleton(sp => new GroupCommitStage(
            sp.GetRequiredService<IOpStore>(), storage, sp.GetRequiredService<ILogger<GroupCommitStage>>(), new StorageMetrics()));
        services.AddSingleton<IHistorySource>(sp => new StoreHistorySource(sp.GetRequiredService<IOpStore>()));
        services.AddSingleton(sp => new DocumentRegistry(
            sp.GetRequiredService<IOpStore>(),
            sp.GetRequiredService<GroupCommitStage>(),
            sp.GetRequiredService<IHistorySource>(),
            documents,
            storage.SnapshotEveryOps,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Collab.Server.Sessions"),
            replicator: sp.GetService<ClusterNode>()));
        services.AddSingleton(sp => new SessionServices(
            sp.GetRequiredService<DocumentRegistry>(), documents, node.NodeId, transport.MaxMessageBytes, sp.GetRequiredService<SecurityServices>()));
        services.AddSingleton<IWebSocketApplication>(sp => new CollabApplication(sp.GetRequiredService<SessionServices>()));
        services.AddSingleton<IReadinessCheck>(sp => new StorageReadinessCheck(sp.GetRequiredService<GroupCommitStage>()));

        // Hosted services start in order (storage, then security loads signing keys, then the transport accepts)
        // and stop in reverse: the transport drains the connections before storage flushes the op log.
        services.AddHostedService<StorageLifetimeService>();
        services.AddHostedService<RetentionService>();
        if (cluster.Enabled)
        {
            services.AddCollabCluster(cluster, storage, node.NodeId);
        }

        // After the cluster: a cluster's IRevocationBus registration wins over the in-process default.
        services.AddCollabSecurity(auth, limits);
        services.AddSingleton<IReadinessCheck>(sp => new SigningKeysReadinessCheck(sp.GetRequiredService<SecurityServices>()));
        services.AddCollabTransport(transport);

        // Gives memory back after a burst, once the server is quiet (Memory:CompactWhenQuiet).
        services.AddSingleton(memory);
        services.AddHostedService<QuietCompactionService>();
        if (api.Enabled)
        {
            services.AddCollabApi(api, storage);
        }

        builder.WebHost.ConfigureCollabKestrel(transport);

        WebApplication app = builder.Build();
        app.UseCollabTransport();
        app.Services.GetRequiredService<SecurityServices>().Admin.Map(app);
        if (api.Enabled)
        {
            app.MapCollabApi();
        }

        if (web.IsEnabled(auth.IsJwt, cluster.Enabled))
        {
            WebHosting.Map(app, web);
        }

        return app;
    }

    /// <summary>
    /// Settings come from environment variables written <c>Section__Name</c>. The host's default source reads every variable
    /// unprefixed, so one that merely shares a section's name (npm sets <c>NODE=/usr/bin/node</c> for every child process;
    /// <c>API</c>, <c>WEB</c>) would reach the strict settings check as a value of that section and stop the server. Only
    /// variables with a <c>__</c> (a setting's path) and the server's own <c>COLLAB_*</c> shortcuts (<c>COLLAB_PORT</c> is
    /// read as a key) are taken, in the same place among the sources.
    /// </summary>
    private static void OnlyHierarchicalEnvironmentVariables(ConfigurationManager configuration)
    {
        IList<IConfigurationSource> sources = ((IConfigurationBuilder)configuration).Sources;
        for (int i = 0; i < sources.Count; i++)
        {
            if (sources[i] is Microsoft.Extensions.Configuration.EnvironmentVariables.EnvironmentVariablesConfigurationSource { Prefix: null or "" })
            {
                var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
                foreach (System.Collections.DictionaryEntry variable in Environment.GetEnvironmentVariables())
                {
                    if (variable.Key is string name
                        && (name.Contains("__", StringComparison.Ordinal) || name.StartsWith("COLLAB_", StringComparison.Ordinal)))
                    {
                        values[name.Replace("__", ConfigurationPath.KeyDelimiter, StringComparison.Ordinal)] = variable.Value as string;
                    }
                }

                sources[i] = new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource { InitialData = values };
            }
        }
    }

    private static Dictionary<string, string?> EnvironmentShortcuts()
    {
        var values = new Dictionary<string, string?>(StringComparer.Ordinal);
        if (Environment.GetEnvironmentVariable("COLLAB_DATA_DIR") is { Length: > 0 } dataDir)
        {
            values["Storage:DataDirectory"] = dataDir;
        }

        if (Environment.GetEnvironmentVariable("COLLAB_POSTGRES") is { Length: > 0 } postgres)
        {
            values["Storage:PostgresConnectionString"] = postgres;
        }

        if (Environment.GetEnvironmentVariable("COLLAB_NATS") is { Length: > 0 } nats)
        {
            values["Cluster:NatsUrl"] = nats;
        }

        return values;
    }
}

/// <summary>/readyz is not ready while op-log commits are failing (the server then holds acks back).</summary>
internal sealed class StorageReadinessCheck(GroupCommitStage stage) : IReadinessCheck
{
    public string Name => "storage";

    public ReadinessResult Check() => stage.IsHealthy ? ReadinessResult.Ready : ReadinessResult.NotReady("op-log commits are failing; retrying");
}

/// <summary>
/// Opens the op store (migrations) before the first connection is accepted, retrying while the database
/// is unreachable; on shutdown closes every document (final snapshots) and flushes the group commit.
/// </summary>
internal sealed partial class StorageLifetimeService(
    IOpStore store,
    GroupCommitStage stage,
    DocumentRegistry documents,
    StorageOptions options,
    ILogger<StorageLifetimeService> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        TimeSpan delay = options.RetryInitialDelay;
        while (true)
        {
            try
            {
                await store.InitializeAsync(cancellationToken).ConfigureAwait(false);
                LogStoreReady(options.Provider, options.Provider == StorageProvider.Sqlite ? Path.GetFullPath(options.SqlitePath) : "PostgreSQL");
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException && ex is not StorageSchemaException)
            {
                LogStoreUnavailable(delay, ex);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.RetryMaxDelay.Ticks));
            }
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await documents.DisposeAsync().ConfigureAwait(false);
        await stage.DisposeAsync().ConfigureAwait(false);
        await store.DisposeAsync().ConfigureAwait(false);
    }

    [LoggerMessage(1000, LogLevel.Information, "Op store ready: {Provider} ({Location})")]
    private partial void LogStoreReady(StorageProvider provider, string location);

    [LoggerMessage(1001, LogLevel.Warning, "Op store unavailable; retrying in {Delay}")]
    private partial void LogStoreUnavailable(TimeSpan delay, Exception exception);
}
