using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Collab.LoadTest.Client;

namespace Collab.LoadTest.Hosting;

/// <summary>How <c>--spawn-server</c> starts the server.</summary>
internal sealed record ServerLaunchOptions
{
    /// <summary>Which server: src/Server (Collab), or loadtest/peers/sharedb-server.js under node (ShareDB).</summary>
    public ServerKind Kind { get; init; } = ServerKind.Collab;

    /// <summary>CPU list for taskset (e.g. "0"); null or empty runs unpinned.</summary>
    public string? Cpus { get; init; } = "0";

    /// <summary>
    /// Scheduling priority for the server (nice -n; 0 leaves it alone); needs root or CAP_SYS_NICE. It gives the server
    /// the larger share of its CPU against other work of the same session only: with autogroups (kernel.sched_autogroup_enabled)
    /// other sessions compete as groups whatever the nice, and nice never shortens the wait for a running task's slice
    /// (Collab's Server:SchedulerSlice does; docs/PERFORMANCE.md).
    /// </summary>
    public int Nice { get; init; }

    /// <summary>Port to listen on; 0 picks a free one.</summary>
    public int Port { get; init; }

    /// <summary>
    /// A shell command replacing the default launch; <c>{port}</c> and <c>{dataDir}</c> are substituted. It is run
    /// under taskset when <see cref="Cpus"/> is set.
    /// </summary>
    public string? Command { get; init; }

    /// <summary>PostgreSQL connection string (the durable scenario); null uses the embedded SQLite store.</summary>
    public string? Postgres { get; init; }

    /// <summary>Extra arguments for the server (e.g. "--Transport:MaxConnections=20000").</summary>
    public IReadOnlyList<string> ExtraArgs { get; init; } = [];

    /// <summary>Directory for the server's log file.</summary>
    public required string LogDirectory { get; init; }

    /// <summary>Keep the temporary data directory after the run.</summary>
    public bool KeepData { get; init; }

    /// <summary>Build src/Server (Release) before starting even if a build exists (otherwise only when missing).</summary>
    public bool Build { get; init; }
}

