using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Collab.Server.Tests.Security.Infrastructure;

/// <summary>The whole server (CollabServerHost) on a free loopback port with a temp data directory and extra settings.</summary>
public sealed class SecureServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _directory;

    private SecureServer(WebApplication app, string directory, int port)
    {
        _app = app;
        _directory = directory;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The embedded store's directory (the SQLite file is <c>collab.db</c> in it).</summary>
    public string DataDirectory => _directory;

    public Uri WebSocketUri => new($"ws://127.0.0.1:{Port}/ws");

    public IServiceProvider Services => _app.Services;

    public static async Task<SecureServer> StartAsync(IReadOnlyDictionary<string, string?> settings)
    {
        string directory = Directory.CreateTempSubdirectory("collab-secure-").FullName;
        var all = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["Storage:DataDirectory"] = directory,
            ["Transport:ListenAddress"] = "127.0.0.1",
            ["Transport:HeartbeatInterval"] = "00:00:00.200",
            ["Transport:ShutdownTimeout"] = "00:00:02",
            ["Transport:CloseTimeout"] = "00:00:01",
            ["Node:NodeId"] = "secure-test",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach ((string key, string? value) in settings)
        {
            all[key] = value;
        }

        WebApplication app = CollabServerHost.Build(["--port", "0"], config => config.AddInMemoryCollection(all));
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new SecureServer(app, directory, new Uri(address).Port);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp directory is harmless.
        }
    }
}
