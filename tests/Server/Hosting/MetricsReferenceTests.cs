using System.Text;
using System.Text.RegularExpressions;
using Collab.Server.Cluster;
using Collab.Server.Storage;
using Collab.Testing;
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
        IReadOnlyList<Type> holders = MetricHolders.TouchAll();
        Assert.Contains(typeof(ClusterMetrics), holders);
        Assert.Contains(typeof(StorageMetrics), holders);

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

    /// <summary>
    /// One pattern (docs/OPERATIONS.md, "Metrics in the code"): prometheus-net metrics are declared only in the
    /// per-concern <c>*Metrics</c> classes, never inline in the class that updates them, so the list above finds them all.
    /// </summary>
    [Fact]
    public void Metrics_are_declared_only_in_the_per_concern_metrics_classes()
    {
        string source = RepositoryFiles.PathOf("src/Server");
        var stray = Directory.EnumerateFiles(source, "*.cs", SearchOption.AllDirectories)
            .Where(static f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Where(static f => !Path.GetFileNameWithoutExtension(f).EndsWith("Metrics", StringComparison.Ordinal)
                && Path.GetFileName(f) != "MetricsDefaults.cs") // the process_* and dotnet_* collector, not collab_* series
            .Where(static f => MetricDeclaration().IsMatch(File.ReadAllText(f)))
            .Select(f => Path.GetRelativePath(source, f))
            .Order(StringComparer.Ordinal);

        Assert.Empty(stray);
    }

    [GeneratedRegex(@"\bCreate(Counter|Gauge|Histogram|Summary)\(")]
    private static partial Regex MetricDeclaration();

    [GeneratedRegex(@"^# TYPE (collab_[a-z0-9_]+) ", RegexOptions.Multiline)]
    private static partial Regex TypeLine();

    // A metric's own row in the reference tables: | `collab_...` | type | ...
    [GeneratedRegex(@"^\| `(collab_[a-z0-9_]+)` \|", RegexOptions.Multiline)]
    private static partial Regex DocumentedName();
}
