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

    /// <summary>
    /// The default file name stem: scenario, the server when it is not Collab, UTC time, the label and the run's tag
    /// when one invocation makes several runs, e.g. small-sharedb-20250101-120000-quiet-sharedb-2.
    /// </summary>
    public static string Stem(LoadTestOptions options, DateTime startedUtc)
    {
        string server = options.Target == Client.ServerKind.ShareDb ? "-sharedb" : string.Empty;
        string stem = $"{options.Scenario.ToString().ToLowerInvariant()}{server}-{startedUtc:yyyyMMdd-HHmmss}";
        if (!string.IsNullOrWhiteSpace(options.Label))
        {
            stem += "-" + new string([.. options.Label.Select(static c => char.IsAsciiLetterOrDigit(c) ? c : '-')]);
        }

        return options.RunTag is null ? stem : stem + "-" + options.RunTag;
    }

    public static string Json(LoadTestOptions options, DateTime startedUtc) =>
        Tagged(options, options.JsonPath) ?? Path.Combine(Directory(options), Stem(options, startedUtc) + ".json");

    public static string? Chart(LoadTestOptions options, DateTime startedUtc) =>
        options.NoChart ? null : Tagged(options, options.ChartPath) ?? Path.Combine(Directory(options), Stem(options, startedUtc) + ".png");

    /// <summary>A path given on the command line, with the run's tag before its extension when there are several runs.</summary>
    private static string? Tagged(LoadTestOptions options, string? path) =>
        path is null || options.RunTag is null
            ? path
            : Path.Combine(Path.GetDirectoryName(path) ?? string.Empty, $"{Path.GetFileNameWithoutExtension(path)}-{options.RunTag}{Path.GetExtension(path)}");
}
