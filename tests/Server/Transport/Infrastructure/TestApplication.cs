using System.Buffers;
using System.Collections.Concurrent;
using System.Threading.Channels;
using Collab.Server.Transport;

namespace Collab.Server.Tests.Transport.Infrastructure;

/// <summary>
/// A configurable <see cref="IWebSocketApplication"/> for tests: echoes by default, records every
/// open and close, and lets a test decide handshakes or handle messages itself.
/// </summary>
public sealed class TestApplication : IWebSocketApplication
{
    private readonly Channel<ConnectionEndReason> _closed = Channel.CreateUnbounded<ConnectionEndReason>();
    private readonly Channel<IWebSocketConnection> _opened = Channel.CreateUnbounded<IWebSocketConnection>();

    /// <summary>Decides handshakes; default accepts without a sub-protocol.</summary>
    public Func<HandshakeRequest, HandshakeDecision> Handshake { get; set; } = _ => HandshakeDecision.Accept();

    /// <summary>Handles a message; default echoes it with the same type.</summary>
    public Func<IWebSocketConnection, ReadOnlySequence<byte>, bool, ValueTask> OnMessage { get; set; } = Echo;

    public ConcurrentBag<HandshakeRequest> Handshakes { get; } = new();

    public ConcurrentDictionary<long, IWebSocketConnection> Open { get; } = new();

    public int OpenedCount => _openedCount;

    public int ClosedCount => _closedCount;

    private int _openedCount;
    private int _closedCount;

    public static ValueTask Echo(IWebSocketConnection connection, ReadOnlySequence<byte> payload, bool isText)
    {
        using OutboundMessage reply = isText ? OutboundMessage.CreateText((int)payload.Length) : OutboundMessage.CreateBinary((int)payload.Length);
        foreach (ReadOnlyMemory<byte> segment in payload)
        {
            segment.Span.CopyTo(reply.GetSpan(segment.Length));
            reply.Advance(segment.Length);
        }

        reply.Complete();
        connection.TrySend(reply);
        return ValueTask.CompletedTask;
    }

    public ValueTask<HandshakeDecision> OnHandshakeAsync(HandshakeRequest request, CancellationToken cancellationToken)
    {
        Handshakes.Add(request);
        return ValueTask.FromResult(Handshake(request));
    }

    public IWebSocketSession OnOpen(IWebSocketConnection connection, object? handshakeState)
    {
        Open[connection.Id] = connection;
        Interlocked.Increment(ref _openedCount);
        _opened.Writer.TryWrite(connection);
        return new Session(this, connection);
    }

    /// <summary>The next connection to open.</summary>
    public async Task<IWebSocketConnection> NextOpenedAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        return await _opened.Reader.ReadAsync(cts.Token);
    }

    /// <summary>The reason of the next connection to close.</summary>
    public async Task<ConnectionEndReason> NextClosedAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        return await _closed.Reader.ReadAsync(cts.Token);
    }

    private sealed class Session : IWebSocketSession
    {
        private readonly TestApplication _owner;
        private readonly IWebSocketConnection _connection;
        private int _closedCalls;

        public Session(TestApplication owner, IWebSocketConnection connection)
        {
            _owner = owner;
            _connection = connection;
        }

        public ValueTask OnMessageAsync(ReadOnlySequence<byte> payload, bool isText) => _owner.OnMessage(_connection, payload, isText);

        public void OnClosed(ConnectionEndReason reason)
        {
            if (Interlocked.Increment(ref _closedCalls) != 1)
            {
                throw new InvalidOperationException("OnClosed called more than once.");
            }

            _owner.Open.TryRemove(_connection.Id, out _);
            Interlocked.Increment(ref _owner._closedCount);
            _owner._closed.Writer.TryWrite(reason);
        }
    }
}
