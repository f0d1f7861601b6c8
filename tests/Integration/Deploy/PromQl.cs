using System.Text.Json;

namespace Collab.Integration.Tests.Deploy;

/// <summary>A label matcher of a selector: <c>reason="failed"</c>.</summary>
internal sealed record LabelMatcher(string Label, string Op, string Value);

/// <summary>A series selector: the metric it names and its label matchers.</summary>
internal sealed record SeriesSelector(string Name, string Text, IReadOnlyList<LabelMatcher> Matchers);

/// <summary>What an expression selects, or why it does not parse.</summary>
internal sealed record ParsedExpression(string Id, IReadOnlyList<string> Errors, IReadOnlyList<SeriesSelector> Selectors);

/// <summary>
/// PromQL parsed by Prometheus's own grammar (@prometheus-io/lezer-promql, the parser of its web UI), run by Node from
/// tests/Integration/Deploy/node. No .NET PromQL parser is kept well enough to trust; this one is Prometheus's.
/// </summary>
internal static class PromQl
{
    private static readonly SemaphoreSlim s_install = new(1, 1);
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);

    public static async Task<IReadOnlyList<ParsedExpression>> ParseAsync(IEnumerable<(string Id, string Expr)> expressions)
    {
        string directory = Path.Combine(DeployAssets.RepositoryRoot, "tests", "Integration", "Deploy", "node");
        await EnsureInstalledAsync(directory);
        string input = JsonSerializer.Serialize(expressions.Select(e => new { id = e.Id, expr = e.Expr }));
        Tool.Result result = await Tool.RunAsync("node", ["promql-selectors.mjs"], directory, input);
        Assert.True(result.ExitCode == 0, "the PromQL parser failed: " + result.Output);
        return JsonSerializer.Deserialize<List<ParsedExpression>>(result.StandardOutput, s_json)
            ?? throw new InvalidDataException("the PromQL parser printed nothing");
    }

    /// <summary>The same <c>npm ci</c> scripts/install-test-deps.sh runs, for a checkout where it has not run.</summary>
    private static async Task EnsureInstalledAsync(string directory)
    {
        await s_install.WaitAsync();
        try
        {
            if (File.Exists(Path.Combine(directory, "node_modules", "@prometheus-io", "lezer-promql", "package.json")))
            {
                return;
            }

            Tool.Result install = await Tool.RunAsync("npm", ["ci", "--no-audit", "--no-fund"], directory, timeout: TimeSpan.FromMinutes(3));
            Assert.True(install.ExitCode == 0, "npm ci failed: " + install.Output);
        }
        finally
        {
            s_install.Release();
        }
    }
}
