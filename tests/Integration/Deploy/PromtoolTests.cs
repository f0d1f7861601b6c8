namespace Collab.Integration.Tests.Deploy;

/// <summary>
/// The Prometheus files of deploy/ pass Prometheus's own checker (promtool, Debian package 'prometheus'), and every
/// alert is unit-tested with promtool: a case where it fires, with its labels and rendered annotations, and one where it
/// must stay quiet.
/// </summary>
public sealed class PromtoolTests
{
    private static readonly string[] s_severities = ["critical", "warning", "info"];

    [Fact]
    public async Task Promtool_accepts_the_scrape_config_and_every_rule_file_it_loads()
    {
        string promtool = Tool.Require("promtool");
        Tool.Result config = await Tool.RunAsync(promtool, ["check", "config", DeployAssets.PrometheusConfig], DeployAssets.PrometheusDirectory);
        Assert.True(config.ExitCode == 0, config.Output);
        IReadOnlyList<string> ruleFiles = DeployAssets.RuleFiles();
        Assert.Contains($"SUCCESS: {ruleFiles.Count} rule files found", config.Output, StringComparison.Ordinal);

        foreach (string file in ruleFiles)
        {
            Tool.Result rules = await Tool.RunAsync(promtool, ["check", "rules", file]);
            Assert.True(rules.ExitCode == 0, rules.Output);
            int count = DeployAssets.Rules().Count(r => r.File == Path.GetFileName(file));
            Assert.Contains($"SUCCESS: {count} rules found", rules.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Promtool_rejects_a_rule_file_with_an_error_so_the_check_above_can_fail()
    {
        string promtool = Tool.Require("promtool");
        string directory = System.IO.Directory.CreateTempSubdirectory("collab-promtool-").FullName;
        try
        {
            string broken = Path.Combine(directory, "broken.yml");
            string text = await File.ReadAllTextAsync(DeployAssets.RuleFiles()[0]);
            await File.WriteAllTextAsync(broken, text.Replace("rate(", "rate((", StringComparison.Ordinal));
            Tool.Result result = await Tool.RunAsync(promtool, ["check", "rules", broken]);
            Assert.NotEqual(0, result.ExitCode);
        }
        finally
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Every_alert_has_a_severity_a_summary_a_description_and_a_runbook()
    {
        IReadOnlyList<PrometheusRule> alerts = DeployAssets.Alerts();
        Assert.NotEmpty(alerts);
        Assert.Equal(alerts.Count, alerts.Select(a => a.Alert).Distinct(StringComparer.Ordinal).Count());
        foreach (PrometheusRule alert in alerts)
        {
            Assert.True(alert.Alert!.StartsWith("Collab", StringComparison.Ordinal), $"{alert.Alert}: alert names start with Collab (the dashboard counts ALERTS{{alertname=~\"Collab.*\"}})");
            Assert.True(alert.Labels.TryGetValue("severity", out string? severity) && s_severities.Contains(severity), $"{alert.Alert}: severity must be one of {string.Join(", ", s_severities)}");
            foreach (string annotation in new[] { "summary", "description", "runbook_url" })
            {
                Assert.True(alert.Annotations.TryGetValue(annotation, out string? value) && value.Length > 0, $"{alert.Alert}: no {annotation}");
            }
        }
    }

    [Fact]
    public async Task The_alert_unit_tests_pass_and_cover_every_alert_firing_and_quiet()
    {
        string promtool = Tool.Require("promtool");
        string[] testFiles = System.IO.Directory.GetFiles(Path.Combine(DeployAssets.PrometheusDirectory, "tests"), "*.test.yml");
        Assert.NotEmpty(testFiles);
        var firing = new HashSet<string>(StringComparer.Ordinal);
        var quiet = new HashSet<string>(StringComparer.Ordinal);
        foreach (string file in testFiles)
        {
            Tool.Result result = await Tool.RunAsync(promtool, ["test", "rules", Path.GetFileName(file)], Path.GetDirectoryName(file));
            Assert.True(result.ExitCode == 0, result.Output);
            Assert.Contains("SUCCESS", result.Output, StringComparison.Ordinal);

            var document = DeployAssets.Map(DeployAssets.LoadYaml(file), file);
            var ruleFiles = DeployAssets.Seq(document.Get("rule_files"), "rule_files")
                .Select(f => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, DeployAssets.Str(f, "rule_files[]"))));
            Assert.Equal(DeployAssets.RuleFiles().Order(), ruleFiles.Order());
            foreach (object testNode in DeployAssets.Seq(document.Get("tests"), "tests"))
            {
                var test = DeployAssets.Map(testNode, "test");
                foreach (object caseNode in test.Get("alert_rule_test") as List<object> ?? [])
                {
                    var alertCase = DeployAssets.Map(caseNode, "alert_rule_test");
                    string name = DeployAssets.Str(alertCase.Get("alertname"), "alertname");
                    var expected = alertCase.Get("exp_alerts") as List<object> ?? [];
                    if (expected.Count == 0)
                    {
                        quiet.Add(name);
                        continue;
                    }

                    firing.Add(name);
                    foreach (object alertNode in expected)
                    {
                        var annotations = DeployAssets.StringMap(DeployAssets.Map(alertNode, "exp_alerts[]").Get("exp_annotations"), "exp_annotations");
                        Assert.True(annotations.ContainsKey("summary") && annotations.ContainsKey("runbook_url"), $"{name}: a firing case must check the rendered summary and runbook_url");
                    }
                }
            }
        }

        var alerts = DeployAssets.Alerts().Select(a => a.Alert!).ToHashSet(StringComparer.Ordinal);
        Assert.Empty(alerts.Except(firing).Order(StringComparer.Ordinal));
        Assert.Empty(alerts.Except(quiet).Order(StringComparer.Ordinal));
        Assert.Empty(firing.Union(quiet).Except(alerts).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Promtool_fails_a_unit_test_whose_expectation_is_wrong_so_the_test_above_can_fail()
    {
        string promtool = Tool.Require("promtool");
        string directory = System.IO.Directory.CreateTempSubdirectory("collab-promtool-").FullName;
        try
        {
            // The storage alert must fire 2 minutes after commits start failing; expecting silence is wrong.
            string rules = string.Join('\n', DeployAssets.RuleFiles().Select(f => $"  - {f}"));
            await File.WriteAllTextAsync(Path.Combine(directory, "wrong.test.yml"), $$"""
                rule_files:
                {{rules}}
                evaluation_interval: 1m
                tests:
                  - interval: 1m
                    input_series:
                      - series: 'collab_storage_ready{job="collab",instance="node1"}'
                        values: '1 0 0 0 0 0'
                    alert_rule_test:
                      - eval_time: 4m
                        alertname: CollabStorageNotReady
                        exp_alerts: []
                """);
            Tool.Result result = await Tool.RunAsync(promtool, ["test", "rules", "wrong.test.yml"], directory);
            Assert.NotEqual(0, result.ExitCode);
            Assert.Contains("CollabStorageNotReady", result.Output, StringComparison.Ordinal);
        }
        finally
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
    }
}
