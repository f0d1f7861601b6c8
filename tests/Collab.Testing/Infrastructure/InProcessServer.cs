using System.Net;
using System.Net.Sockets;
using Collab.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;

namespace Collab.Integration.Tests.Infrastructure;

/// <summary>
/// The whole Collab server (transport, sessions, storage) hosted in the test process on a fixed
/// loopback port, so it can be stopped and started again on the same port and data directory while
/// clients keep reconnecting to one URI.
/// </summary>
public sealed class InProcessServer : IAsyncDisposable
{
    private readonly Dictionary<string, string?> _settings;
    private WebApplication? _app;

    private InProcessServer(int port, string dataDirectory, Dictionary<string, string?> settings)
    {
        Port = port;
        DataDirectory = dataDirectory;
        _settings = settings;
    }

    public int Port { get; }

    public string DataDirectory { get; }

    public Uri WebSocketUri => new($"ws://127.0.0.1:{Port}/ws");

    public Uri HttpUri => new($"http://127.0.0.1:{Port}/");

    public IServiceProvider Services => _app?.Services ?? throw new InvalidOperationException("The server is not running.");

    /// <summary>Starts a server with a fresh data directory (or <paramref name="dataDirectory"/>) and extra settings.</summary>
    public static async Task<InProcessServer> StartAsync(string? dataDirectory = null, IReadOnlyDictionary<string, string?>? settings = null)
    {
        dataDirectory ??= Directory.CreateTempSubdirectory("collab-test-").FullName;
        var all = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["Storage:DataDirectory"] = dataDirectory,
            ["Transport:ListenAddress"] = "127.0.0.1",
            ["Transport:HeartbeatInterval"] = "00:00:00.200",
            ["Transport:ShutdownTimeout"] = "00:00:02",
            ["Transport:CloseTimeout"] = "00:00:01",
            ["Node:NodeId"] = "test-node",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        if (settings is not null)
        {
            foreach ((string key, string? value) in settings)
            {
                all[key] = value;
            }
        }

        var server = new InProcessServer(FreePort(), dataDirectory, all);
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>Starts (again) on the same port and data directory.</summary>
    public async Task StartAgainAsync()
    {
        if (_app is not null)
        {
            throw new InvalidOperationException("The server is already running.");
        }

        WebApplication app = CollabServerHost.Build(["--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture)], config => config.AddInMemoryCollection(_settings));
        await app.StartAsync();
        _app = app;
    }

    /// <summary>Graceful stop: connections get 1001, the op log is flushed, documents are snapshotted.</summary>
    public async Task StopAsync()
    {
        WebApplication? app = _app;
        _app = null;
        if (app is not null)
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp directory is harmless.
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
