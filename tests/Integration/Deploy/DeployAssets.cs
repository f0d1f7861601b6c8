using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace Collab.Integration.Tests.Deploy;

/// <summary>An alert or recording rule of deploy/prometheus/rules.</summary>
internal sealed record PrometheusRule(
    string File,
    string Group,
    string? Alert,
    string? Record,
    string Expr,
    string? For,
    IReadOnlyDictionary<string, string> Labels,
    IReadOnlyDictionary<string, string> Annotations)
{
    public string Name => Alert ?? Record!;
}

/// <summary>One PromQL query of the Grafana dashboard: a panel target, or a template variable's query.</summary>
internal sealed record DashboardQuery(string Where, string Expr);

/// <summary>The files of deploy/ as the tests read them: YAML through YamlDotNet (anchors and merge keys resolved), JSON through System.Text.Json.</summary>
internal static partial class DeployAssets
{
    private static readonly Lazy<string> s_root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Collab.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Collab.sln not found above " + AppContext.BaseDirectory);
    });

    public static string RepositoryRoot => s_root.Value;

    public static string Directory => Path.Combine(RepositoryRoot, "deploy");

    public static string PrometheusDirectory => Path.Combine(Directory, "prometheus");

    public static string PrometheusConfig => Path.Combine(PrometheusDirectory, "prometheus.yml");

    public static string ComposeFile => Path.Combine(Directory, "compose.yaml");

    public static string DashboardFile => Path.Combine(Directory, "grafana", "dashboards", "collab.json");

    public static string OperationsGuide => Path.Combine(RepositoryRoot, "docs", "OPERATIONS.md");

    /// <summary>The job the alerts and the dashboard expect Prometheus to scrape Collab nodes under.</summary>
    public const string Job = "collab";

    // ------------------------------------------------------------------ YAML

    /// <summary>A YAML document as plain objects: mappings are <c>Dictionary&lt;object, object&gt;</c>, sequences <c>List&lt;object&gt;</c>, scalars strings.</summary>
    public static object LoadYaml(string path)
    {
        using var reader = new StringReader(File.ReadAllText(path));
        IDeserializer deserializer = new DeserializerBuilder().Build();
        return deserializer.Deserialize<object>(new MergingParser(new Parser(reader)))
            ?? throw new InvalidDataException($"{path} is empty");
    }

    public static string ToYaml(object document) => new SerializerBuilder().Build().Serialize(document);

    public static Dictionary<object, object> Map(object? node, string what) =>
        node as Dictionary<object, object> ?? throw new InvalidDataException($"{what} is not a mapping");

    public static List<object> Seq(object? node, string what) =>
        node as List<object> ?? throw new InvalidDataException($"{what} is not a sequence");

    public static string Str(object? node, string what) =>
        node as string ?? throw new InvalidDataException($"{what} is not a scalar");

    public static object? Get(this Dictionary<object, object> map, string key) => map.TryGetValue(key, out object? value) ? value : null;

    public static IReadOnlyDictionary<string, string> StringMap(object? node, string what) =>
        node is null
            ? new Dictionary<string, string>()
            : Map(node, what).ToDictionary(kv => Str(kv.Key, what), kv => Str(kv.Value, $"{what}.{kv.Key}"), StringComparer.Ordinal);

    // ------------------------------------------------------------------ Prometheus

    /// <summary>The rule files prometheus.yml loads, as absolute paths (so the tests read exactly what Prometheus will).</summary>
    public static IReadOnlyList<string> RuleFiles()
    {
        var config = Map(LoadYaml(PrometheusConfig), "prometheus.yml");
        return Seq(config.Get("rule_files"), "rule_files")
            .Select(f => Path.GetFullPath(Path.Combine(PrometheusDirectory, Str(f, "rule_files[]"))))
            .ToList();
    }

    public static IReadOnlyList<PrometheusRule> Rules()
    {
        var rules = new List<PrometheusRule>();
        foreach (string file in RuleFiles())
        {
            var document = Map(LoadYaml(file), file);
            foreach (object groupNode in Seq(document.Get("groups"), $"{file}: groups"))
            {
                var group = Map(groupNode, "group");
                string groupName = Str(group.Get("name"), "group name");
                foreach (object ruleNode in Seq(group.Get("rules"), $"{groupName}: rules"))
                {
                    var rule = Map(ruleNode, "rule");
                    rules.Add(new PrometheusRule(
                        Path.GetFileName(file),
                        groupName,
                        rule.Get("alert") as string,
                        rule.Get("record") as string,
                        Str(rule.Get("expr"), "expr"),
                        rule.Get("for") as string,
                        StringMap(rule.Get("labels"), "labels"),
                        StringMap(rule.Get("annotations"), "annotations")));
                }
            }
        }

        return rules;
    }

    public static IReadOnlyList<PrometheusRule> Alerts() => Rules().Where(r => r.Alert is not null).ToList();

    public static IReadOnlySet<string> RecordedNames() => Rules().Where(r => r.Record is not null).Select(r => r.Record!).ToHashSet(StringComparer.Ordinal);

    // ------------------------------------------------------------------ Grafana

    /// <summary>Every PromQL query of the dashboard, as Grafana stores it (variables not yet substituted).</summary>
    public static IReadOnlyList<DashboardQuery> DashboardQueries()
    {
        using JsonDocument dashboard = JsonDocument.Parse(File.ReadAllText(DashboardFile));
        var queries = new List<DashboardQuery>();
        foreach (JsonElement variable in dashboard.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray())
        {
            if (variable.GetProperty("type").GetString() != "query")
            {
                continue;
            }

            string definition = variable.GetProperty("definition").GetString()!;
            Match labelValues = LabelValues().Match(definition);
            Assert.True(labelValues.Success, $"variable {variable.GetProperty("name")}: only label_values(selector, label) queries are expected, not \"{definition}\"");
            queries.Add(new DashboardQuery($"variable ${variable.GetProperty("name").GetString()}", labelValues.Groups["selector"].Value));
        }

        foreach (JsonElement panel in AllPanels(dashboard.RootElement.GetProperty("panels")))
        {
            if (!panel.TryGetProperty("targets", out JsonElement targets))
            {
                continue;
            }

            foreach (JsonElement target in targets.EnumerateArray())
            {
                queries.Add(new DashboardQuery($"panel \"{panel.GetProperty("title").GetString()}\" {target.GetProperty("refId").GetString()}", target.GetProperty("expr").GetString()!));
            }
        }

        return queries;
    }

    /// <summary>Panels, including those inside collapsed rows.</summary>
    public static IEnumerable<JsonElement> AllPanels(JsonElement panels)
    {
        foreach (JsonElement panel in panels.EnumerateArray())
        {
            yield return panel;
            if (panel.TryGetProperty("panels", out JsonElement nested))
            {
                foreach (JsonElement inner in AllPanels(nested))
                {
                    yield return inner;
                }
            }
        }
    }

    /// <summary>
    /// A dashboard query as Grafana sends it: its built-in interval variables become durations, $job the scraped job
    /// and $instance (a multi-value variable, "All" = <c>.*</c>) a regular expression.
    /// </summary>
    public static string SubstituteVariables(string expr, string job = Job, string instances = ".*") => expr
        .Replace("$__rate_interval", "1m", StringComparison.Ordinal)
        .Replace("$__interval", "15s", StringComparison.Ordinal)
        .Replace("$__range", "1h", StringComparison.Ordinal)
        .Replace("$job", job, StringComparison.Ordinal)
        .Replace("$instance", instances, StringComparison.Ordinal);

    /// <summary>Every PromQL expression of deploy/: the rules' and the dashboard's (variables substituted).</summary>
    public static IReadOnlyList<(string Id, string Expr)> AllExpressions() =>
        Rules().Select(r => ($"{r.File} {r.Name}", r.Expr))
            .Concat(DashboardQueries().Select(q => (q.Where, SubstituteVariables(q.Expr))))
            .ToList();

    // ------------------------------------------------------------------ docs

    /// <summary>GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens.</summary>
    public static string Anchor(string heading) =>
        AnchorDropped().Replace(heading.Trim().ToLower(CultureInfo.InvariantCulture), string.Empty).Replace(' ', '-');

    [GeneratedRegex(@"^label_values\((?<selector>.+),\s*(?<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*\)$")]
    private static partial Regex LabelValues();

    [GeneratedRegex(@"[^\p{L}\p{N}\- _]")]
    private static partial Regex AnchorDropped();
}
