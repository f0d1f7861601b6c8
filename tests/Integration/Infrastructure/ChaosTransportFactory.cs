using System.Buffers;
using System.Collections.Concurrent;
using System.Net.WebSockets;
using Collab.Client.Transport;

namespace Collab.Integration.Tests.Infrastructure;

/// <summary>
/// The SDK's real WebSocket transport with a kill switch: tests drop a client's connection mid-flight
/// (as a network failure would, without a close handshake) to exercise reconnect, resume and resend.
/// </summary>
internal sealed class ChaosTransportFactory : IClientTransportFactory
{
    private readonly ConcurrentDictionary<IClientTransport, byte> _live = new();

    public int Connects;

    public async ValueTask<IClientTransport> ConnectAsync(TransportConnectRequest request, CancellationToken cancellationToken)
    {
        IClientTransport inner = await WebSocketTransportFactory.Instance.ConnectAsync(request, cancellationToken);
        Interlocked.Increment(ref Connects);
        var tracked = new Tracked(inner, this);
        _live[tracked] = 0;
        return tracked;
    }

    /// <summary>Aborts every open connection made through this factory.</summary>
    public int AbortAll()
    {
        int n = 0;
        foreach (IClientTransport transport in _live.Keys)
        {
            transport.Abort();
            n++;
        }

        return n;
    }

    private sealed class Tracked(IClientTransport inner, ChaosTransportFactory owner) : IClientTransport
    {
        public WebSocketCloseStatus? CloseStatus => inner.CloseStatus;

        public string? CloseStatusDescription => inner.CloseStatusDescription;

        public ValueTask SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken) => inner.SendAsync(message, cancellationToken);

        public ValueTask<bool> ReceiveAsync(IBufferWriter<byte> destination, CancellationToken cancellationToken) => inner.ReceiveAsync(destination, cancellationToken);

        public ValueTask CloseAsync(WebSocketCloseStatus status, string? description, CancellationToken cancellationToken) => inner.CloseAsync(status, description, cancellationToken);

        public void Abort()
        {
            owner._live.TryRemove(this, out _);
            inner.Abort();
        }

        public ValueTask DisposeAsync()
        {
            owner._live.TryRemove(this, out _);
            return inner.DisposeAsync();
        }
    }
}
