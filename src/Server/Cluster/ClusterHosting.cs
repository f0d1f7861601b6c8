using Collab.Server.Hosting;
using Collab.Server.Storage;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Collab.Server.Cluster;

/// <summary>Registers cluster mode: the fenced PostgreSQL op store, leases, the cluster node, its readiness and life cycle.</summary>
internal static class ClusterHosting
{
    /// <summary>
    /// Call after the storage life-cycle service and before the transport, so that on shutdown the transport drains first,
    /// then the node announces it is leaving, then storage closes the documents (releasing their leases).
    /// </summary>
    public static IServiceCollection AddCollabCluster(this IServiceCollection services, ClusterOptions options, StorageOptions storage, string nodeId)
    {
        if (storage.Provider != StorageProvider.Postgres)
        {
            throw new OptionsValidationException(ClusterOptions.Section, typeof(ClusterOptions),
                [$"{ClusterOptions.Section}:{nameof(ClusterOptions.Enabled)} requires the PostgreSQL store (Storage:Provider=Postgres, or --postgres): leases and the shared op log live there."]);
        }

        services.AddSingleton(options);
        services.AddSingleton(new LeaseTable(nodeId, options));
        services.AddSingleton(sp => new LeaseStore(storage, nodeId, options.LeaseDuration, sp.GetRequiredService<LeaseTable>().WriteTimeout));

        // The op store's connections are named after the node, so a node taking over can end this one's stuck writes.
        services.AddSingleton(sp => LeaseStore.CreateWriterDataSource(storage, nodeId));
        services.AddSingleton<IOpStore>(sp => new PostgresOpStore(sp.GetRequiredService<NpgsqlDataSource>(), storage, sp.GetRequiredService<ILogger<PostgresOpStore>>())
        {
            WriteFence = sp.GetRequiredService<LeaseTable>(),
        });
        services.AddSingleton(sp => new ClusterNode(
            options,
            nodeId,
            sp.GetRequiredService<IOpStore>(),
            sp.GetRequiredService<GroupCommitStage>(),
            sp.GetRequiredService<LeaseStore>(),
            sp.GetRequiredService<LeaseTable>(),
            sp.GetRequiredService<ILoggerFactory>()));
        services.AddSingleton<IReadinessCheck>(sp => new ClusterReadinessCheck(sp.GetRequiredService<ClusterNode>()));

        // The deny list travels over NATS and is kept in PostgreSQL; it replaces the single node's in-process bus.
        services.AddSingleton(sp => new ClusterRevocationBus(
            sp.GetRequiredService<ClusterNode>(), sp.GetRequiredService<NpgsqlDataSource>(), sp.GetRequiredService<ILogger<ClusterRevocationBus>>()));
        services.AddSingleton<Security.IRevocationBus>(sp => sp.GetRequiredService<ClusterRevocationBus>());
        services.AddHostedService(sp => sp.GetRequiredService<ClusterRevocationBus>());
        services.AddHostedService<ClusterLifetimeService>();
        return services;
    }
}

/// <summary>/readyz is not ready while NATS is unreachable: the node keeps its sessions, but cannot reach other nodes' documents.</summary>
internal sealed class ClusterReadinessCheck(ClusterNode node) : IReadinessCheck
{
    public string Name => "cluster";

    public ReadinessResult Check() => node.IsConnected ? ReadinessResult.Ready : ReadinessResult.NotReady("NATS is unreachable; reconnecting");
}

/// <summary>Starts the cluster node after the op store is ready; on shutdown announces the leave before the documents close.</summary>
internal sealed class ClusterLifetimeService(ClusterNode node, Sessions.DocumentRegistry registry, Sessions.SessionServices sessions) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        node.Registry = registry;
        node.Clients = sessions.LiveClients;
        sessions.LiveClients.Claimed = node.PublishClaim;
        node.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => node.LeaveAsync();
}
