using System.Diagnostics.Metrics;
using Collab.Server.Hosting;

namespace Collab.Server.Tests.Hosting;

public sealed class MetricsDefaultsTests
{
    [Theory]
    [InlineData("Microsoft.AspNetCore.MemoryPool", false)] // a measurement per buffer rent: too hot to republish
    [InlineData("Private.InternalDiagnostics.System.Net.Quic", false)]
    [InlineData("Microsoft.AspNetCore.Server.Kestrel", true)]
    [InlineData("System.Runtime", true)]
    [InlineData("Collab.Anything", true)]
    public void Only_hot_and_private_meters_are_kept_out_of_metrics(string meterName, bool published)
    {
        using var meter = new Meter(meterName);
        Counter<long> instrument = meter.CreateCounter<long>("test.instrument");
        Assert.Equal(published, MetricsDefaults.IsPublished(instrument));
    }
}
