using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Collab.Server.Transport;
using Microsoft.Extensions.Logging.Abstractions;

namespace Collab.Server.Tests.Fuzz;

/// <summary>
/// One <see cref="TransportConnection"/> over in-memory pipes: the client side writes arbitrary bytes (in
/// chosen chunk sizes, so every split point of the parser is exercised), the server's output is drained
/// and discarded, and the application records what it was handed.
/// </summary>
internal static class PipeTransport
{
    public const string Handshake = "GET /ws HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    public static async Task<PipeRun> RunAsync(byte[] clientBytes, int chunkSize, TransportOptions options)
    {
        var application = new RecordingApplication();
        var registry = new ConnectionRegistry(options);
        var services = new TransportServices(options, application, registry, NullLogger.Instance, inlineOutput: true);
        var input = new Pipe(new PipeOptions(useSynchronizationContext: false));
        var output = new Pipe(new PipeOptions(useSynchronizationContext: false));
        var connection = new TransportConnection(services, new DuplexPipe(input.Reader, output.Writer), null, null);
        Task<TransportOutcome> run = connection.RunAsync();
        Task<long> drained = DrainAsync(output.Reader);

        for (int offset = 0; offset < clientBytes.Length; offset += chunkSize)
        {
            int length = Math.Min(chunkSize, clientBytes.Length - offset);
            FlushResult flush = await input.Writer.WriteAsync(clientBytes.AsMemory(offset, length));
            if (flush.IsCompleted)
            {
                break; // the server stopped reading (it closed the connection)
            }
        }

        await input.Writer.CompleteAsync();
        TransportOutcome outcome = await run.WaitAsync(TimeSpan.FromSeconds(10));
        if (outcome == TransportOutcome.HandedOff)
        {
            // Not a request for the WebSocket path: the HTTP pipeline would own the connection from here.
            await output.Writer.CompleteAsync();
        }

        long outputBytes = await drained.WaitAsync(TimeSpan.FromSeconds(10));
        return new PipeRun(outcome, connection.EndReason, application.Messages, application.Opened, application.ClosedCalls, outputBytes);
    }

    private static async Task<long> DrainAsync(PipeReader reader)
    {
        long total = 0;
        while (true)
        {
            ReadResult result = await reader.ReadAsync();
            total += result.Buffer.Length;
            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                await reader.CompleteAsync();
                return total;
            }
        }
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }

    private sealed class RecordingApplication : IWebSocketApplication, IWebSocketSession
    {
        public List<(bool IsText, byte[] Payload)> Messages { get; } = [];

        public bool Opened { get; private set; }

        public int ClosedCalls { get; private set; }

        public ValueTask<HandshakeDecision> OnHandshakeAsync(HandshakeRequest request, CancellationToken cancellationToken) =>
            ValueTask.FromResult(HandshakeDecision.Accept());

        public IWebSocketSession OnOpen(IWebSocketConnection connection, object? handshakeState)
        {
            Opened = true;
            return this;
        }

        public ValueTask OnMessageAsync(ReadOnlySequence<byte> payload, bool isText)
        {
            Messages.Add((isText, payload.ToArray()));
            return ValueTask.CompletedTask;
        }

        public void OnClosed(ConnectionEndReason reason) => ClosedCalls++;
    }
}

/// <summary>What one run of <see cref="PipeTransport"/> produced.</summary>
internal sealed record PipeRun(TransportOutcome Outcome, ConnectionEndReason? EndReason, List<(bool IsText, byte[] Payload)> Messages, bool Opened, int ClosedCalls, long OutputBytes)
{
    public static bool IsValidUtf8(byte[] bytes)
    {
        try
        {
            _ = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }
}
