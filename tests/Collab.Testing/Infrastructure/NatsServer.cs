using System.Diagnostics;
using System.Globalization;

namespace Collab.Integration.Tests.Infrastructure;

/// <summary>
/// A real nats-server on 127.0.0.1 on a free port, with its own temporary directory (config and log). Stop and start it
/// again on the same port (outage tests), or kill it outright. Server-to-client pings are frequent so a paused client's
/// subscriptions are dropped within a few seconds, as a production setting would do within a minute.
/// </summary>
public sealed class NatsServer : IAsyncDisposable
{
    private readonly string _root;
    private Process? _process;
    private bool _disposed;

    private NatsServer(string root, int port)
    {
        _root = root;
        Port = port;
    }

    /// <summary>The client port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The URL for NATS clients.</summary>
    public string Url => $"nats://127.0.0.1:{Port}";

    /// <summary>The server log.</summary>
    public string LogFile => Path.Combine(_root, "nats.log");

    /// <summary>Whether the server process is running.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Creates the directory and configuration and starts the server.</summary>
    public static async Task<NatsServer> StartAsync(CancellationToken cancellationToken = default)
    {
        var root = Path.Combine(Path.GetTempPath(), "collab-nats-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        var server = new NatsServer(root, InProcessServer.FreePort());
        await File.WriteAllTextAsync(Path.Combine(root, "nats.conf"), string.Create(CultureInfo.InvariantCulture, $"""
            listen: "127.0.0.1:{server.Port}"
            ping_interval: "1s"
            ping_max: 3
            max_payload: 8MB
            write_deadline: "2s"
            """), cancellationToken).ConfigureAwait(false);
        try
        {
            await server.StartAgainAsync(cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Starts the server again (after <see cref="StopAsync"/> or <see cref="Kill"/>) and waits until it accepts connections.</summary>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsRunning)
        {
            return;
        }

        var start = new ProcessStartInfo
        {
            FileName = FindBinary(),
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = _root,
        };
        foreach (var arg in (string[])["-c", Path.Combine(_root, "nats.conf"), "-l", LogFile])
        {
            start.ArgumentList.Add(arg);
        }

        _process = Process.Start(start) ?? throw new InvalidOperationException("Could not start nats-server.");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        await LoopbackPorts.WaitListeningAsync(Port, TimeSpan.FromSeconds(15), () => _process.HasExited).ConfigureAwait(false);
        if (_process.HasExited)
        {
            throw new InvalidOperationException($"nats-server exited with {_process.ExitCode}:\n{LogTail()}");
        }
    }

    /// <summary>Stops the server gracefully (SIGTERM) and waits for it to exit.</summary>
    public async Task StopAsync()
    {
        if (_process is not { } process)
        {
            return;
        }

        if (!process.HasExited)
        {
            Signals.Send(process.Id, Signals.SigTerm);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill();
                await process.WaitForExitAsync().ConfigureAwait(false);
            }
        }

        process.Dispose();
        _process = null;
    }

    /// <summary>SIGKILLs the server.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill();
            process.WaitForExit(10_000);
        }
    }

    /// <summary>Stops the server, waits <paramref name="downtime"/>, starts it again on the same port.</summary>
    public async Task RestartAsync(TimeSpan downtime, CancellationToken cancellationToken = default)
    {
        await StopAsync().ConfigureAwait(false);
        await Task.Delay(downtime, cancellationToken).ConfigureAwait(false);
        await StartAgainAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The log's last lines, for failure messages.</summary>
    public string LogTail(int lines = 30)
    {
        try
        {
            var all = File.ReadAllLines(LogFile);
            return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
        }
        catch (IOException)
        {
            return "(no nats-server log)";
        }
    }

    public ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return ValueTask.CompletedTask;
        }

        _disposed = true;
        Kill();
        _process?.Dispose();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // A straggling log write: the temporary directory is left behind, nothing else is affected.
        }

        return ValueTask.CompletedTask;
    }

    private static string FindBinary()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':').Append("/usr/sbin").Append("/usr/local/bin"))
        {
            var candidate = Path.Combine(dir, "nats-server");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("nats-server is not installed (scripts/install-test-deps.sh installs it).");
    }
}
