using Collab.Server.Hosting;
using Collab.Server.Transport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Collab.Server.Tests.Transport.Infrastructure;

/// <summary>
/// The real transport (Kestrel + our connection handler) in-process on a free loopback port, for
/// tests of this layer and of the layers above it.
/// </summary>
public sealed class TestTransportServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private bool _stopped;

    private TestTransportServer(WebApplication app, int port, TransportOptions options)
    {
        _app = app;
        Port = port;
        Options = options;
    }

    public int Port { get; }

    public TransportOptions Options { get; }

    public IServiceProvider Services => _app.Services;

    public Uri WebSocketUri => new($"{(Options.UseTls ? "wss" : "ws")}://127.0.0.1:{Port}{Options.WebSocketPath}");

    public Uri HttpUri => new($"{(Options.UseTls ? "https" : "http")}://127.0.0.1:{Port}/");

    /// <summary>
    /// Starts the transport with <paramref name="application"/> behind it. <paramref name="options"/>
    /// defaults to production defaults; its Port and ListenAddress are overwritten (free loopback port).
    /// </summary>
    public static async Task<TestTransportServer> StartAsync(
        IWebSocketApplication application,
        TransportOptions? options = null,
        Action<IServiceCollection>? configureServices = null,
        Action<WebApplication>? configureApp = null)
    {
        options ??= new TransportOptions();
        options.Port = 0;
        options.ListenAddress = "127.0.0.1";

        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = Array.Empty<string>() });
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddSingleton(application);
        builder.Services.AddCollabTransport(options);
        configureServices?.Invoke(builder.Services);
        builder.WebHost.ConfigureCollabKestrel(options);

        WebApplication app = builder.Build();
        app.UseCollabTransport();
        configureApp?.Invoke(app);
        await app.StartAsync().ConfigureAwait(false);

        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        int port = new Uri(address).Port;
        return new TestTransportServer(app, port, options);
    }

    /// <summary>Stops the host the way SIGTERM does (ApplicationStopping, drain, Kestrel stop).</summary>
    public async Task StopAsync()
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        await _app.StopAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
