using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Collab.Testing;

namespace Collab.Integration.Tests.Infrastructure;

/// <summary>
/// The real server binary in its own process, so tests can do to it what production does: SIGKILL it
/// under load, SIGTERM it (graceful drain), SIGSTOP/SIGCONT it, and start it again on the same port.
/// Settings are passed as environment variables (Section__Key), exactly as an operator would.
/// </summary>
public sealed partial class ServerProcess : IAsyncDisposable
{
    private const int SigKill = 9;
    private const int SigTerm = 15;
    private const int SigCont = 18;
    private const int SigStop = 19;

    private readonly IReadOnlyDictionary<string, string> _settings;
    private readonly bool _portOnCommandLine;
    private readonly ConcurrentQueue<string> _log = new();
    private Process? _process;

    private ServerProcess(int port, IReadOnlyDictionary<string, string> settings, bool portOnCommandLine)
    {
        Port = port;
        _settings = settings;
        _portOnCommandLine = portOnCommandLine;
    }

    public int Port { get; }

    public Uri WebSocketUri => new($"ws://127.0.0.1:{Port}/ws");

    public Uri HttpUri => new($"http://127.0.0.1:{Port}/");

    public bool IsRunning => _process is { HasExited: false };

    public int? ProcessId => _process?.Id;

    /// <summary>The node id from the settings (<c>Node:NodeId</c>), for cluster tests and failure messages.</summary>
    public string NodeId => _settings.TryGetValue("Node:NodeId", out string? id) ? id : $"server:{Port}";

    /// <summary>
    /// Starts the server and waits until /readyz answers 200. Unless <paramref name="portOnCommandLine"/> is false (the
    /// settings then choose the port, e.g. COLLAB_PORT, and <paramref name="port"/> says which it is), the port is passed as
    /// <c>--port</c>.
    /// </summary>
    /// <remarks>
    /// A port picked here is free when picked, but another process on the machine (a parallel test, another job) can bind
    /// it before the server does; the server then exits with "address already in use" and is started again on another.
    /// </remarks>
    public static async Task<ServerProcess> StartAsync(IReadOnlyDictionary<string, string> settings, int? port = null, TimeSpan? readyTimeout = null, bool portOnCommandLine = true)
    {
        for (int attempt = 1; ; attempt++)
        {
            var server = new ServerProcess(port ?? InProcessServer.FreePort(), settings, portOnCommandLine);
            try
            {
                await server.StartAgainAsync(readyTimeout);
                return server;
            }
            catch (InvalidOperationException) when (port is null && attempt < 3 && server.Log().Contains("address already in use", StringComparison.Ordinal))
            {
                await server.DisposeAsync();
            }
        }
    }

    /// <summary>The server assembly next to this build of the tests (same configuration).</summary>
    public static string ServerAssembly => BuildOutput("src/Server", "Collab.Server");

    /// <summary>The assembly a project of the repository built in the tests' configuration (Debug or Release).</summary>
    public static string BuildOutput(string projectDirectory, string assemblyName)
    {
        string configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        string path = Path.Combine(RepositoryFiles.Root, projectDirectory, "bin", configuration, "net10.0", assemblyName + ".dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"Build {projectDirectory} first ({configuration}).", path);
    }

    /// <summary>
    /// Runs the server binary (or another built <paramref name="assembly"/>) with <paramref name="arguments"/> (and settings
    /// as environment variables) until it exits by itself, as an operator's mistyped command line would: for start-up
    /// failures. Kills it after <paramref name="timeout"/>.
    /// </summary>
    public static async Task<(int ExitCode, string StandardOutput, string StandardError)> RunToExitAsync(
        IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? settings = null, TimeSpan? timeout = null, string? assembly = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(assembly ?? ServerAssembly);
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["DOTNET_DbgEnableMiniDump"] = "0";
        foreach ((string key, string value) in settings ?? new Dictionary<string, string>())
        {
            info.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        using Process process = Process.Start(info) ?? throw new InvalidOperationException("dotnet did not start.");
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"The server did not exit within {timeout}:\n{await stdout}\n{await stderr}");
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    public async Task StartAgainAsync(TimeSpan? readyTimeout = null)
    {
        if (IsRunning)
        {
            throw new InvalidOperationException("The server is already running.");
        }

        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(ServerAssembly);
        if (_portOnCommandLine)
        {
            info.ArgumentList.Add("--port");
            info.ArgumentList.Add(Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        info.Environment["Transport__ListenAddress"] = "127.0.0.1";
        info.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach ((string key, string value) in _settings)
        {
            info.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        Process process = Process.Start(info) ?? throw new InvalidOperationException("dotnet did not start.");
        process.OutputDataReceived += (_, e) => Record(e.Data);
        process.ErrorDataReceived += (_, e) => Record(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        await WaitReadyAsync(readyTimeout ?? TimeSpan.FromSeconds(60));
    }

    /// <summary>Polls /readyz until it answers 200.</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            if (_process is { HasExited: true })
            {
                throw new InvalidOperationException($"The server exited with {_process.ExitCode}:\n{LogTail()}");
            }

            try
            {
                using HttpResponseMessage response = await http.GetAsync(new Uri(HttpUri, "readyz"));
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"The server was not ready within {timeout}:\n{LogTail()}");
    }

    /// <summary>SIGKILL: no drain, no flush, no snapshot — what a crash or an OOM kill does.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } process)
        {
            Signal(process, SigKill);
            await process.WaitForExitAsync();
        }
    }

    /// <summary>SIGTERM: the graceful drain (close 1001, flush the op log), then waits for the exit.</summary>
    public async Task<int> StopAsync(TimeSpan? timeout = null)
    {
        if (_process is not { HasExited: false } process)
        {
            return _process?.ExitCode ?? 0;
        }

        Signal(process, SigTerm);
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(cts.Token);
        return process.ExitCode;
    }

    /// <summary>SIGSTOP: the process freezes (a long GC pause, a VM stall) without its sockets closing.</summary>
    public void Pause() => Signal(_process!, SigStop);

    /// <summary>SIGCONT after <see cref="Pause"/>.</summary>
    public void Resume() => Signal(_process!, SigCont);

    public string LogTail(int lines = 60) => $"[{NodeId}]\n" + string.Join('\n', _log.TakeLast(lines));

    /// <summary>Everything the process printed (the last few thousand lines).</summary>
    public string Log() => string.Join('\n', _log);

    /// <summary>/readyz answers 200 right now.</summary>
    public async Task<bool> IsReadyAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            using HttpResponseMessage response = await http.GetAsync(new Uri(HttpUri, "readyz"));
            return response.IsSuccessStatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    /// <summary>The Prometheus text of /metrics.</summary>
    public async Task<string> MetricsAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        return await http.GetStringAsync(new Uri(HttpUri, "metrics"));
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false } process)
        {
            Signal(process, SigCont);
            Signal(process, SigKill);
            await process.WaitForExitAsync();
        }

        _process?.Dispose();
    }

    private void Record(string? line)
    {
        if (line is null)
        {
            return;
        }

        _log.Enqueue(line);
        while (_log.Count > 4000)
        {
            _log.TryDequeue(out _);
        }
    }

    private static void Signal(Process process, int signal)
    {
        if (Kill(process.Id, signal) != 0 && !process.HasExited)
        {
            throw new InvalidOperationException($"kill({process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
