using System.Diagnostics;

namespace Collab.Engine.Tests.RichText;

/// <summary>
/// Runs the npm oracle's case generator (tests/Engine/oracle/generate.mjs) as a real node process. Its dependencies
/// come from the committed package-lock.json: scripts/install-test-deps.sh runs <c>npm ci</c> there, and the test
/// runs the same command itself when node_modules is missing.
/// </summary>
internal static class OracleProcess
{
    private static readonly SemaphoreSlim s_install = new(1, 1);

    public static string Directory { get; } = FindDirectory();

    /// <summary>Runs <c>node generate.mjs</c> with <paramref name="arguments"/> and hands each stdout line to <paramref name="onLine"/> as it arrives.</summary>
    public static async Task RunAsync(string arguments, Action<string> onLine, TimeSpan timeout)
    {
        await EnsureInstalledAsync();
        var start = new ProcessStartInfo("node", "generate.mjs " + arguments)
        {
            WorkingDirectory = Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using Process process = Process.Start(start) ?? throw new InvalidOperationException("could not start node");
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (await process.StandardOutput.ReadLineAsync(cts.Token) is { } line)
            {
                onLine(line);
            }

            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"node generate.mjs {arguments} did not finish within {timeout}: {await stderr}");
        }
        catch
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            throw;
        }

        Assert.True(process.ExitCode == 0, $"node generate.mjs {arguments} exited with {process.ExitCode}: {await stderr}");
    }

    private static async Task EnsureInstalledAsync()
    {
        await s_install.WaitAsync();
        try
        {
            if (File.Exists(Path.Combine(Directory, "node_modules", "rich-text", "package.json"))
                && File.Exists(Path.Combine(Directory, "node_modules", "quill-delta", "package.json")))
            {
                return;
            }

            var start = new ProcessStartInfo("npm", "ci --no-audit --no-fund")
            {
                WorkingDirectory = Directory,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using Process process = Process.Start(start) ?? throw new InvalidOperationException("could not start npm");
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
            Assert.True(process.ExitCode == 0, "npm ci failed: " + await stdout + await stderr);
        }
        finally
        {
            s_install.Release();
        }
    }

    private static string FindDirectory()
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "Engine", "oracle");
            if (File.Exists(Path.Combine(candidate, "package-lock.json")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/Engine/oracle not found above " + AppContext.BaseDirectory);
    }
}
