using Collab.Server.Api;
using Collab.Server.Cluster;
using Collab.Server.Hosting;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Storage;
using Collab.Server.Transport;
using Collab.Server.Web;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Collab.Server.Tests.Hosting;

/// <summary>
/// The settings through the options pattern (CollabSettings): each section an <c>IOptions&lt;T&gt;</c> bound by the
/// checked binder and validated by its <c>IValidateOptions&lt;T&gt;</c>, on start too; read once at build with every
/// invalid setting of every section reported together, as the start-up contract (exit code 2) requires.
/// </summary>
public sealed class CollabSettingsTests
{
    private static IConfiguration Config(params (string Key, string? Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => KeyValuePair.Create(v.Key, v.Value))).Build();

    [Fact]
    public void Every_section_is_an_options_class_bound_from_its_section_with_a_validator()
    {
        using ServiceProvider provider = new ServiceCollection()
            .AddCollabSettings(Config(("Transport:Port", "9100"), ("Storage:SnapshotEveryOps", "50"), ("Api:MaxReplayOps", "100"), ("Node:NodeId", "n1"), ("port", "9200")))
            .BuildServiceProvider();

        Assert.Equal(9200, provider.GetRequiredService<IOptions<TransportOptions>>().Value.Port); // --port wins over Transport:Port
        Assert.Equal(50, provider.GetRequiredService<IOptions<StorageOptions>>().Value.SnapshotEveryOps);
        Assert.Equal(100, provider.GetRequiredService<IOptions<ApiOptions>>().Value.MaxReplayOps);
        Assert.Equal("n1", provider.GetRequiredService<IOptions<NodeOptions>>().Value.NodeId);
        foreach (Type options in new[] { typeof(TransportOptions), typeof(StorageOptions), typeof(DocumentOptions), typeof(NodeOptions), typeof(AuthOptions), typeof(LimitsOptions), typeof(ApiOptions), typeof(ClusterOptions), typeof(MemoryOptions) })
        {
            Assert.NotEmpty(provider.GetServices(typeof(IValidateOptions<>).MakeGenericType(options)));
        }

        Assert.NotNull(provider.GetRequiredService<IOptions<WebOptions>>().Value);
    }

    [Fact]
    public void The_shortcuts_that_select_a_mode_still_select_it()
    {
        CollabSettings.Settings settings = CollabSettings.Read(Config(("Storage:PostgresConnectionString", "Host=db"), ("Cluster:NatsUrl", "nats://n:4222")));

        Assert.Equal(StorageProvider.Postgres, settings.Storage.Provider);
        Assert.True(settings.Cluster.Enabled);
        Assert.False(CollabSettings.Read(Config()).Cluster.Enabled);
    }

    [Fact]
    public void Reading_reports_every_invalid_setting_of_every_section_at_once()
    {
        IConfiguration config = Config(
            ("Transport:PingInterval", "30s"), // does not convert: the binder's check
            ("Documents:MaxSubscriptionsPerConnection", "-1"), // converts, breaks a rule: the validator
            ("Limits:OpsBurst", "0"),
            ("Node:NodId", "x"), // a key no setting has
            ("Storage:SnapshotEveryOps", "1000"),
            ("Api:MaxReplayOps", "1500")); // breaks a rule spanning sections (at least twice Storage:SnapshotEveryOps)

        OptionsValidationException error = Assert.Throws<OptionsValidationException>(() => CollabSettings.Read(config));

        string[] failures = [.. error.Failures];
        Assert.True(failures.Length == 5, string.Join(" | ", failures));
        Assert.StartsWith("Transport:PingInterval: '30s' is not", failures[0], StringComparison.Ordinal);
        Assert.Equal("Documents:MaxSubscriptionsPerConnection: must be positive (was -1).", failures[1]);
        Assert.StartsWith("Node:NodId: is not a setting; did you mean Node:NodeId?", failures[2], StringComparison.Ordinal);
        Assert.StartsWith("Limits:OpsBurst:", failures[3], StringComparison.Ordinal);
        Assert.StartsWith("Api:MaxReplayOps: (1500) must be at least twice Storage:SnapshotEveryOps (1000)", failures[4], StringComparison.Ordinal);
    }

    [Fact]
    public void A_section_whose_settings_are_invalid_is_not_reported_again_through_a_rule_that_spans_it()
    {
        // Auth's cookie rule reads Transport:AllowedOrigins; an invalid Transport section is reported once, by itself.
        OptionsValidationException error = Assert.Throws<OptionsValidationException>(() => CollabSettings.Read(Config(("Transport:Port", "-1"))));

        Assert.StartsWith("Transport:Port:", Assert.Single(error.Failures), StringComparison.Ordinal);
    }

    [Fact]
    public void The_host_validates_the_settings_on_start_too()
    {
        using ServiceProvider provider = new ServiceCollection().AddCollabSettings(Config(("Documents:MaxSubscriptionsPerConnection", "-1"), ("Node:NodeId", ""))).BuildServiceProvider();

        // What the host runs at start for ValidateOnStart.
        var startup = provider.GetRequiredService<IStartupValidator>();
        Exception thrown = Assert.ThrowsAny<Exception>(startup.Validate);

        IEnumerable<OptionsValidationException> failures = thrown is AggregateException all
            ? all.InnerExceptions.Cast<OptionsValidationException>()
            : [Assert.IsType<OptionsValidationException>(thrown)];
        Assert.Contains(failures, f => f.OptionsType == typeof(NodeOptions));
    }
}
