using System.Globalization;
using System.Text.RegularExpressions;
using System.Text.Json;
using Collab.Server;
using Collab.Server.Cluster;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Storage;
using Collab.Server.Transport;
using Microsoft.Extensions.Configuration;
using Npgsql;

namespace Collab.Integration.Tests.Deploy;

/// <summary>
/// deploy/compose.yaml cannot be run here (no Docker engine), so it is held to what it must agree with: the server's
/// options classes (every environment variable binds to a setting, with ErrorOnUnknownConfiguration, and the result
/// validates), README's configuration tables, the Dockerfile (ports, ENV), prometheus.yml (targets, job, instance
/// names), the alert rules (the connection limit), Grafana's provisioning and the files it mounts.
/// <see cref="ComposeNodeBootTests"/> starts a node with the same environment.
/// </summary>
public sealed partial class ComposeFileTests
{
    /// <summary>The server's environment shortcuts (CollabServerHost, TransportOptions) and the setting each one sets.</summary>
    internal static readonly IReadOnlyDictionary<string, string> Shortcuts = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["COLLAB_PORT"] = "Transport:Port",
        ["COLLAB_DATA_DIR"] = "Storage:DataDirectory",
        ["COLLAB_POSTGRES"] = "Storage:PostgresConnectionString",
        ["COLLAB_NATS"] = "Cluster:NatsUrl",
    };

    [Fact]
    public void The_compose_file_runs_three_nodes_from_the_repository_with_nats_postgres_prometheus_and_grafana()
    {
        Assert.Equal(["grafana", "nats", "node1", "node2", "node3", "postgres", "prometheus"], ComposeFile.Services().Select(s => s.Name).Order(StringComparer.Ordinal));
        IReadOnlyList<ComposeService> nodes = ComposeFile.Nodes();
        Assert.Equal(["node1", "node2", "node3"], nodes.Select(n => n.Name));
        ComposeService postgres = ComposeFile.Service("postgres");
        Assert.NotNull(postgres.Definition.Get("healthcheck"));
        foreach (ComposeService node in nodes)
        {
            var build = DeployAssets.Map(node.Definition.Get("build"), $"{node.Name}.build");
            string context = Path.GetFullPath(Path.Combine(DeployAssets.Directory, DeployAssets.Str(build.Get("context"), "context")));
            Assert.Equal(DeployAssets.RepositoryRoot.TrimEnd('/'), context.TrimEnd('/'));
            Assert.True(File.Exists(Path.Combine(context, DeployAssets.Str(build.Get("dockerfile"), "dockerfile"))));

            // The node id is the service name: prometheus.yml's relabelling makes the host name the instance label.
            Assert.Equal(node.Name, node.Environment["Node__NodeId"]);

            // PostgreSQL must accept connections before a node starts (the nodes would retry, but start in a crash loop).
            var dependsOn = DeployAssets.Map(node.Definition.Get("depends_on"), $"{node.Name}.depends_on");
            Assert.Equal("service_healthy", DeployAssets.Str(DeployAssets.Map(dependsOn.Get("postgres"), "postgres").Get("condition"), "condition"));
            Assert.True(dependsOn.ContainsKey("nats"));

            // The orchestrator's grace period covers the drain (docs/OPERATIONS.md, "Stopping a node").
            (TransportOptions transport, StorageOptions storage, _) = Bind(node);
            TimeSpan grace = ComposeFile.ParseDuration(DeployAssets.Str(node.Definition.Get("stop_grace_period"), "stop_grace_period"));
            Assert.True(grace > transport.ShutdownTimeout + storage.ShutdownTimeout, $"{node.Name}: stop_grace_period {grace} does not cover the drain");
        }

        // Every named volume a service mounts is declared.
        var declared = ComposeFile.Volumes();
        foreach (ComposeService service in ComposeFile.Services())
        {
            foreach (object volume in service.Definition.Get("volumes") as List<object> ?? [])
            {
                string source = DeployAssets.Str(volume, "volume").Split(':')[0];
                Assert.True(source.StartsWith('.') || declared.ContainsKey(source), $"{service.Name}: volume {source} is not declared");
            }
        }
    }

    [Fact]
    public void Every_node_environment_variable_is_a_documented_setting_the_server_binds_and_accepts()
    {
        string readme = File.ReadAllText(Path.Combine(DeployAssets.RepositoryRoot, "README.md"));
        foreach (ComposeService node in ComposeFile.Nodes())
        {
            foreach (string name in node.Environment.Keys)
            {
                if (Shortcuts.ContainsKey(name))
                {
                    Assert.Contains($"`{name}`", readme, StringComparison.Ordinal);
                    continue;
                }

                Match setting = SettingVariable().Match(name);
                Assert.True(setting.Success, $"{node.Name}: {name} is neither a shortcut ({string.Join(", ", Shortcuts.Keys)}) nor a Section__Name setting");
                string key = $"{setting.Groups["section"].Value}:{setting.Groups["name"].Value}";
                Assert.True(readme.Contains($"`{key}`", StringComparison.Ordinal), $"{node.Name}: {name} sets {key}, which README's configuration tables do not describe");
            }

            // Bound as the server binds them; a name no options class has throws here (ErrorOnUnknownConfiguration).
            (TransportOptions transport, StorageOptions storage, ClusterOptions cluster) = Bind(node);
            Assert.Equal(StorageProvider.Postgres, storage.Provider);
            Assert.False(string.IsNullOrEmpty(storage.PostgresConnectionString));
            Assert.True(cluster.Enabled);
            Assert.NotNull(transport.ManagementPort);
        }
    }

    [Fact]
    public void A_misspelt_setting_fails_the_binding_check()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Storage:Provder"] = "Postgres" }).Build();
        Assert.Throws<InvalidOperationException>(() => configuration.GetSection(StorageOptions.Section).Bind(new StorageOptions(), o => o.ErrorOnUnknownConfiguration = true));
        Assert.Matches(SettingVariable(), "Logging__LogLevel__Default");
        Assert.False(KnownSection("Logging"));
    }

    [Fact]
    public void Ports_agree_with_the_dockerfile_the_options_and_prometheus()
    {
        (IReadOnlyDictionary<string, string> imageEnvironment, IReadOnlyList<int> exposed) = ComposeFile.Dockerfile();
        var prometheusConfig = DeployAssets.Map(DeployAssets.LoadYaml(DeployAssets.PrometheusConfig), "prometheus.yml");
        var collabJob = DeployAssets.Seq(prometheusConfig.Get("scrape_configs"), "scrape_configs")
            .Select(j => DeployAssets.Map(j, "scrape_config"))
            .Single(j => DeployAssets.Str(j.Get("job_name"), "job_name") == DeployAssets.Job);
        var targets = DeployAssets.Seq(collabJob.Get("static_configs"), "static_configs")
            .SelectMany(c => DeployAssets.Seq(DeployAssets.Map(c, "static_config").Get("targets"), "targets"))
            .Select(t => DeployAssets.Str(t, "target"))
            .ToList();
        var expectedTargets = new List<string>();
        var hostPorts = new HashSet<int>();
        int connectionLimit = ConnectionAlertLimit();

        foreach (ComposeService node in ComposeFile.Nodes())
        {
            (TransportOptions transport, _, _) = Bind(node);
            int management = transport.ManagementPort!.Value;

            // The image's ports, exposed by the Dockerfile, are the ones the node listens on.
            Assert.Equal(int.Parse(imageEnvironment["COLLAB_PORT"], CultureInfo.InvariantCulture), transport.Port);
            Assert.Equal(int.Parse(imageEnvironment["Transport__ManagementPort"], CultureInfo.InvariantCulture), management);
            Assert.Contains(transport.Port, exposed);
            Assert.Contains(management, exposed);

            // Clients reach the WebSocket port from the host; the management port stays on the compose network.
            var published = node.Ports;
            Assert.NotEmpty(published);
            Assert.All(published, p => Assert.Equal(transport.Port, p.Container));
            Assert.DoesNotContain(published, p => p.Container == management);
            Assert.Contains(management, node.Expose);
            expectedTargets.Add($"{node.Name}:{management}");

            // The connection alert's threshold is this node's limit.
            Assert.Equal(transport.MaxConnections, connectionLimit);
        }

        Assert.Equal(expectedTargets.Order(StringComparer.Ordinal), targets.Order(StringComparer.Ordinal));

        // prometheus.yml's relabelling names each instance by its node id.
        var relabel = DeployAssets.Map(DeployAssets.Seq(collabJob.Get("relabel_configs"), "relabel_configs").Single(), "relabel_config");
        Assert.Equal("instance", DeployAssets.Str(relabel.Get("target_label"), "target_label"));
        var regex = new Regex($"^(?:{DeployAssets.Str(relabel.Get("regex"), "regex")})$");
        string replacement = DeployAssets.Str(relabel.Get("replacement"), "replacement");
        foreach (ComposeService node in ComposeFile.Nodes())
        {
            string target = targets.Single(t => t.StartsWith(node.Name + ":", StringComparison.Ordinal));
            Assert.Equal(node.Environment["Node__NodeId"], regex.Replace(target, replacement));
        }

        // No host port twice; the tools without authentication of their own are published on loopback only.
        foreach (ComposeService service in ComposeFile.Services())
        {
            foreach ((string? address, int host, _) in service.Ports)
            {
                Assert.True(hostPorts.Add(host), $"host port {host} is published twice");
                if (service.Name is "prometheus" or "grafana")
                {
                    Assert.Equal("127.0.0.1", address);
                }
            }
        }

        Assert.Empty(ComposeFile.Service("postgres").Ports);
        Assert.Empty(ComposeFile.Service("nats").Ports);
    }

    [Fact]
    public async Task Services_are_wired_to_each_other_and_to_the_files_they_mount()
    {
        foreach (ComposeService service in ComposeFile.Services())
        {
            foreach ((string host, string container) in service.BindMounts)
            {
                Assert.True(File.Exists(host) || System.IO.Directory.Exists(host), $"{service.Name} mounts {host} at {container}, which does not exist");
            }
        }

        // Prometheus reads deploy/prometheus/prometheus.yml; Grafana's data source is that Prometheus.
        ComposeService prometheus = ComposeFile.Service("prometheus");
        string configFlag = prometheus.Command.Single(c => c.StartsWith("--config.file=", StringComparison.Ordinal));
        Assert.Equal(DeployAssets.PrometheusConfig, prometheus.HostPathOf(configFlag["--config.file=".Length..]));
        Assert.DoesNotContain(prometheus.Command, c => c.StartsWith("--web.listen-address", StringComparison.Ordinal));
        int prometheusPort = Assert.Single(prometheus.Ports).Container;
        Assert.Equal(9090, prometheusPort); // Prometheus's default listen port

        ComposeService grafana = ComposeFile.Service("grafana");
        var datasources = DeployAssets.Map(DeployAssets.LoadYaml(grafana.HostPathOf("/etc/grafana/provisioning/datasources/prometheus.yml")), "datasources");
        var datasource = DeployAssets.Map(DeployAssets.Seq(datasources.Get("datasources"), "datasources").Single(), "datasource");
        Assert.Equal($"http://prometheus:{prometheusPort}", DeployAssets.Str(datasource.Get("url"), "url"));
        var global = DeployAssets.Map(DeployAssets.Map(DeployAssets.LoadYaml(DeployAssets.PrometheusConfig), "prometheus.yml").Get("global"), "global");
        Assert.Equal(DeployAssets.Str(global.Get("scrape_interval"), "scrape_interval"), DeployAssets.Str(DeployAssets.Map(datasource.Get("jsonData"), "jsonData").Get("timeInterval"), "timeInterval"));

        // The dashboard provider reads the directory the dashboards are mounted at; the home dashboard is the Collab one.
        var providers = DeployAssets.Map(DeployAssets.LoadYaml(grafana.HostPathOf("/etc/grafana/provisioning/dashboards/collab.yml")), "providers");
        var provider = DeployAssets.Map(DeployAssets.Seq(providers.Get("providers"), "providers").Single(), "provider");
        string dashboards = DeployAssets.Str(DeployAssets.Map(provider.Get("options"), "options").Get("path"), "path");
        Assert.Equal(Path.GetDirectoryName(DeployAssets.DashboardFile), grafana.HostPathOf(dashboards).TrimEnd('/'));
        Assert.Equal(DeployAssets.DashboardFile, grafana.HostPathOf(grafana.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]));
        using (JsonDocument dashboard = JsonDocument.Parse(await File.ReadAllTextAsync(DeployAssets.DashboardFile)))
        {
            var variables = dashboard.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray().ToList();
            Assert.Equal(DeployAssets.Job, variables.Single(v => v.GetProperty("name").GetString() == "job").GetProperty("current").GetProperty("value").GetString());
            Assert.Equal("prometheus", variables.Single(v => v.GetProperty("name").GetString() == "datasource").GetProperty("query").GetString());
        }

        // NATS runs deploy/nats/nats.conf, which nats-server accepts, on the port the nodes are given.
        ComposeService nats = ComposeFile.Service("nats");
        string natsConfig = nats.HostPathOf(nats.Command[nats.Command.ToList().IndexOf("-c") + 1]);
        Tool.Result check = await Tool.RunAsync(Tool.Require("nats-server"), ["-t", "-c", natsConfig]);
        Assert.True(check.ExitCode == 0, check.Output);
        Match listen = NatsListen().Match(await File.ReadAllTextAsync(natsConfig));
        Assert.True(listen.Success, "nats.conf has no listen address");

        // The nodes reach PostgreSQL and NATS by service name, with the credentials the postgres service is given.
        ComposeService postgres = ComposeFile.Service("postgres");
        foreach (ComposeService node in ComposeFile.Nodes())
        {
            IReadOnlyDictionary<string, string> environment = node.Environment;
            var natsUrl = new Uri(environment["COLLAB_NATS"]);
            Assert.Equal(("nats", "nats", int.Parse(listen.Groups["port"].Value, CultureInfo.InvariantCulture)), (natsUrl.Scheme, natsUrl.Host, natsUrl.Port));

            var connection = new NpgsqlConnectionStringBuilder(environment["COLLAB_POSTGRES"]);
            Assert.Equal("postgres", connection.Host);
            Assert.Equal(5432, connection.Port);
            Assert.Equal(postgres.Environment["POSTGRES_USER"], connection.Username);
            Assert.Equal(postgres.Environment["POSTGRES_PASSWORD"], connection.Password);
            Assert.Equal(postgres.Environment["POSTGRES_DB"], connection.Database);
        }
    }

    /// <summary>The options a node's environment gives, bound as the server binds them and validated.</summary>
    internal static (TransportOptions Transport, StorageOptions Storage, ClusterOptions Cluster) Bind(ComposeService node)
    {
        var data = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach ((string name, string value) in ComposeFile.EffectiveEnvironment(node))
        {
            if (name.StartsWith("DOTNET_", StringComparison.Ordinal))
            {
                continue; // the runtime's own settings (DOTNET_gcServer in the Dockerfile)
            }

            if (Shortcuts.TryGetValue(name, out string? key))
            {
                data[name == "COLLAB_PORT" ? name : key] = value; // TransportOptions reads COLLAB_PORT itself
                continue;
            }

            Match setting = SettingVariable().Match(name);
            Assert.True(setting.Success && KnownSection(setting.Groups["section"].Value), $"{node.Name}: {name} names no section of the server's options");
            data[name.Replace("__", ":", StringComparison.Ordinal)] = value;
        }

        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(data).Build();
        T Bound<T>(string section)
            where T : new()
        {
            var options = new T();
            configuration.GetSection(section).Bind(options, o => o.ErrorOnUnknownConfiguration = true);
            return options;
        }

        _ = Bound<TransportOptions>(TransportOptions.Section);
        TransportOptions transport = TransportOptions.FromConfiguration(configuration);
        transport.Validate();
        StorageOptions storage = Bound<StorageOptions>(StorageOptions.Section);
        storage.Validate();
        Bound<DocumentOptions>(DocumentOptions.Section).Validate();
        Bound<NodeOptions>(NodeOptions.Section).Validate();
        Bound<AuthOptions>(AuthOptions.Section).Validate();
        Bound<LimitsOptions>(LimitsOptions.Section).Validate();
        ClusterOptions cluster = Bound<ClusterOptions>(ClusterOptions.Section);
        cluster.Validate();
        return (transport, storage, cluster);
    }

    private static bool KnownSection(string section) => section is TransportOptions.Section or StorageOptions.Section
        or DocumentOptions.Section or NodeOptions.Section or AuthOptions.Section or LimitsOptions.Section or ClusterOptions.Section;

    /// <summary>The number CollabNearConnectionCapacity compares with: <c>collab_ws_connections_open &gt; 0.9 * N</c>.</summary>
    private static int ConnectionAlertLimit()
    {
        PrometheusRule alert = DeployAssets.Alerts().Single(a => a.Alert == "CollabNearConnectionCapacity");
        Match limit = ConnectionLimit().Match(alert.Expr);
        Assert.True(limit.Success, $"CollabNearConnectionCapacity: \"{alert.Expr}\" does not compare with 0.9 * <MaxConnections>");
        return int.Parse(limit.Groups["limit"].Value, CultureInfo.InvariantCulture);
    }

    // Section__Name, with array indexes (Auth__Issuers__0) or nested keys after it.
    [GeneratedRegex(@"^(?<section>[A-Z][A-Za-z]*)__(?<name>[A-Z][A-Za-z]*)(?:__[A-Za-z0-9]+)*$")]
    private static partial Regex SettingVariable();

    [GeneratedRegex(@"collab_ws_connections_open > 0\.9 \* (?<limit>\d+)")]
    private static partial Regex ConnectionLimit();

    [GeneratedRegex(@"^listen:\s*""?[^:""]*:(?<port>\d+)""?", RegexOptions.Multiline)]
    private static partial Regex NatsListen();
}
