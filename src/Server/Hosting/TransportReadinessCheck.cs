using Collab.Server.Transport;

namespace Collab.Server.Hosting;

/// <summary>The transport's own readiness: listening, not draining, not at its connection limit.</summary>
internal sealed class TransportReadinessCheck : IReadinessCheck
{
    private readonly ConnectionRegistry _registry;
    private readonly TransportOptions _options;
    private volatile bool _started;

    public TransportReadinessCheck(ConnectionRegistry registry, TransportOptions options)
    {
        _registry = registry;
        _options = options;
    }

    public string Name => "transport";

    public void MarkStarted() => _started = true;

    public ReadinessResult Check()
    {
        if (_registry.IsShuttingDown)
        {
            return ReadinessResult.NotReady("draining for shutdown");
        }

        if (!_started)
        {
            return ReadinessResult.NotReady("starting");
        }

        return _registry.WebSocketCount >= _options.MaxConnections
            ? ReadinessResult.NotReady($"at the connection limit ({_options.MaxConnections})")
            : ReadinessResult.Ready;
    }
}
