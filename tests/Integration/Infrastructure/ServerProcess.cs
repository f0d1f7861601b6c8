using System.Diagnostics;
using System.Globalization;
using System.Reflection;

namespace Collab.Integration.Tests.Infrastructure;

/// <summary>What a <see cref="ServerProcess"/> runs with.</summary>
public sealed class ServerProcessOptions
{
    /// <summary>Node id (<c>--node-id</c>); also names the process in failure messages.</summary>
    public string NodeId { get; init; } = "node-" + Guid.NewGuid().ToString("N")[..6];

    /// <summary>The port; 0 picks a free one once (kept across restarts).</summary>
    public int Port { get; init; }

    /// <summary>Configuration settings passed as <c>--Key=Value</c> (for example <c>Storage:Provider</c>, <c>Cluster:NatsUrl</c>).</summary>
    public IDictionary<string, string> Settings { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Extra raw command-line arguments.</summary>
    public IList<string> Arguments { get; init; } = [];

    /// <summary>Extra environment variables.</summary>
    public IDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Working and data directory; a fresh temporary one when null (deleted on dispose).</summary>
    public string? DataDirectory { get; init; }

    /// <summary>How long <see cref="ServerProcess.StartAsync"/> waits for /readyz.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>
/// The real server binary (<c>dotnet Collab.Server.dll</c>) in its own process, bound to 127.0.0.1: start it, wait for
/// /readyz, and end it the ways production ends: SIGKILL (<see cref="Kill"/>), SIGTERM (<see cref="StopAsync"/>),
/// SIGSTOP/SIGCONT (<see cref="Pause"/>/<see cref="Resume"/>), and start it again with the same settings and port. Its
/// output is kept (bounded) for failure messages.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private const int KeptLogLines = 4000;

    private readonly ServerProcessOptions _options;
    private readonly string _directory;
    private readonly bool _ownsDirectory;
    private readonly Queue<string> _log = new();
    private readonly object _logGate = new();
    private Process? _process;
    private bool _disposed;

    private ServerProcess(ServerProcessOptions options, int port, string directory, bool ownsDirectory)
    {
        _options = options;
        Port = port;
        _directory = directory;
        _ownsDirectory = ownsDirectory;
    }

    /// <summary>The node id.</summary>
    public string NodeId => _options.NodeId;

    /// <summary>The TCP port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The WebSocket endpoint.</summary>
    public Uri WebSocketUri => new($"ws://127.0.0.1:{Port}/ws");

    /// <summary>The HTTP base address (probes, metrics).</summary>
    public Uri HttpUri => new($"http://127.0.0.1:{Port}/");

    /// <summary>The process id while running.</summary>
    public int? ProcessId => _process is { HasExited: false } p ? p.Id : null;

    /// <summary>Whether the process is running (paused counts as running).</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Creates the harness (nothing runs until <see cref="StartAsync"/>).</summary>
    public static ServerProcess Create(ServerProcessOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var owns = options.DataDirectory is null;
        var directory = options.DataDirectory ?? Path.Combine(Path.GetTempPath(), "collab-node-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        return new ServerProcess(options, options.Port == 0 ? LoopbackPorts.Free() : options.Port, directory, owns);
    }

    /// <summary>Starts the server and waits until /readyz answers 200.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsRunning)
            throw new InvalidOperationException($"{NodeId} is already running.");

        var start = new ProcessStartInfo
        {
            FileName = "dotnet",
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = _directory,
        };
        start.ArgumentList.Add(ServerAssembly());
        foreach (var arg in (string[])["--port", Port.ToString(CultureInfo.InvariantCulture), "--node-id", NodeId, "--Transport:ListenAddress=127.0.0.1", $"--Storage:DataDirectory={_directory}"])
            start.ArgumentList.Add(arg);
        foreach (var (key, value) in _options.Settings)
            start.ArgumentList.Add($"--{key}={value}");
        foreach (var arg in _options.Arguments)
            start.ArgumentList.Add(arg);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_gcServer"] = "0";
        foreach (var (key, value) in _options.Environment)
            start.Environment[key] = value;

        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the server.");
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        Append($"---- {NodeId} started (pid {process.Id}) ----");
        await WaitReadyAsync(_options.StartTimeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Polls /readyz until it answers 200.</summary>
    public async Task WaitReadyAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (_process is not { HasExited: false })
                throw new InvalidOperationException($"{NodeId} exited with {_process?.ExitCode} before it was ready:\n{LogTail()}");
            try
            {
                using var response = await http.GetAsync(new Uri(HttpUri, "readyz"), cancellationToken).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                    return;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                // Not listening yet.
            }

            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{NodeId} was not ready within {timeout}:\n{LogTail()}");
            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>/readyz answers 200 right now.</summary>
    public async Task<bool> IsReadyAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            using var response = await http.GetAsync(new Uri(HttpUri, "readyz")).ConfigureAwait(false);
            return response.IsSuccessStatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    /// <summary>The /metrics text.</summary>
    public async Task<string> MetricsAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        return await http.GetStringAsync(new Uri(HttpUri, "metrics")).ConfigureAwait(false);
    }

    /// <summary>SIGKILL: the process dies at once, mid-whatever.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } process)
        {
            Append($"---- {NodeId} SIGKILL ----");
            process.Kill();
            process.WaitForExit(10_000);
        }
    }

    /// <summary>SIGTERM, then waits for the graceful shutdown (SIGKILL after <paramref name="timeout"/>).</summary>
    public async Task StopAsync(TimeSpan? timeout = null)
    {
        if (_process is not { HasExited: false } process)
            return;
        Append($"---- {NodeId} SIGTERM ----");
        Signals.Send(process.Id, Signals.SigTerm);
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Kill();
        }
    }

