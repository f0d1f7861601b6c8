using System.Text;
using System.Text.RegularExpressions;
using Collab.Server.Hosting;
using Collab.Testing;
using Prometheus;

namespace Collab.Integration.Tests.Deploy;

/// <summary>
/// The sample names the server can export, read from its metrics registry the way MetricsReferenceTests does: every
/// holder of collab_* metrics is touched (the cluster's only exist on a clustered node otherwise), the default
/// registry configured as the server configures it (process_* and dotnet_* collectors, the runtime's meters), then
/// exported. A histogram family <c>x</c> exports <c>x_bucket</c>, <c>x_sum</c> and <c>x_count</c>.
/// </summary>
internal static partial class RegisteredMetrics
{
    public static async Task<IReadOnlySet<string>> SampleNamesAsync()
    {
        MetricsDefaults.Apply();
        MetricHolders.TouchAll();

        var names = new HashSet<string>(StringComparer.Ordinal);
        // The runtime's observable meters are published once the meter adapter has seen them, which can take a
        // collection or two after the registry is first configured.
        for (int attempt = 0; attempt < 50 && !names.Contains("system_runtime_dotnet_process_cpu_count"); attempt++)
        {
            if (attempt > 0)
            {
                await Task.Delay(100);
            }

            using var stream = new MemoryStream();
            await Metrics.DefaultRegistry.CollectAndExportAsTextAsync(stream);
            foreach (Match type in TypeLine().Matches(Encoding.UTF8.GetString(stream.ToArray())))
            {
                string family = type.Groups["name"].Value;
                switch (type.Groups["type"].Value)
                {
                    case "histogram":
                        names.UnionWith([family + "_bucket", family + "_sum", family + "_count"]);
                        break;
                    case "summary":
                        names.UnionWith([family, family + "_sum", family + "_count"]);
                        break;
                    default:
                        names.Add(family);
                        break;
                }
            }
        }

        return names;
    }

    [GeneratedRegex(@"^# TYPE (?<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (?<type>[a-z]+)$", RegexOptions.Multiline)]
    private static partial Regex TypeLine();
}
