using Collab.LoadTest.Hosting;

namespace Collab.LoadTest.Reporting;

/// <summary>Where results go: --out-dir, else loadtest/results in the repository (gitignored), else ./results.</summary>
internal static class OutputPaths
{
    public static string Directory(LoadTestOptions options)
    {
        if (!string.IsNullOrEmpty(options.OutDir))
        {
            return Path.GetFullPath(options.OutDir);
        }

        string? root = ServerProcess.RepositoryRoot();
        return root is null ? Path.GetFullPath("results") : Path.Combine(root, "loadtest", "results");
    }

    /// <summary>The default file name stem: scenario, UTC time and the label, e.g. small-20250101-120000-quiet.</summary>
    public static string Stem(LoadTestOptions options, DateTime startedUtc)
    {
        string stem = $"{options.Scenario.ToString().ToLowerInvariant()}-{startedUtc:yyyyMMdd-HHmmss}";
        if (!string.IsNullOrWhiteSpace(options.Label))
        {
            stem += "-" + new string([.. options.Label.Select(static c => char.IsAsciiLetterOrDigit(c) ? c : '-')]);
        }

        return stem;
    }

    public static string Json(LoadTestOptions options, DateTime startedUtc) =>
        options.JsonPath ?? Path.Combine(Directory(options), Stem(options, startedUtc) + ".json");

    public static string? Chart(LoadTestOptions options, DateTime startedUtc) =>
        options.NoChart ? null : options.ChartPath ?? Path.Combine(Directory(options), Stem(options, startedUtc) + ".png");
}
