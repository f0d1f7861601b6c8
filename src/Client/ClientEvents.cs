namespace Collab.Client;

/// <summary>The life cycle of a <see cref="CollabClient"/> connection.</summary>
public enum CollabConnectionState
{
    /// <summary>The first connection is being made.</summary>
    Connecting = 0,

    /// <summary>Welcome received: requests flow.</summary>
    Connected = 1,

    /// <summary>The connection dropped; the client is backing off or reconnecting. Local edits keep being accepted.</summary>
    Reconnecting = 2,

    /// <summary>Disposed, or given up (fatal error or reconnect attempts exhausted). Terminal.</summary>
    Closed = 3,
}

/// <summary>Why a connection ended.</summary>
public enum DisconnectReason
{
    /// <summary>The socket failed or the server vanished without a close handshake.</summary>
    TransportError = 0,

    /// <summary>The server closed the connection (see the close status).</summary>
    ServerClosed = 1,

    /// <summary>Nothing was received within the ping interval plus the pong timeout.</summary>
    KeepAliveTimeout = 2,

    /// <summary>The server sent Redirect.</summary>
    Redirected = 3,

    /// <summary>The server closed with 4001: the token expired; the client reconnects with a fresh one.</summary>
    AuthExpired = 4,

    /// <summary>The application disposed the client.</summary>
    ClientClosed = 5,

    /// <summary>The server refused the session (forbidden, unauthorized, unsupported protocol version): no reconnect.</summary>
    Rejected = 6,

    /// <summary>The reconnect policy ran out of attempts.</summary>
    RetriesExhausted = 7,

    /// <summary>
    /// The server closed with 4009: another connection said Hello with this client's id and took the session over (a copy
    /// of this client's stored id in another process, or this client's own newer connection). The client drops the id,
    /// reconnects with a fresh one and moves its pending edits to it (docs/PROTOCOL.md §7, changed client id).
    /// </summary>
    SessionReplaced = 8,
}

/// <summary>Arguments of <see cref="CollabClient.Connected"/>.</summary>
public sealed class ConnectedEventArgs : EventArgs
{
    internal ConnectedEventArgs(string clientId, string serverId, bool resumed, Uri uri)
    {
        ClientId = clientId;
        ServerId = serverId;
        Resumed = resumed;
        Uri = uri;
    }

    /// <summary>The client id the server assigned or resumed.</summary>
    public string ClientId { get; }

    /// <summary>The server node that accepted the connection.</summary>
    public string ServerId { get; }

    /// <summary>The server recognised the client id from an earlier connection.</summary>
    public bool Resumed { get; }

    /// <summary>The address connected to (differs from the configured one after a Redirect).</summary>
    public Uri Uri { get; }
}

/// <summary>Arguments of <see cref="CollabClient.Disconnected"/>.</summary>
public sealed class DisconnectedEventArgs : EventArgs
{
    internal DisconnectedEventArgs(DisconnectReason reason, string? description, int? closeStatus, Exception? exception, bool willReconnect)
    {
        Reason = reason;
        Description = description;
        CloseStatus = closeStatus;
        Exception = exception;
        WillReconnect = willReconnect;
    }

    /// <summary>Why the connection ended.</summary>
    public DisconnectReason Reason { get; }

    /// <summary>Human-readable detail (the close reason text, the error message).</summary>
    public string? Description { get; }

    /// <summary>The WebSocket close code, when the server closed the connection.</summary>
    public int? CloseStatus { get; }

    /// <summary>The failure, for transport errors.</summary>
    public Exception? Exception { get; }

    /// <summary><see langword="false"/> when this was the last connection: the client is now <see cref="CollabConnectionState.Closed"/>.</summary>
    public bool WillReconnect { get; }
}

/// <summary>Arguments of <see cref="CollabClient.Reconnecting"/>.</summary>
public sealed class ReconnectingEventArgs : EventArgs
{
    internal ReconnectingEventArgs(int attempt, TimeSpan delay, Uri uri)
    {
        Attempt = attempt;
        Delay = delay;
        Uri = uri;
    }

    /// <summary>1-based attempt number since the connection was lost (redirects do not count).</summary>
    public int Attempt { get; }

    /// <summary>How long the client waits before the attempt.</summary>
    public TimeSpan Delay { get; }

    /// <summary>Where the attempt goes.</summary>
    public Uri Uri { get; }
}

/// <summary>Arguments of <see cref="CollabClient.Error"/> and <see cref="CollabDocument.Error"/>: an Error message from the server.</summary>
public sealed class CollabErrorEventArgs : EventArgs
{
    internal CollabErrorEventArgs(CollabErrorCode code, string message, bool retryable, string? docId, long clientSeq)
    {
        Code = code;
        Message = message;
        Retryable = retryable;
        DocId = docId;
        ClientSeq = clientSeq;
    }

    /// <summary>Why the server refused.</summary>
    public CollabErrorCode Code { get; }

    /// <summary>The server's explanation.</summary>
    public string Message { get; }

    /// <summary>The request is retried automatically (the SDK handles retryable errors itself; this is informational).</summary>
    public bool Retryable { get; }

    /// <summary>The document concerned, if any.</summary>
    public string? DocId { get; }

    /// <summary>The client seq of the rejected submit, or 0.</summary>
    public long ClientSeq { get; }
}
