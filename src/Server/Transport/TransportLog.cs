using System.Net;

namespace Collab.Server.Transport;

/// <summary>
/// Source-generated log messages of the WebSocket transport, with stable event ids (5000–5099). Per-connection events
/// (open, close, slow consumer) are Debug: at thousands of connections they are traffic, not news; the counters in
/// <see cref="TransportMetrics"/> carry them in production.
/// </summary>
internal static partial class TransportLog
{
    [LoggerMessage(5000, LogLevel.Error, "Connection {ConnectionId}: unexpected transport failure")]
    public static partial void Unexpected(ILogger logger, long connectionId, Exception exception);

    [LoggerMessage(5001, LogLevel.Warning, "Connection {ConnectionId}: the application threw")]
    public static partial void ApplicationFailure(ILogger logger, long connectionId, Exception exception);

    [LoggerMessage(5002, LogLevel.Error, "Connection {ConnectionId}: the application chose sub-protocol '{SubProtocol}' that the client did not offer")]
    public static partial void BadSubProtocol(ILogger logger, long connectionId, string subProtocol);

    [LoggerMessage(5003, LogLevel.Error, "Connection {ConnectionId}: the application's rejection carried a WWW-Authenticate challenge with control or non-ASCII characters")]
    public static partial void BadRejectionHeaders(ILogger logger, long connectionId);

    [LoggerMessage(5010, LogLevel.Debug, "Connection {ConnectionId} from {RemoteEndPoint}: WebSocket open")]
    public static partial void ConnectionOpened(ILogger logger, long connectionId, IPEndPoint? remoteEndPoint);

    [LoggerMessage(5011, LogLevel.Debug, "Connection {ConnectionId}: WebSocket closed ({Reason})")]
    public static partial void ConnectionClosed(ILogger logger, long connectionId, ConnectionEndReason reason);

    [LoggerMessage(5012, LogLevel.Debug, "Connection {ConnectionId}: closing a slow consumer with 1013 ({QueuedBytes} bytes queued, the bound is {MaxBytes})")]
    public static partial void SlowConsumer(ILogger logger, long connectionId, long queuedBytes, long maxBytes);
}
