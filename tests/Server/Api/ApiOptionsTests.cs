using Collab.Server.Api;
using Collab.Server.Storage;
using Collab.Server.Web;
using Microsoft.Extensions.Options;

namespace Collab.Server.Tests.Api;

/// <summary>The API, web and new storage settings: defaults and start-up validation.</summary>
public sealed class ApiOptionsTests
{
    [Fact]
    public void K_defaults_to_5000_or_twice_the_snapshot_interval_and_an_explicit_one_must_cover_two_intervals()
    {
        var defaults = new ApiOptions();
        defaults.Validate(snapshotEveryOps: 1000);
        Assert.Equal(5_000, defaults.ReplayBound);

        var sparse = new ApiOptions();
        sparse.Validate(snapshotEveryOps: 100_000);
        Assert.Equal(200_000, sparse.ReplayBound);

        OptionsValidationException error = Assert.Throws<OptionsValidationException>(() => new ApiOptions { MaxReplayOps = 1_500 }.Validate(snapshotEveryOps: 1000));
        Assert.Contains("MaxReplayOps", error.Message);
        Assert.Throws<OptionsValidationException>(() => new ApiOptions { DefaultPageSize = 2_000, MaxPageSize = 1_000 }.Validate(1000));
    }

    [Fact]
    public void History_is_kept_by_default_and_a_read_replica_needs_postgres()
    {
        var storage = new StorageOptions();
        Assert.Null(storage.OpRetention);
        Assert.Equal(0, storage.SnapshotsToKeep);
        storage.Validate();

        OptionsValidationException error = Assert.Throws<OptionsValidationException>(() => new StorageOptions { ReadReplicaConnectionString = "Host=replica" }.Validate());
        Assert.Contains("ReadReplicaConnectionString", error.Message);
        new StorageOptions { Provider = StorageProvider.Postgres, PostgresConnectionString = "Host=db", ReadReplicaConnectionString = "Host=replica" }.Validate();
    }

    [Theory]
    [InlineData(null, false, false, true)]
    [InlineData(null, true, false, false)]
    [InlineData(null, false, true, false)]
    [InlineData(true, true, true, true)]
    [InlineData(false, false, false, false)]
    public void The_page_is_on_by_default_only_in_anonymous_single_node_mode(bool? enabled, bool jwt, bool cluster, bool served) =>
        Assert.Equal(served, new WebOptions { Enabled = enabled }.IsEnabled(jwt, cluster));
}
