using Collab.Server.Transport;

namespace Collab.Server.Hosting;

/// <summary>
/// Starts the heartbeat and runs the graceful drain. On SIGTERM the host fires ApplicationStopping:
/// readiness turns false, new upgrades get 503, every WebSocket receives Close 1001 and idle HTTP
/// connections are ended; Kestrel stops accepting when its own service stops. StopAsync then waits
/// for connections to finish their close handshake and flush, up to ShutdownTimeout, and aborts the rest.
/// </summary>
internal sealed class TransportLifetimeService : IHostedService
{
    private readonly ConnectionRegistry _registry;
    private readonly TransportOptions _options;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly TransportReadinessCheck _readiness;
    private readonly ILogger<TransportLifetimeService> _logger;
    private CancellationTokenRegistration _stopping;
    private CancellationTokenRegistration _started;

    public TransportLifetimeService(
        ConnectionRegistry registry,
        TransportOptions options,
        IHostApplicationLifetime lifetime,
        TransportReadinessCheck readiness,
        ILogger<TransportLifetimeService> logger)
    {
        _registry = registry;
        _options = options;
        _lifetime = lifetime;
        _readiness = readiness;
        _logger = logger;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _registry.Start();
        _started = _lifetime.ApplicationStarted.Register(static state => ((TransportReadinessCheck)state!).MarkStarted(), _readiness);
        _stopping = _lifetime.ApplicationStopping.Register(static state => ((ConnectionRegistry)state!).BeginShutdown(), _registry);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _registry.BeginShutdown();
        int before = _registry.Count;
        bool drained = await _registry.WaitForDrainAsync(_options.ShutdownTimeout).ConfigureAwait(false);
        if (!drained)
        {
            HostingLog.AbortingOnShutdown(_logger, _registry.Count, before);
            _registry.AbortAll(ConnectionEndReason.ServerShutdown);

            // Aborted connections finish asynchronously; give them a moment to report OnClosed.
            await _registry.WaitForDrainAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }

        await _stopping.DisposeAsync().ConfigureAwait(false);
        await _started.DisposeAsync().ConfigureAwait(false);
        _registry.Dispose();
    }
}
