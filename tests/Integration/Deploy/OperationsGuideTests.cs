using System.Text.RegularExpressions;

namespace Collab.Integration.Tests.Deploy;

/// <summary>
/// docs/OPERATIONS.md and deploy/prometheus say the same: every alert the guide recommends is a rule (same expression,
/// <c>for</c> and severity), every rule is in the guide, and every rule's runbook_url leads to a runbook there.
/// </summary>
public sealed partial class OperationsGuideTests
{
    private const string RunbookPrefix = "docs/OPERATIONS.md#";

    [Fact]
    public void The_alert_table_and_the_alert_rules_agree()
    {
        string section = Section(File.ReadAllText(DeployAssets.OperationsGuide), "What to alert on");
        var rows = TableRow().Matches(section).ToDictionary(m => m.Groups["alert"].Value, m => m, StringComparer.Ordinal);
        Assert.True(rows.Count >= 10, $"only {rows.Count} alert rows found in OPERATIONS.md's table");
        var alerts = DeployAssets.Alerts().ToDictionary(a => a.Alert!, StringComparer.Ordinal);

        Assert.Empty(rows.Keys.Except(alerts.Keys).Order(StringComparer.Ordinal));
        Assert.Empty(alerts.Keys.Except(rows.Keys).Order(StringComparer.Ordinal));
        foreach ((string name, Match row) in rows)
        {
            PrometheusRule rule = alerts[name];
            Assert.Equal(Normalize(rule.Expr), Normalize(row.Groups["expr"].Value));
            Assert.Equal(rule.For ?? "—", row.Groups["for"].Value);
            Assert.Equal(rule.Labels["severity"], row.Groups["severity"].Value);
        }
    }

    [Fact]
    public void Every_alert_has_a_runbook_in_the_guide_and_every_runbook_an_alert()
    {
        string guide = File.ReadAllText(DeployAssets.OperationsGuide);
        var anchors = Heading().Matches(Section(guide, "Runbooks"))
            .ToDictionary(m => DeployAssets.Anchor(m.Groups["title"].Value), m => m.Groups["title"].Value, StringComparer.Ordinal);
        var alerts = DeployAssets.Alerts();
        foreach (PrometheusRule alert in alerts)
        {
            string url = alert.Annotations["runbook_url"];
            Assert.StartsWith(RunbookPrefix, url, StringComparison.Ordinal);
            Assert.True(anchors.TryGetValue(url[RunbookPrefix.Length..], out string? title), $"{alert.Alert}: {url} has no heading under \"## Runbooks\"");
            Assert.Equal(alert.Alert, title);
        }

        Assert.Empty(anchors.Values.Except(alerts.Select(a => a.Alert!)).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_guide_links_to_the_deploy_files_and_every_link_resolves()
    {
        string guide = File.ReadAllText(DeployAssets.OperationsGuide);
        var targets = DeployLink().Matches(guide).Select(m => m.Groups["path"].Value).ToList();
        foreach (string expected in new[] { "rules/collab-alerts.yml", "compose.yaml", "grafana/dashboards/collab.json", "README.md" })
        {
            Assert.Contains(targets, t => t.EndsWith(expected, StringComparison.Ordinal));
        }

        foreach (string target in targets)
        {
            string path = Path.GetFullPath(Path.Combine(DeployAssets.RepositoryRoot, "docs", target));
            Assert.True(File.Exists(path) || System.IO.Directory.Exists(path), $"OPERATIONS.md links to {target}, which does not exist");
        }
    }

    /// <summary>The text of a "## " section, up to the next one.</summary>
    private static string Section(string markdown, string title)
    {
        int start = markdown.IndexOf($"\n## {title}\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"OPERATIONS.md has no \"## {title}\" section");
        int end = markdown.IndexOf("\n## ", start + 4, StringComparison.Ordinal);
        return end < 0 ? markdown[start..] : markdown[start..end];
    }

    private static string Normalize(string expr) => Whitespace().Replace(expr, " ").Trim();

    // | condition | `Alert` | severity | `expression` | for | why |
    [GeneratedRegex(@"^\| [^|]+ \| `(?<alert>Collab[A-Za-z]+)` \| (?<severity>[a-z]+) \| `(?<expr>[^`]+)` \| (?<for>[^ |]+) \| .+ \|$", RegexOptions.Multiline)]
    private static partial Regex TableRow();

    [GeneratedRegex(@"^### (?<title>.+)$", RegexOptions.Multiline)]
    private static partial Regex Heading();

    [GeneratedRegex(@"\]\((?<path>\.\./deploy/[^)#]*)\)")]
    private static partial Regex DeployLink();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
