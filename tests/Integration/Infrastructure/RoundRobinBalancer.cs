using System.Net;
using System.Net.Sockets;

namespace Collab.Integration.Tests.Infrastructure;

/// <summary>
/// A plain round-robin TCP load balancer on 127.0.0.1, as clients of a cluster meet it in production: every new
/// connection goes to the next backend in turn; a backend that refuses the connection is skipped for that connection
/// (a passive health check). It knows nothing about WebSockets, documents or owners. Ending a backend's side ends the
/// client's side, so clients see a killed node as a dropped connection.
/// </summary>
public sealed class RoundRobinBalancer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly IReadOnlyList<int> _backends;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly List<TcpClient> _open = [];
    private int _next;

    public RoundRobinBalancer(IReadOnlyList<int> backendPorts)
    {
        _backends = backendPorts;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>The balancer's port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The WebSocket endpoint behind the balancer.</summary>
    public Uri WebSocketUri => new($"ws://127.0.0.1:{Port}/ws");

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            _ = ProxyAsync(client);
        }
    }

    private async Task ProxyAsync(TcpClient client)
    {
        client.NoDelay = true;
        TcpClient? backend = null;
        for (var tried = 0; tried < _backends.Count && backend is null; tried++)
        {
            var port = _backends[(int)((uint)Interlocked.Increment(ref _next) % (uint)_backends.Count)];
            var candidate = new TcpClient { NoDelay = true };
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(TimeSpan.FromSeconds(2));
                await candidate.ConnectAsync(IPAddress.Loopback, port, timeout.Token).ConfigureAwait(false);
                backend = candidate;
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                candidate.Dispose();
            }
        }

        if (backend is null)
        {
            client.Dispose();
            return;
        }

        lock (_open)
        {
            _open.Add(client);
            _open.Add(backend);
        }

        try
        {
            using (client)
            using (backend)
            {
                var up = PumpAsync(client.GetStream(), backend.GetStream());
                var down = PumpAsync(backend.GetStream(), client.GetStream());

                // Either side ending ends both: a dead node must look like a dropped connection to its clients.
                await Task.WhenAny(up, down).ConfigureAwait(false);
            }
        }
        finally
        {
            lock (_open)
            {
                _open.Remove(client);
                _open.Remove(backend);
            }
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await from.ReadAsync(buffer, _stop.Token).ConfigureAwait(false)) > 0)
            {
                await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or SocketException)
        {
            // Either side went away.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        await _acceptLoop.ConfigureAwait(false);
        lock (_open)
        {
            foreach (var socket in _open)
            {
                socket.Dispose();
            }

            _open.Clear();
        }

        _stop.Dispose();
    }
}
