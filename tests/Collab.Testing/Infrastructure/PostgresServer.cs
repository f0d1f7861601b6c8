using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Npgsql;

namespace Collab.Integration.Tests.Infrastructure;

/// <summary>How a <see cref="PostgresServer"/> stops.</summary>
public enum PostgresStopMode
{
    /// <summary>pg_ctl -m fast: sessions are disconnected, the server checkpoints and exits cleanly.</summary>
    Fast,

    /// <summary>pg_ctl -m immediate: the server quits without a checkpoint; the next start runs crash recovery.</summary>
    Immediate,
}

/// <summary>
/// A throwaway PostgreSQL cluster run for real: initdb into a temporary directory, the postmaster listening on
/// 127.0.0.1 on a free port (unix socket inside the temporary directory), trust authentication, fsync on. PostgreSQL
/// refuses to run as root, so when the test process is root every binary runs as the <c>postgres</c> user via runuser.
/// Stop and start again on the same data directory (outage tests), or kill the postmaster outright.
/// </summary>
/// <remarks>Shared by the integration tests and the storage benchmark (linked source file), so it does not depend on xunit.</remarks>
public sealed class PostgresServer : IAsyncDisposable
{
    private const string ServiceUser = "postgres";

    private readonly string _root;
    private readonly bool _asServiceUser;
    private bool _running;
    private bool _disposed;

    private PostgresServer(string root, int port, bool asServiceUser)
    {
        _root = root;
        Port = port;
        _asServiceUser = asServiceUser;
    }

    /// <summary>The TCP port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The cluster's data directory.</summary>
    public string DataDirectory => Path.Combine(_root, "data");

    /// <summary>The server log (pg_ctl -l).</summary>
    public string LogFile => Path.Combine(_root, "server.log");

    /// <summary>Whether the postmaster was started and not stopped or killed since.</summary>
    public bool IsRunning => _running;

