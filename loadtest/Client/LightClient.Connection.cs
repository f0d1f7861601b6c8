using System.Net;
using System.Net.Sockets;
using Collab.LoadTest.Metrics;
using Google.Protobuf;

namespace Collab.LoadTest.Client;

/// <summary>Connection life cycle: connect, upgrade, Hello and subscribe; drop, close, reconnect with the SDK's backoff.</summary>
internal sealed partial class LightClient
{
    /// <summary>
    /// Connects, upgrades, says Hello (ShareDB: the handshake; resuming the client id after the first time) and
    /// subscribes (a snapshot the first time, from the last known version afterwards); completes once the client is
    /// live and caught up.
    /// </summary>
    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_state == ClientState.Closed, this);

            _state = ClientState.Connecting;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_ctx.Settings.ConnectTimeout);
        IPEndPoint endpoint = _ctx.EndPointFor(Server);
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (Source is not null)
            {
                // Choose the source address only; the port is picked at connect time, per destination, so each
                // source address has its own ephemeral range.
                socket.SetRawSocketOption(SolIp, IpBindAddressNoPort, BitConverter.GetBytes(1));
                socket.Bind(new IPEndPoint(Source, 0));
            }

            await socket.ConnectAsync(endpoint, timeout.Token).ConfigureAwait(false);
            (byte[] buffer, int leftover) = await HandshakeAsync(socket, timeout.Token).ConfigureAwait(false);
            socket.Blocking = false;

            TaskCompletionSource ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
            int generation;
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_state == ClientState.Closed, this);

                generation = ++_generation;
                _socket = socket;
                _state = ClientState.AwaitingWelcome;
                _ready = ready;
                _outboxLength = 0;
                _flushing = false;
                _fragmentLength = 0;
                SendHelloLocked();
            }

            _ = ReceiveLoopAsync(socket, generation, buffer, leftover);
            await ready.Task.WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch
        {
            lock (_gate)
            {
                if (ReferenceEquals(_socket, socket))
                {
                    _socket = null;
                    _generation++;
                }

                if (_state != ClientState.Closed)
                {
                    _state = ClientState.Disconnected;
                }
            }

            socket.Dispose();
            throw;
        }
    }

    /// <summary>Drops the connection the hard way (TCP RST), as a network failure would; the client then reconnects.</summary>
    public void Drop()
    {
        Socket? socket;
        lock (_gate)
        {
            socket = _socket;
            if (socket is null || _state == ClientState.Closed)
            {
                return;
            }

            _droppedAt = Clock.Now;
        }

        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already reset by the peer or closed by the receive loop: disposing is all that is left.
        }

        socket.Dispose();
    }

    /// <summary>Closes for good: a Close frame (1000), then the socket. No reconnect follows.</summary>
    public void Close()
    {
        Socket? socket;
        lock (_gate)
        {
            if (_state == ClientState.Closed)
            {
                return;
            }

            socket = _socket;
            if (socket is not null)
            {
                Span<byte> payload = [0x03, 0xE8]; // 1000, normal closure
                SendFrameLocked(WsOpcode.Close, payload);
            }

            _state = ClientState.Closed;
            _socket = null;
            _generation++;
            _ready?.TrySetException(new ObjectDisposedException(nameof(LightClient)));
        }

        if (socket is not null)
        {
            try
            {
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // The peer is gone already, or the receive loop disposed the socket as it ended.
            }

            socket.Dispose();
        }
    }

    /// <summary>Upgrades the connection; returns the connection's receive buffer and how many bytes after the response head it holds.</summary>
    private async Task<(byte[] Buffer, int Leftover)> HandshakeAsync(Socket socket, CancellationToken cancellationToken)
    {
        // A buffer per connection (not per client): a dying connection's loop may still hold the previous one.
        byte[] buffer = new byte[InitialReceiveBuffer];
        string key = WebSocketFraming.NewKey();
        await socket.SendAsync(WebSocketFraming.BuildUpgradeRequest(Server, key, _shareDb ? null : CollabSubprotocol), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        int filled = 0;
        while (true)
        {
            if (filled == buffer.Length)
            {
                throw new WebSocketProtocolException("upgrade response head is larger than the receive buffer");
            }

            int read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new WebSocketProtocolException("connection closed during the upgrade");
            }

            filled += read;
            int end = WebSocketFraming.FindHeadEnd(buffer.AsSpan(0, filled));
            if (end < 0)
            {
                continue;
            }

            WebSocketFraming.ValidateUpgradeResponse(buffer.AsSpan(0, end), key);
            int leftover = filled - end;
            buffer.AsSpan(end, leftover).CopyTo(buffer);
            return (buffer, leftover);
        }
    }


    private void OnConnectionLost(Socket socket, int generation, Exception? failure)
    {
        ClientState previous;
        long droppedAt;
        lock (_gate)
        {
            if (generation != _generation)
            {
                socket.Dispose();
                return;
            }

            previous = _state;
            _socket = null;
            _generation++;
            _pingsInFlight = 0; // their Pongs cannot come any more: they stay unanswered
            _pingSchedule?.Clear();
            _fetching = false;
            if (_state != ClientState.Closed)
            {
                _state = ClientState.Disconnected;
            }

            _ready?.TrySetException(failure ?? new IOException("connection closed"));
            droppedAt = _droppedAt != 0 ? _droppedAt : Clock.Now;
            _droppedAt = droppedAt;
        }

        socket.Dispose();
        if (previous == ClientState.Closed)
        {
            return;
        }

        Interlocked.Increment(ref _ctx.Counters.Disconnects);
        if (previous != ClientState.Live && previous != ClientState.CatchingUp)
        {
            // Still connecting: ConnectAsync sees the failure and its caller decides.
            return;
        }

        if (!_ctx.Settings.Reconnect)
        {
            _ctx.Errors.Add("disconnected", failure?.Message);
            return;
        }

        _ = ReconnectLoopAsync();
    }

    private async Task ReconnectLoopAsync()
    {
        TimeSpan min = _ctx.Settings.ReconnectMinDelay;
        TimeSpan max = _ctx.Settings.ReconnectMaxDelay;
        for (int attempt = 1; ; attempt++)
        {
            if (min > TimeSpan.Zero)
            {
                double upper = Math.Min(max.TotalMilliseconds, min.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 20)));
                double delay = min.TotalMilliseconds + (NextDouble() * (upper - min.TotalMilliseconds));
                await Task.Delay(TimeSpan.FromMilliseconds(delay)).ConfigureAwait(false);
            }

            if (State == ClientState.Closed)
            {
                return;
            }

            try
            {
                await ConnectAsync(CancellationToken.None).ConfigureAwait(false);
                Interlocked.Increment(ref _ctx.Counters.Reconnects);
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or TimeoutException or WebSocketProtocolException or ServerRefusedException or WireFormatException or InvalidProtocolBufferException or System.Text.Json.JsonException)
            {
                _ctx.Errors.Add("reconnect-attempt", ex.Message);
                if (min <= TimeSpan.Zero)
                {
                    // Even the "reconnect at once" mode must not spin on a server that refuses connections.
                    await Task.Delay(TimeSpan.FromMilliseconds(10 * attempt)).ConfigureAwait(false);
                }
            }
        }
    }
}
