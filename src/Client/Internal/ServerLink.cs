using System.Buffers;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Threading.Channels;
using Collab.Client.Transport;
using Collab.Protocol;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Client.Internal;

/// <summary>Where and when to reconnect after the server sent Redirect.</summary>
internal sealed record RedirectTarget(Uri Uri, TimeSpan RetryAfter, string Reason);

/// <summary>
/// One established connection (after Welcome): the outbound queue and its single send loop, the
/// keep-alive, and the facts the receive loop gathers about how the connection ended. A reconnect
/// creates a new session; messages queued on an ended session are dropped on purpose, because the
/// documents regenerate everything that matters (subscribe, resend) when the next session starts.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "_ended is cancelled when the session ends and has no timer or linked registrations to release; EndedToken stays readable after the end.")]
internal sealed class ServerLink
{
    private readonly IClientTransport _transport;
    private readonly Channel<ClientMessage> _outbound = Channel.CreateUnbounded<ClientMessage>(new UnboundedChannelOptions
    {
        SingleReader = true,
        SingleWriter = false,
        AllowSynchronousContinuations = false,
    });

    private readonly CancellationTokenSource _ended = new();
    private readonly TimeSpan _pingInterval;
    private readonly TimeSpan _deadAfter;
    private Task _sendLoop = Task.CompletedTask;
    private Task _pingLoop = Task.CompletedTask;
    private long _lastReceiveTimestamp = Stopwatch.GetTimestamp();
    private ulong _pingNonce;

    public ServerLink(IClientTransport transport, Uri uri, Welcome welcome, CollabClientOptions options)
    {
        _transport = transport;
        Uri = uri;
        Welcome = welcome;
        Limits = AnnouncedLimits.FromWelcome(welcome);
        _pingInterval = options.PingInterval;
        _deadAfter = options.PingInterval == Timeout.InfiniteTimeSpan ? Timeout.InfiniteTimeSpan : options.PingInterval + options.PongTimeout;
    }

    public Uri Uri { get; }

    public Welcome Welcome { get; }

    /// <summary>The limits the server announced in Welcome (protocol defaults for what it left out).</summary>
    public AnnouncedLimits Limits { get; }

    public IClientTransport Transport => _transport;

    /// <summary>Cancelled when the session ends; work tied to this connection stops with it.</summary>
    public CancellationToken EndedToken => _ended.Token;

    /// <summary>Set by the receive loop when the server redirected this connection.</summary>
    public RedirectTarget? Redirect { get; set; }

    /// <summary>Set when the keep-alive declared the connection dead.</summary>
    public bool KeepAliveExpired { get; private set; }

    /// <summary>Set when the application disposed the client.</summary>
    public bool ClosedByClient { get; set; }


    /// <summary>Starts the send loop and the keep-alive.</summary>
    public void Start()
    {
        _sendLoop = Task.Run(SendLoopAsync);
        if (_pingInterval != Timeout.InfiniteTimeSpan)
        {
            _pingLoop = Task.Run(PingLoopAsync);
        }
    }

    /// <summary>Queues a message; returns <see langword="false"/> when the session has ended (the message is dropped).</summary>
    public bool TrySend(ClientMessage message) => _outbound.Writer.TryWrite(message);

    /// <summary>Called by the receive loop for every message: proof of life for the keep-alive.</summary>
    public void MarkReceived() => Volatile.Write(ref _lastReceiveTimestamp, Stopwatch.GetTimestamp());

    /// <summary>Begins a graceful close: the receive loop ends when the server answers the close.</summary>
    public async Task CloseAsync(WebSocketCloseStatus status, string description)
    {
        try
        {
            await _transport.CloseAsync(status, description, _ended.Token).ConfigureAwait(false);
        }
        catch (Exception) when (_ended.IsCancellationRequested || _transport.CloseStatus is not null)
        {
            // Already ending: nothing left to close.
        }
        catch (WebSocketException)
        {
            _transport.Abort();
        }
    }

    /// <summary>Stops the loops and releases the transport. Called once by the client's run loop.</summary>
    public async ValueTask EndAsync()
    {
        _outbound.Writer.TryComplete();
        await _ended.CancelAsync().ConfigureAwait(false);
        _transport.Abort();
        await Task.WhenAll(_sendLoop, _pingLoop).ConfigureAwait(false);
        await _transport.DisposeAsync().ConfigureAwait(false);
        _ended.Dispose();
    }

    private async Task SendLoopAsync()
    {
        try
        {
            while (await _outbound.Reader.WaitToReadAsync(_ended.Token).ConfigureAwait(false))
            {
                while (_outbound.Reader.TryRead(out ClientMessage? message))
                {
                    await SendAsync(_transport, message, _ended.Token).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (_ended.IsCancellationRequested)
        {
        }
        catch (Exception)
        {
            // A failed send means a broken socket: abort so the receive loop ends and the client reconnects.
            _transport.Abort();
        }
    }

    private async Task PingLoopAsync()
    {
        using var timer = new PeriodicTimer(_pingInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_ended.Token).ConfigureAwait(false))
            {
                if (Stopwatch.GetElapsedTime(Volatile.Read(ref _lastReceiveTimestamp)) > _deadAfter)
                {
                    KeepAliveExpired = true;
                    _transport.Abort();
                    return;
                }

                TrySend(new ClientMessage { Ping = new Ping { Nonce = ++_pingNonce } });
            }
        }
        catch (OperationCanceledException) when (_ended.IsCancellationRequested)
        {
        }
    }

    /// <summary>Encodes a message into a pooled buffer and sends it; used by the send loop and by the handshake.</summary>
    public static async ValueTask SendAsync(IClientTransport transport, ClientMessage message, CancellationToken cancellationToken)
    {
        int size = message.CalculateSize();
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(size, 1));
        try
        {
            message.WriteTo(buffer.AsSpan(0, size));
            await transport.SendAsync(buffer.AsMemory(0, size), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