/// <summary>
/// A server started by the tool for a reproducible run: the Release build of src/Server (built first if missing),
/// pinned with taskset, on a free port, with a fresh temporary data directory, logging at Warning (the hot path's
/// Information logs are not what is measured), ready when GET /readyz answers 200. Or ShareDB: node running
/// loadtest/peers/sharedb-server.js (its packages from loadtest/peers/package-lock.json), pinned the same way,
/// ready when its HTTP listener answers. Stopped with SIGTERM.
/// </summary>
internal sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _dataDirectory;
    private readonly bool _keepData;

    private ServerProcess(ServerKind kind, Process process, int port, int? managementPort, string dataDirectory, string logFile, bool keepData)
    {
        Kind = kind;
        _process = process;
        Port = port;
        ManagementPort = managementPort;
        _dataDirectory = dataDirectory;
        LogFile = logFile;
        _keepData = keepData;
    }

    public ServerKind Kind { get; }

    public int Port { get; }

    public int Pid => _process.Id;

    public string LogFile { get; }

    public Uri WebSocketUri => Kind == ServerKind.ShareDb ? new($"ws://127.0.0.1:{Port}/") : new($"ws://127.0.0.1:{Port}/ws");

    /// <summary>The server's management port (probes and metrics on their own threads), when the tool chose one.</summary>
    public int? ManagementPort { get; }

    /// <summary>Where to scrape: the management port when there is one, else the WebSocket port; null for ShareDB (no metrics).</summary>
    public Uri? MetricsUri => Kind == ServerKind.ShareDb ? null
        : ManagementPort is { } management ? new Uri($"http://127.0.0.1:{management}/metrics") : MetricsScraper.MetricsUriFor(WebSocketUri);

    public bool HasExited => _process.HasExited;

    public static async Task<ServerProcess> StartAsync(ServerLaunchOptions options, TextWriter console, CancellationToken cancellationToken)
    {
        int port = options.Port > 0 ? options.Port : FreePort();
        string dataDirectory = Path.Combine(Path.GetTempPath(), "collab-loadtest-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(dataDirectory);
        Directory.CreateDirectory(options.LogDirectory);
        string logFile = Path.Combine(options.LogDirectory, $"server-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{port}.log");

        var start = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        List<string> command;
        int? managementPort = null;
        if (options.Kind == ServerKind.ShareDb && string.IsNullOrWhiteSpace(options.Command))
        {
            command = ["node", ShareDbServerScript(), "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        }
        else if (!string.IsNullOrWhiteSpace(options.Command))
        {
            string expanded = options.Command.Replace("{port}", port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
                .Replace("{dataDir}", dataDirectory, StringComparison.Ordinal);
            command = ["/bin/sh", "-c", "exec " + expanded];
        }
        else
        {
            string dll = await EnsureServerBuildAsync(options.Build, console, cancellationToken).ConfigureAwait(false);
            managementPort = FreePort();
            command = [DotnetHost(), dll, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--data-dir", dataDirectory, "--Logging:LogLevel:Default=Warning",
                "--Transport:ManagementPort=" + managementPort.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)];
            if (!string.IsNullOrEmpty(options.Postgres))
            {
                command.AddRange(["--postgres", options.Postgres]);
            }

            command.AddRange(options.ExtraArgs);
        }

        if (!string.IsNullOrEmpty(options.Cpus))
        {
            command.InsertRange(0, ["taskset", "-c", options.Cpus]);
        }

        if (options.Nice != 0)
        {
            command.InsertRange(0, ["nice", "-n", options.Nice.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        }

        start.FileName = command[0];
        foreach (string argument in command.Skip(1))
        {
            start.ArgumentList.Add(argument);
        }

        // The server must not inherit the generator's tuning (inline socket completions, pinned-generator settings).
        start.Environment.Remove("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS");
        start.Environment.Remove(Program.ReexecMarker);

        var process = GeneratorSlice.WithDefaultSlice(() => Process.Start(start)) ?? throw new InvalidOperationException($"Could not start '{start.FileName}'.");
        var log = new StreamWriter(logFile) { AutoFlush = true };
        process.OutputDataReceived += (_, e) => WriteLog(log, e.Data);
        process.ErrorDataReceived += (_, e) => WriteLog(log, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => log.Dispose();

        var server = new ServerProcess(options.Kind, process, port, managementPort, dataDirectory, logFile, options.KeepData);
        console.WriteLine($"server: pid {process.Id}, {string.Join(' ', command.Select(a => a.Contains(' ', StringComparison.Ordinal) ? $"'{a}'" : a))}");
        console.WriteLine($"server: log {logFile}");
        try
        {
            await server.WaitReadyAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return server;
    }

    public ProcessSample Sample() => ProcessStats.Of(_process.Id);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            Native.Terminate(_process.Id);
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            try
            {
                await _process.WaitForExitAsync(grace.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }

        _process.Dispose();
        if (!_keepData)
        {
            try
            {
                Directory.Delete(_dataDirectory, recursive: true);
            }
            catch (IOException)
            {
                // A straggling file handle: the temp directory stays behind, nothing else depends on it.
            }
        }
    }

    private async Task WaitReadyAsync(CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        // ShareDB's script answers every plain HTTP request with 404 once it listens; Collab says ready on /readyz.
        bool shareDb = Kind == ServerKind.ShareDb;
        var ready = new Uri(shareDb ? $"http://127.0.0.1:{Port}/" : $"http://127.0.0.1:{Port}/readyz");
        long deadline = Stopwatch.GetTimestamp() + (120 * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"The server exited with code {_process.ExitCode} before it was ready; see {LogFile}.");
            }

            try
            {
                using HttpResponseMessage response = await http.GetAsync(ready, cancellationToken).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.OK || shareDb)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet.
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }

        throw new TimeoutException($"The server was not ready within 120 s; see {LogFile}.");
    }

    /// <summary>src/Server's Release build; built with `dotnet build -c Release` when it is not there yet (or when asked).</summary>
    private static async Task<string> EnsureServerBuildAsync(bool force, TextWriter console, CancellationToken cancellationToken)
    {
        string root = RepositoryRoot() ?? throw new InvalidOperationException("Cannot find the repository (Collab.sln) to start the server from; use --server-cmd.");
        string project = Path.Combine(root, "src", "Server");
        string dll = Path.Combine(project, "bin", "Release", "net10.0", "Collab.Server.dll");
        if (File.Exists(dll) && !force)
        {
            return dll;
        }

        console.WriteLine("server: building src/Server (Release)...");
        var build = new ProcessStartInfo(DotnetHost()) { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (string argument in new[] { "build", "-c", "Release", project, "-nologo", "-v", "q" })
        {
            build.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(build) ?? throw new InvalidOperationException("Could not run dotnet build.");
        string output = await process.StandardOutput.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (process.ExitCode != 0 || !File.Exists(dll))
        {
            throw new InvalidOperationException("Building src/Server failed:\n" + output);
        }

        return dll;
    }

    /// <summary>Where loadtest/peers/sharedb-server.js is in this repository.</summary>
    public static string ShareDbServerPath()
    {
        string root = RepositoryRoot() ?? throw new InvalidOperationException("Cannot find the repository (Collab.sln) to start ShareDB from; use --server-cmd.");
        return Path.Combine(root, "loadtest", "peers", "sharedb-server.js");
    }

    /// <summary>loadtest/peers/sharedb-server.js, with its packages installed (scripts/install-test-deps.sh runs npm ci there).</summary>
    private static string ShareDbServerScript()
    {
        string script = ShareDbServerPath();
        string directory = Path.GetDirectoryName(script)!;
        if (!File.Exists(Path.Combine(directory, "node_modules", "sharedb", "package.json")))
        {
            throw new InvalidOperationException($"ShareDB is not installed: run `npm ci` in {directory} (scripts/install-test-deps.sh does).");
        }

        return script;
    }

    /// <summary>The directory holding Collab.sln, searched upwards from the working directory, then from the tool's binaries.</summary>
    public static string? RepositoryRoot()
    {
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (DirectoryInfo? dir = new(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Collab.sln")))
                {
                    return dir.FullName;
                }
            }
        }

        return null;
    }

    private static string DotnetHost()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromEnvironment) && File.Exists(fromEnvironment))
        {
            return fromEnvironment;
        }

        string? processPath = Environment.ProcessPath;
        return processPath is not null && Path.GetFileNameWithoutExtension(processPath) == "dotnet" ? processPath : "dotnet";
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static void WriteLog(StreamWriter log, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (log)
        {
            try
            {
                log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // The process exited and the log closed while a last line was in flight.
            }
        }
    }
}
