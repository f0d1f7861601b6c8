namespace Collab.Integration.Tests.Deploy;

/// <summary>
/// Every expression of deploy/ (alert and recording rules, the dashboard's panels and variables) parses as PromQL and
/// names only series that exist: metrics the server registers, series the recording rules make, and the two
/// Prometheus makes itself (<c>up</c>, <c>ALERTS</c>). A renamed metric fails here instead of leaving an alert that
/// can never fire or an empty panel.
/// </summary>
public sealed class MetricNameTests
{
    /// <summary>Series Prometheus itself writes: scrape health and the state of alerts.</summary>
    private static readonly string[] s_prometheusSeries = ["up", "ALERTS"];

    [Fact]
    public async Task Every_rule_and_dashboard_expression_parses_and_names_existing_metrics()
    {
        IReadOnlySet<string> registered = await RegisteredMetrics.SampleNamesAsync();
        Assert.Contains("collab_submit_ack_seconds_bucket", registered);
        Assert.Contains("collab_cluster_live_nodes", registered);
        Assert.Contains("process_cpu_seconds_total", registered);
        Assert.Contains("system_runtime_dotnet_process_cpu_count", registered);

        IReadOnlySet<string> recorded = DeployAssets.RecordedNames();
        IReadOnlyList<ParsedExpression> parsed = await PromQl.ParseAsync(DeployAssets.AllExpressions());
        Assert.True(parsed.Count > 100, $"only {parsed.Count} expressions found in deploy/");

        var problems = new List<string>();
        foreach (ParsedExpression expression in parsed)
        {
            problems.AddRange(expression.Errors.Select(e => $"{expression.Id}: {e}"));
            if (expression.Selectors.Count == 0 && expression.Errors.Count == 0)
            {
                problems.Add($"{expression.Id}: selects no series");
            }

            foreach (SeriesSelector selector in expression.Selectors)
            {
                if (!registered.Contains(selector.Name) && !recorded.Contains(selector.Name) && !s_prometheusSeries.Contains(selector.Name))
                {
                    problems.Add($"{expression.Id}: {selector.Name} is neither a metric the server registers nor a recorded series");
                }
            }
        }

        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    [Fact]
    public async Task The_parser_reports_a_syntax_error_and_an_unknown_metric_so_the_test_above_can_fail()
    {
        IReadOnlyList<ParsedExpression> parsed = await PromQl.ParseAsync(
        [
            ("unbalanced", "sum(rate(collab_ops_committed_total[5m])"),
            ("unnamed", "{__name__=~\"collab_.*\"}"),
            ("renamed", "rate(collab_ops_commited_total{job=\"collab\"}[5m]) / on (instance) collab_storage_ready"),
        ]);
        Assert.NotEmpty(parsed.Single(p => p.Id == "unbalanced").Errors);
        Assert.NotEmpty(parsed.Single(p => p.Id == "unnamed").Errors);
        ParsedExpression renamed = parsed.Single(p => p.Id == "renamed");
        Assert.Empty(renamed.Errors);
        Assert.Equal(["collab_ops_commited_total", "collab_storage_ready"], renamed.Selectors.Select(s => s.Name));
        Assert.Equal(new LabelMatcher("job", "=", "collab"), Assert.Single(renamed.Selectors[0].Matchers));
        Assert.DoesNotContain("collab_ops_commited_total", await RegisteredMetrics.SampleNamesAsync());
    }

    [Fact]
    public async Task Every_recording_rule_is_used_by_an_alert_or_the_dashboard()
    {
        IReadOnlyList<ParsedExpression> parsed = await PromQl.ParseAsync(DeployAssets.AllExpressions());
        // A rule never selects its own series (Prometheus refuses recursive rules), so any use is another's.
        var used = parsed.SelectMany(p => p.Selectors).Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        Assert.Empty(DeployAssets.RecordedNames().Except(used).Order(StringComparer.Ordinal));
    }
}
