using System.Net.WebSockets;
using Collab.Protocol.V1;
using Microsoft.Extensions.Logging;

namespace Collab.Client.Internal;

/// <summary>Source-generated log messages (no formatting cost when the level is off).</summary>
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Error, "An event handler threw; the event stream continues.")]
    public static partial void EventHandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(2, LogLevel.Information, "Connected to {Uri} as client {ClientId} (server {ServerId}, resumed {Resumed}).")]
    public static partial void Connected(ILogger logger, Uri uri, string clientId, string serverId, bool resumed);

    [LoggerMessage(3, LogLevel.Warning, "Connection lost ({Reason}, close status {CloseStatus}): {Description}")]
    public static partial void Disconnected(ILogger logger, DisconnectReason reason, WebSocketCloseStatus? closeStatus, string? description, Exception? exception);

    [LoggerMessage(4, LogLevel.Information, "Reconnect attempt {Attempt} to {Uri} in {Delay}.")]
    public static partial void Reconnecting(ILogger logger, int attempt, Uri uri, TimeSpan delay);

    [LoggerMessage(5, LogLevel.Warning, "Connection attempt to {Uri} failed.")]
    public static partial void ConnectFailed(ILogger logger, Uri uri, Exception exception);

    [LoggerMessage(6, LogLevel.Information, "Redirected to {Uri} in {RetryAfterMs} ms: {Reason}")]
    public static partial void Redirected(ILogger logger, Uri uri, uint retryAfterMs, string reason);

    [LoggerMessage(7, LogLevel.Warning, "Server error {Code} (retryable {Retryable}) on document '{DocId}', client seq {ClientSeq}: {Message}")]
    public static partial void ServerError(ILogger logger, ErrorCode code, bool retryable, string docId, ulong clientSeq, string message);

    [LoggerMessage(8, LogLevel.Warning, "Ignoring an unexpected {Kind} message for document '{DocId}'.")]
    public static partial void Unexpected(ILogger logger, string kind, string docId);

    [LoggerMessage(9, LogLevel.Warning, "Document '{DocId}' resyncs from a snapshot: {Why}")]
    public static partial void Resync(ILogger logger, string docId, string why);

    [LoggerMessage(10, LogLevel.Warning, "The access token provider failed; the server will close the connection when the token expires.")]
    public static partial void TokenProviderFailed(ILogger logger, Exception exception);

    [LoggerMessage(11, LogLevel.Warning, "Server message could not be decoded; reconnecting.")]
    public static partial void BadServerMessage(ILogger logger, Exception exception);
}
