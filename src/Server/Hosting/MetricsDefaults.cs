using System.Diagnostics.Metrics;
using Prometheus;

namespace Collab.Server.Hosting;

/// <summary>What prometheus-net's default registry publishes besides our own collab_* metrics.</summary>
internal static class MetricsDefaults
{
    /// <summary>
    /// Applies the filter to the .NET meters prometheus-net republishes. Call before the default registry is first
    /// used (it applies the callback when it starts its default collectors); later calls are harmless no-ops.
    /// </summary>
    public static void Apply() => Metrics.ConfigureMeterAdapter(options => options.InstrumentFilterPredicate = IsPublished);

    /// <summary>
    /// Kestrel's memory-pool meter records a measurement on every buffer rent and return, i.e. several per socket
    /// write: republished through the adapter (a dictionary lookup and a lock per measurement) it cost 8 % of the
    /// server's CPU in the small-rooms profile, for a figure our own transport metrics already give. The runtime's
    /// private diagnostics meters (QUIC internals) are not meant for users.
    /// </summary>
    internal static bool IsPublished(Instrument instrument) =>
        !instrument.Meter.Name.StartsWith("Microsoft.AspNetCore.MemoryPool", StringComparison.Ordinal)
        && !instrument.Meter.Name.StartsWith("Private.", StringComparison.Ordinal);
}
