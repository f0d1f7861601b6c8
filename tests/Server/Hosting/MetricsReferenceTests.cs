using System.Runtime.CompilerServices;
using System.Text;
using System.Text.RegularExpressions;
using Collab.Server.Cluster;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Storage;
using Collab.Testing;
using Collab.Server.Transport;
using Prometheus;

namespace Collab.Server.Tests.Hosting;

/// <summary>
/// docs/OPERATIONS.md is the reference operators alert on: every collab_* series the server can export must be in it
/// (a metric added without a line there fails here), and nothing it documents may be a name the server no longer has.
/// </summary>
public sealed partial class MetricsReferenceTests
{
    [Fact]
    public async Task The_operations_guide_describes_exactly_the_collab_metrics_the_server_registers()
    {
        // Every holder of collab_* metrics, touched so that its metrics exist in the default registry whatever else
        // this test process has or has not run (the cluster's only appear on a clustered node, for instance).
        _ = TransportMetrics.Instance;
        _ = new StorageMetrics();
        foreach (Type holder in new[] { typeof(SessionMetrics), typeof(SecurityMetrics), typeof(ClusterMetrics), typeof(RetentionService), typeof(Collab.Server.Api.HistoryReader), typeof(Collab.Server.Hosting.LatencyMetrics) })
        {
            RuntimeHelpers.RunClassConstructor(holder.TypeHandle);
        }

        using var stream = new MemoryStream();
        await Metrics.DefaultRegistry.CollectAndExportAsTextAsync(stream);
        string exposition = Encoding.UTF8.GetString(stream.ToArray());
        var registered = TypeLine().Matches(exposition).Select(static m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        Assert.True(registered.Count >= 60, $"only {registered.Count} collab_* families registered: a holder was missed");

        string guide = await File.ReadAllTextAsync(RepositoryFiles.PathOf("docs/OPERATIONS.md"));
        var documented = DocumentedName().Matches(guide).Select(static m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);

        Assert.Empty(registered.Except(documented).Order(StringComparer.Ordinal));
        Assert.Empty(documented.Except(registered).Order(StringComparer.Ordinal));
    }

    [GeneratedRegex(@"^# TYPE (collab_[a-z0-9_]+) ", RegexOptions.Multiline)]
    private static partial Regex TypeLine();

    // A metric's own row in the reference tables: | `collab_...` | type | ...
    [GeneratedRegex(@"^\| `(collab_[a-z0-9_]+)` \|", RegexOptions.Multiline)]
    private static partial Regex DocumentedName();
}
