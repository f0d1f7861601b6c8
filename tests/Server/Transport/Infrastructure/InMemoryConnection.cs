using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Collab.Server.Transport;

namespace Collab.Server.Tests.Transport.Infrastructure;

/// <summary>
/// A transport connection driven through in-memory pipes with inline schedulers: everything the
/// connection does in response to bytes written here runs synchronously on the writing thread, which
/// makes per-thread allocation measurement exact and tests deterministic.
/// </summary>
internal sealed class InMemoryConnection : IAsyncDisposable
{
    private readonly Pipe _toServer;
    private readonly Pipe _fromServer;
    private readonly bool _ownsRegistry;

    /// <param name="application">The application the connection serves.</param>
    /// <param name="options">Transport options; the defaults when null.</param>
    /// <param name="registry">A registry shared with other connections (the caller disposes it); a private one when null.</param>
    public InMemoryConnection(IWebSocketApplication application, TransportOptions? options = null, ConnectionRegistry? registry = null)
    {
        var pipeOptions = new PipeOptions(readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, useSynchronizationContext: false);
        _toServer = new Pipe(pipeOptions);
        _fromServer = new Pipe(pipeOptions);
        options ??= new TransportOptions();
        _ownsRegistry = registry is null;
        Registry = registry ?? new ConnectionRegistry(options);
        var services = new TransportServices(options, application, Registry, inlineOutput: true);
        Connection = new TransportConnection(services, new DuplexPipe(_toServer.Reader, _fromServer.Writer), null, null);
        Run = Connection.RunAsync();
    }

    public ConnectionRegistry Registry { get; }

    public TransportConnection Connection { get; }

    public Task Run { get; }

    /// <summary>Writes bytes as if they arrived from the socket; the connection processes them before this returns.</summary>
    public void Write(ReadOnlySpan<byte> bytes)
    {
        _toServer.Writer.Write(bytes);
        ValueTask<FlushResult> flush = _toServer.Writer.FlushAsync();
        if (!flush.IsCompleted)
        {
            throw new InvalidOperationException("The connection did not consume its input synchronously.");
        }

        flush.GetAwaiter().GetResult();
    }

    /// <summary>Everything the connection has written so far, consumed.</summary>
    public byte[] ReadAll()
    {
        if (!_fromServer.Reader.TryRead(out ReadResult result))
        {
            return Array.Empty<byte>();
        }

        byte[] bytes = result.Buffer.ToArray();
        _fromServer.Reader.AdvanceTo(result.Buffer.End);
        return bytes;
    }

    /// <summary>Consumes output without copying it (allocation-free); returns its length.</summary>
    public long Discard()
    {
        if (!_fromServer.Reader.TryRead(out ReadResult result))
        {
            return 0;
        }

        long length = result.Buffer.Length;
        _fromServer.Reader.AdvanceTo(result.Buffer.End);
        return length;
    }

    public void Handshake()
    {
        Write(Encoding.ASCII.GetBytes("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
        string response = Encoding.ASCII.GetString(ReadAll());

        // The first handshake of a process may finish off this thread (one-time set-up in the libraries it touches);
        // every later step of these tests is synchronous.
        for (int i = 0; i < 500 && response.Length == 0; i++)
        {
            Thread.Sleep(10);
            response = Encoding.ASCII.GetString(ReadAll());
        }

        if (!response.StartsWith("HTTP/1.1 101", StringComparison.Ordinal))
        {
            throw new InvalidOperationException(response);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _toServer.Writer.CompleteAsync();
        await _fromServer.Reader.CompleteAsync();
        await Run.WaitAsync(TimeSpan.FromSeconds(10));
        if (_ownsRegistry)
        {
            Registry.Dispose();
        }
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