    /// <summary>SIGSTOP: the process freezes (its sockets stay open, its clocks keep running).</summary>
    public void Pause()
    {
        if (_process is { HasExited: false } process)
        {
            Append($"---- {NodeId} SIGSTOP ----");
            Signals.Send(process.Id, Signals.SigStop);
        }
    }

    /// <summary>SIGCONT: the frozen process carries on where it stopped.</summary>
    public void Resume()
    {
        if (_process is { HasExited: false } process)
        {
            Signals.Send(process.Id, Signals.SigCont);
            Append($"---- {NodeId} SIGCONT ----");
        }
    }

    /// <summary>Kills (if running) and starts again with the same settings and port.</summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        Kill();
        _process?.Dispose();
        _process = null;
        await StartAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The whole kept output.</summary>
    public string Log()
    {
        lock (_logGate)
            return string.Join('\n', _log);
    }

    /// <summary>The output's last lines, for failure messages.</summary>
    public string LogTail(int lines = 60)
    {
        lock (_logGate)
            return $"[{NodeId}]\n" + string.Join('\n', _log.Skip(Math.Max(0, _log.Count - lines)));
    }

    public ValueTask DisposeAsync()
    {
        if (_disposed)
            return ValueTask.CompletedTask;
        _disposed = true;
        if (_process is { HasExited: false } process)
        {
            Signals.Send(process.Id, Signals.SigCont);
            Kill();
        }

        _process?.Dispose();
        if (_ownsDirectory)
        {
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
                // A straggling file handle: the temporary directory is left behind, nothing else is affected.
            }
        }

        return ValueTask.CompletedTask;
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_logGate)
        {
            _log.Enqueue(line);
            while (_log.Count > KeptLogLines)
                _log.Dequeue();
        }
    }

    /// <summary>
    /// Collab.Server.dll of the same configuration as this test assembly: next to it when the build copied it with its
    /// runtime configuration, else in the server project's own output folder.
    /// </summary>
    private static string ServerAssembly()
    {
        var local = Path.Combine(AppContext.BaseDirectory, "Collab.Server.dll");
        if (File.Exists(local) && File.Exists(Path.Combine(AppContext.BaseDirectory, "Collab.Server.runtimeconfig.json")))
            return local;

        var configuration = typeof(ServerProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Collab.sln")))
            {
                var built = Path.Combine(dir.FullName, "src", "Server", "bin", configuration, "net10.0", "Collab.Server.dll");
                if (File.Exists(built))
                    return built;
                break;
            }
        }

        throw new InvalidOperationException($"Collab.Server.dll was not found next to the tests ({AppContext.BaseDirectory}) nor in src/Server/bin/{configuration}.");
    }
}