    /// <summary>
    /// Creates and starts a cluster. <paramref name="settings"/> are extra postgresql.conf settings (for example
    /// shared_buffers for a benchmark); fsync and synchronous_commit stay on unless overridden.
    /// </summary>
    public static async Task<PostgresServer> StartAsync(IReadOnlyDictionary<string, string>? settings = null, CancellationToken cancellationToken = default)
    {
        var asServiceUser = Environment.IsPrivilegedProcess;
        var root = Path.Combine(Path.GetTempPath(), "collab-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        Directory.CreateDirectory(Path.Combine(root, "socket"));
        var server = new PostgresServer(root, FreePort(), asServiceUser);
        try
        {
            if (asServiceUser)
            {
                await RunAsync("chown", ["-R", ServiceUser, root], asServiceUser: false, cancellationToken).ConfigureAwait(false);
            }

            await server.RunToolAsync("initdb", ["-D", server.DataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"], cancellationToken).ConfigureAwait(false);

            var conf = new StringBuilder()
                .AppendLine(CultureInfo.InvariantCulture, $"port = {server.Port}")
                .AppendLine("listen_addresses = '127.0.0.1'")
                .AppendLine(CultureInfo.InvariantCulture, $"unix_socket_directories = '{Path.Combine(root, "socket")}'")
                .AppendLine("fsync = on")
                .AppendLine("synchronous_commit = on")
                .AppendLine("max_connections = 200")
                .AppendLine("logging_collector = off");
            if (settings is not null)
            {
                foreach (var (name, value) in settings)
                {
                    conf.AppendLine(CultureInfo.InvariantCulture, $"{name} = {value}");
                }
            }

            await File.AppendAllTextAsync(Path.Combine(server.DataDirectory, "postgresql.conf"), conf.ToString(), cancellationToken).ConfigureAwait(false);
            await server.StartAsync(cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// A hot standby of this cluster: <c>pg_basebackup -R</c> copies it (and writes the standby's primary_conninfo),
    /// and the copy starts on its own port, streaming and replaying the primary's WAL. Dispose it before the primary.
    /// </summary>
    public async Task<PostgresServer> StartStandbyAsync(CancellationToken cancellationToken = default)
    {
        var root = Path.Combine(Path.GetTempPath(), "collab-pg-standby-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        Directory.CreateDirectory(Path.Combine(root, "socket"));
        var standby = new PostgresServer(root, FreePort(), _asServiceUser);
        try
        {
            if (_asServiceUser)
            {
                await RunAsync("chown", ["-R", ServiceUser, root], asServiceUser: false, cancellationToken).ConfigureAwait(false);
            }

            await standby.RunToolAsync("pg_basebackup", ["-h", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), "-U", "postgres", "-D", standby.DataDirectory, "-R", "-X", "stream", "--no-sync"], cancellationToken).ConfigureAwait(false);

            // The copied postgresql.conf is the primary's; later lines win.
            var conf = new StringBuilder()
                .AppendLine(CultureInfo.InvariantCulture, $"port = {standby.Port}")
                .AppendLine(CultureInfo.InvariantCulture, $"unix_socket_directories = '{Path.Combine(root, "socket")}'")
                .AppendLine("hot_standby = on");
            await File.AppendAllTextAsync(Path.Combine(standby.DataDirectory, "postgresql.conf"), conf.ToString(), cancellationToken).ConfigureAwait(false);
            await standby.StartAsync(cancellationToken).ConfigureAwait(false);
            return standby;
        }
        catch
        {
            await standby.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Connection string for <paramref name="database"/> over TCP.</summary>
    public string ConnectionString(string database = "postgres") => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = "postgres",
        Database = database,
        Timeout = 5,
        CommandTimeout = 60,
        IncludeErrorDetail = true,
    }.ConnectionString;

    /// <summary>Creates a database (unique name from <paramref name="prefix"/>) and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix = "collab", CancellationToken cancellationToken = default)
    {
        var name = (prefix + "_" + Guid.NewGuid().ToString("N")[..10]).ToLowerInvariant();
        await using var connection = new NpgsqlConnection(ConnectionString());
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return ConnectionString(name);
    }

    /// <summary>Starts the postmaster on the existing data directory and waits until it accepts connections.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await RunToolAsync("pg_ctl", ["-D", DataDirectory, "-l", LogFile, "-w", "-t", "60", "start"], cancellationToken).ConfigureAwait(false);
                _running = true;
                return;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                // Right after a kill the old shared memory can still be attached by an exiting backend, and the
                // postmaster refuses to start until it is released.
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Stops the postmaster and waits for it to exit.</summary>
    public async Task StopAsync(PostgresStopMode mode = PostgresStopMode.Fast, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var modeName = mode == PostgresStopMode.Fast ? "fast" : "immediate";
        await RunToolAsync("pg_ctl", ["-D", DataDirectory, "-m", modeName, "-w", "-t", "60", "stop"], cancellationToken).ConfigureAwait(false);
        _running = false;
    }

    /// <summary>SIGKILLs the postmaster and its children (a machine-level crash of the database process tree).</summary>
    public void Kill()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (ReadPostmasterPid() is not { } pid)
        {
            return;
        }

        // Children first: a backend that outlived its postmaster keeps the shared memory attached and the next start
        // would refuse to run.
        var victims = ChildPids(pid);
        foreach (var child in victims)
        {
            TryKill(child);
        }

        TryKill(pid);
        foreach (var child in ChildPids(pid))
        {
            TryKill(child);
            victims.Add(child);
        }

        victims.Add(pid);
        WaitUntilGone(victims, TimeSpan.FromSeconds(15));
        _running = false;
    }

    /// <summary>
    /// SIGSTOPs the postmaster and every backend: the database freezes with its sockets open (a hung host, a storage
    /// stall), so new connections and queries wait instead of failing. <see cref="Resume"/> undoes it.
    /// </summary>
    public void Pause()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (ReadPostmasterPid() is { } pid)
        {
            Signals.Send(pid, Signals.SigStop);
            foreach (var child in ChildPids(pid))
            {
                Signals.Send(child, Signals.SigStop);
            }
        }
    }

    /// <summary>SIGCONT after <see cref="Pause"/>.</summary>
    public void Resume()
    {
        if (ReadPostmasterPid() is { } pid)
        {
            foreach (var child in ChildPids(pid))
            {
                Signals.Send(child, Signals.SigCont);
            }

            Signals.Send(pid, Signals.SigCont);
        }
    }

    /// <summary>Stops the server (immediately) and deletes the cluster.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        try
        {
            if (_running)
            {
                await StopAsync(PostgresStopMode.Immediate).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException)
        {
            Kill();
        }
        finally
        {
            _disposed = true;
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // A straggling process still writing the log: the temp directory is left behind, nothing else is affected.
        }
    }

    /// <summary>The server log's last lines, for failure messages.</summary>
    public string LogTail(int lines = 40)
    {
        try
        {
            var all = File.ReadAllLines(LogFile);
            return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
        }
        catch (IOException)
        {
            return "(no server log)";
        }
    }

    /// <summary>
    /// CPU time used by the cluster so far: the postmaster, its live children, and the children it already reaped
    /// (benchmarks report CPU per op, which stays meaningful on a machine shared with other work).
    /// </summary>
    public TimeSpan CpuTime()
    {
        if (ReadPostmasterPid() is not { } pid)
        {
            return TimeSpan.Zero;
        }

        var ticks = ReadCpuTicks(pid, includeReapedChildren: true);
        foreach (var child in ChildPids(pid))
        {
            ticks += ReadCpuTicks(child, includeReapedChildren: true);
        }

        // /proc reports clock ticks (USER_HZ), 100 per second on Linux.
        return TimeSpan.FromSeconds(ticks / 100.0);
    }

    private static long ReadCpuTicks(int pid, bool includeReapedChildren)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');

            // Fields after "(comm)": state=0 ... utime=11, stime=12, cutime=13, cstime=14.
            var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            if (includeReapedChildren)
            {
                ticks += long.Parse(fields[13], CultureInfo.InvariantCulture) + long.Parse(fields[14], CultureInfo.InvariantCulture);
            }

            return ticks;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private int? ReadPostmasterPid()
    {
        var pidFile = Path.Combine(DataDirectory, "postmaster.pid");
        if (!File.Exists(pidFile))
        {
            return null;
        }

        var first = File.ReadLines(pidFile).FirstOrDefault();
        return int.TryParse(first, NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid) ? pid : null;
    }

    private static List<int> ChildPids(int parent)
    {
        var children = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may contain spaces, so parse after the last ')'.
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (int.Parse(fields[1], CultureInfo.InvariantCulture) == parent)
                {
                    children.Add(pid);
                }
            }
            catch (IOException)
            {
                // The process exited while we looked.
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return children;
    }

    private static void WaitUntilGone(List<int> pids, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline && pids.Exists(IsAlive))
        {
            Thread.Sleep(20);
        }
    }

    /// <summary>Running, not a zombie (a killed process not yet reaped holds nothing anymore).</summary>
    private static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static void TryKill(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
        }
        catch (ArgumentException)
        {
            // Already gone.
        }
        catch (InvalidOperationException)
        {
        }
    }

    private Task RunToolAsync(string tool, string[] arguments, CancellationToken cancellationToken) =>
        RunAsync(tool, arguments, _asServiceUser, cancellationToken, this);

    private static async Task RunAsync(string fileName, string[] arguments, bool asServiceUser, CancellationToken cancellationToken, PostgresServer? server = null)
    {
        var start = new ProcessStartInfo
        {
            FileName = asServiceUser ? "runuser" : fileName,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        if (asServiceUser)
        {
            foreach (var a in (string[])["-u", ServiceUser, "--", fileName])
            {
                start.ArgumentList.Add(a);
            }
        }

        foreach (var a in arguments)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            var log = server?.LogTail() ?? string.Empty;
            throw new InvalidOperationException(
                $"{fileName} {string.Join(' ', arguments)} exited with {process.ExitCode}:\n{await stdout.ConfigureAwait(false)}\n{await stderr.ConfigureAwait(false)}\n{log}");
        }
    }
}
