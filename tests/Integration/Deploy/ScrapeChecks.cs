namespace Collab.Integration.Tests.Deploy;

/// <summary>What a real Prometheus scraping real Collab nodes must show for the rules and the dashboard of deploy/ to work.</summary>
internal static class ScrapeChecks
{
    /// <summary>Series only a clustered node exports (the ClusterMetrics holder is touched by cluster mode alone).</summary>
    public static bool IsClusterOnly(string name) => name.Contains("collab_cluster_", StringComparison.Ordinal);

    /// <summary>The distinct collab_* selectors of every rule and dashboard query, as written (dashboard variables substituted).</summary>
    public static async Task<IReadOnlyList<SeriesSelector>> CollabSelectorsAsync()
    {
        IReadOnlyList<ParsedExpression> parsed = await PromQl.ParseAsync(DeployAssets.AllExpressions());
        Assert.All(parsed, p => Assert.Empty(p.Errors));
        return parsed.SelectMany(p => p.Selectors)
            .Where(s => s.Name.StartsWith("collab_", StringComparison.Ordinal))
            .DistinctBy(s => s.Text)
            .ToList();
    }

    /// <summary>Waits until Prometheus holds at least one series for each selector (label matchers included).</summary>
    public static async Task AssertSeriesExistAsync(PrometheusServer prometheus, IReadOnlyList<SeriesSelector> selectors, TimeSpan timeout)
    {
        Assert.NotEmpty(selectors);
        await prometheus.WaitForAsync($"Prometheus did not get all {selectors.Count} collab_* series the rules and the dashboard select", async () =>
        {
            var missing = new List<string>();
            foreach (SeriesSelector selector in selectors)
            {
                if ((await prometheus.SeriesAsync(selector.Text)).Count == 0)
                {
                    missing.Add(selector.Text);
                }
            }

            return missing;
        }, timeout);
    }

    /// <summary>Waits until each recording rule named has produced a sample with a finite value (a quantile of an empty histogram is NaN).</summary>
    public static async Task AssertRecordedAsync(PrometheusServer prometheus, IEnumerable<string> names, TimeSpan timeout)
    {
        var expected = names.ToList();
        Assert.NotEmpty(expected);
        await prometheus.WaitForAsync("the recording rules did not all produce a finite value", async () =>
        {
            var missing = new List<string>();
            foreach (string name in expected)
            {
                var samples = await prometheus.QueryAsync(name);
                if (!samples.Any(s => double.IsFinite(s.Value)))
                {
                    missing.Add($"{name}: {(samples.Count == 0 ? "no sample" : string.Join(", ", samples.Select(s => s.Value)))}");
                }
            }

            return missing;
        }, timeout);
    }

    /// <summary>Waits until every rule has been evaluated, and fails on any evaluation error (e.g. many-to-many matching).</summary>
    public static async Task AssertRulesHealthyAsync(PrometheusServer prometheus, TimeSpan timeout)
    {
        int expected = DeployAssets.Rules().Count;
        await prometheus.WaitForAsync("not every rule evaluated cleanly", async () =>
        {
            var rules = await prometheus.RulesAsync();
            Assert.Equal(expected, rules.Count);
            var broken = rules.Where(r => r.Health == "err").Select(r => $"{r.Name}: {r.Error}").ToList();
            Assert.True(broken.Count == 0, "rules failed to evaluate:\n" + string.Join('\n', broken));
            return rules.Where(r => r.Health != "ok").Select(r => $"{r.Name}: {r.Health}").ToList();
        }, timeout);
    }

    /// <summary>
    /// Runs every dashboard query as Grafana would (variables substituted): none may fail, and each must come to return
    /// data (a rate needs two scrapes of a series) unless it filters with "&gt; 0" (only what is happening) or reads
    /// series this setup does not export.
    /// </summary>
    public static async Task AssertDashboardQueriesAnswerAsync(PrometheusServer prometheus, Func<string, bool> mayBeEmpty, TimeSpan timeout)
    {
        var queries = DeployAssets.DashboardQueries().Select(q => (q.Where, Expr: DeployAssets.SubstituteVariables(q.Expr))).ToList();
        await prometheus.WaitForAsync("dashboard queries returned no data", async () =>
        {
            var empty = new List<string>();
            var failures = new List<string>();
            foreach ((string where, string expr) in queries)
            {
                try
                {
                    var samples = await prometheus.QueryAsync(expr);
                    if (samples.Count == 0 && !expr.TrimEnd().EndsWith("> 0", StringComparison.Ordinal) && !mayBeEmpty(expr))
                    {
                        empty.Add($"{where}: {expr}");
                    }
                }
                catch (PrometheusQueryException ex)
                {
                    failures.Add($"{where}: {ex.Message}");
                }
            }

            Assert.True(failures.Count == 0, string.Join('\n', failures));
            return empty;
        }, timeout);
    }
}
