using System.Diagnostics;
using Collab.LoadTest.Hosting;
using Collab.LoadTest.Reporting;
using Collab.LoadTest.Scenarios;

namespace Collab.LoadTest;

/// <summary>Entry point: parse, pin (re-exec under taskset), raise the fd limit, run, report.</summary>
internal static class Program
{
    /// <summary>Set in the environment of the pinned re-execution so it does not re-execute again.</summary>
    public const string ReexecMarker = "COLLAB_LOADTEST_PINNED";

    private const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    public static async Task<int> Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "compare")
        {
            return Compare(args[1..]);
        }

        LoadTestOptions options;
        try
        {
            options = LoadTestOptions.Parse(args);
        }
        catch (OptionsException ex)
        {
            if (ex.IsHelp)
            {
                Console.WriteLine(LoadTestOptions.Usage);
                return 0;
            }

            Console.Error.WriteLine("error: " + ex.Message);
            Console.Error.WriteLine();
            Console.Error.WriteLine(LoadTestOptions.Usage);
            return 2;
        }

        if (options.GeneratorCpus is { } cpus && Environment.GetEnvironmentVariable(ReexecMarker) is null && OperatingSystem.IsLinux())
        {
            return await RunPinnedAsync(cpus, options.Nice, args, options.InlineCompletions).ConfigureAwait(false);
        }

        if (options.InlineCompletions)
        {
            // Socket continuations run on the epoll thread itself: no thread-pool hop per received message, which
            // on a one-core generator is the difference between measuring the server and measuring the pool.
            // Read once, when the socket engine starts, so it must be set before the first socket exists.
            Environment.SetEnvironmentVariable(InlineCompletionsVariable, "1");
        }

        ulong openFiles = Native.RaiseOpenFileLimit();
        int needed = options.Connections + options.Docs + 64;
        if (openFiles != 0 && openFiles < (ulong)needed)
        {
            Console.Error.WriteLine($"warning: the open-files limit is {openFiles}, below the {needed} this run needs; raise `ulimit -Hn`.");
        }

        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };

        // Every target, Repeat times, interleaved (a, b, a, b): drift in a shared machine's load then falls on all
        // of them alike rather than on whichever ran last.
        var reports = new List<RunReport>();
        bool failed = false;
        for (int run = 1; run <= options.Repeat; run++)
        {
            foreach (Client.ServerKind target in options.Targets)
            {
                LoadTestOptions runOptions = options.ForTarget(target, run);
                if (options.RunCount > 1)
                {
                    Console.WriteLine($"=== run {reports.Count + 1}/{options.RunCount}: {ScenarioRunner.TargetName(target)} ({run}/{options.Repeat})");
                }

                RunReport report;
                try
                {
                    report = await new ScenarioRunner(runOptions, Console.Out).RunAsync("loadtest " + string.Join(' ', args), cancel.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancel.IsCancellationRequested)
                {
                    Console.Error.WriteLine("cancelled");
                    return 130;
                }
                catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or IOException or System.Net.Sockets.SocketException)
                {
                    Console.Error.WriteLine("error: " + ex.Message);
                    return 1;
                }

                WriteOutputs(runOptions, report);
                reports.Add(report);
                // Exit 1 only for what is wrong, not for what is slow: nobody connected, or clients diverged after settling.
                failed |= report.Connect is not { Connected: > 0 } || report.Convergence is { Converged: false, Settled: true };
            }
        }

        if (reports.Count > 1)
        {
            Console.WriteLine();
            Console.WriteLine(ComparisonReport.Render(reports, markdown: false));
        }

        return failed ? 1 : 0;
    }

    /// <summary><c>compare REPORT.json... [--markdown]</c>: saved runs (any servers, any sittings) in one table.</summary>
    private static int Compare(IReadOnlyList<string> args)
    {
        bool markdown = args.Contains("--markdown");
        List<string> files = [.. args.Where(static a => a != "--markdown")];
        if (files.Count == 0)
        {
            Console.Error.WriteLine("usage: loadtest compare REPORT.json... [--markdown]");
            return 2;
        }

        var reports = new List<RunReport>();
        foreach (string file in files)
        {
            try
            {
                reports.Add(JsonReport.Read(file));
            }
            catch (Exception ex) when (ex is IOException or System.Text.Json.JsonException or InvalidDataException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"error: {file}: {ex.Message}");
                return 1;
            }
        }

        Console.WriteLine(ComparisonReport.Render(reports, markdown));
        return 0;
    }

    private static void WriteOutputs(LoadTestOptions options, RunReport report)
    {
        string jsonPath = OutputPaths.Json(options, report.StartedUtc);
        JsonReport.Write(report, jsonPath);
        string? chartPath = OutputPaths.Chart(options, report.StartedUtc);
        if (chartPath is not null)
        {
            try
            {
                if (!ChartWriter.Write(report, chartPath))
                {
                    chartPath = null;
                }
            }
            catch (Exception ex) when (ex is TypeInitializationException or DllNotFoundException or IOException)
            {
                Console.Error.WriteLine($"warning: no chart ({ex.GetType().Name}: {ex.Message})");
                chartPath = null;
            }
        }

        Console.WriteLine();
        Console.WriteLine(ConsoleReport.Render(report, jsonPath, chartPath));
    }

    /// <summary>
    /// Runs this same command again under taskset, so the runtime sizes its thread pool and socket engine for the
    /// CPUs it really has (affinity set from inside would apply to one thread only).
    /// </summary>
    private static async Task<int> RunPinnedAsync(string cpus, int nice, string[] args, bool inlineCompletions)
    {
        string host = Environment.ProcessPath ?? throw new InvalidOperationException("Cannot find the running executable.");
        var start = new ProcessStartInfo(nice != 0 ? "nice" : "taskset") { UseShellExecute = false };
        if (nice != 0)
        {
            // Every thread of the generator at this priority (its scheduler thread raises itself further when it may).
            start.ArgumentList.Add("-n");
            start.ArgumentList.Add(nice.ToString(System.Globalization.CultureInfo.InvariantCulture));
            start.ArgumentList.Add("taskset");
        }

        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(cpus);
        start.ArgumentList.Add(host);
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            start.ArgumentList.Add(typeof(Program).Assembly.Location);
        }

        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment[ReexecMarker] = "1";
        if (inlineCompletions)
        {
            start.Environment[InlineCompletionsVariable] = "1";
        }

        // The child gets Ctrl+C from the terminal too and shuts down cleanly; this process just waits for it.
        Console.CancelKeyPress += (_, e) => e.Cancel = true;
        using Process child = Process.Start(start) ?? throw new InvalidOperationException("Could not start taskset.");
        await child.WaitForExitAsync().ConfigureAwait(false);
        return child.ExitCode;
    }
}
