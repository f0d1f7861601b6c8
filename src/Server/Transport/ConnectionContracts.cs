using System.IO.Pipelines;
using System.Net;

namespace Collab.Server.Transport;

/// <summary>What the application sees of an upgrade request (headers it may need for auth and routing).</summary>
public sealed class HandshakeRequest
{
    public required string Path { get; init; }
    public required string Query { get; init; }
    public string? Origin { get; init; }
    public string? Authorization { get; init; }

    /// <summary>The Cookie header (all of them joined by "; "), or null.</summary>
    public string? Cookie { get; init; }

    /// <summary>
    /// The request's Origin is one of <c>Transport:AllowedOrigins</c> (false when the list is empty or there is no
    /// Origin). A browser always sends Origin on a WebSocket upgrade, so this tells a page of the application apart
    /// from any other page: the condition for honouring ambient credentials such as a cookie.
    /// </summary>
    public bool OriginAllowListed { get; init; }
    /// <summary>Sec-WebSocket-Protocol values offered by the client, in order.</summary>
    public IReadOnlyList<string> SubProtocols { get; init; } = Array.Empty<string>();
    public IPEndPoint? RemoteEndPoint { get; init; }
}

/// <summary>The application's answer to a handshake.</summary>
public readonly record struct HandshakeDecision(int StatusCode, string? SubProtocol, object? State, string? Reason)
{
    public bool Accepted => StatusCode == 101;

    /// <summary>
    /// For an acceptance: the client must send its first message within the transport's HandshakeTimeout, or the
    /// connection is closed with 1002 (a protocol whose first message is a Hello: a socket that never says it holds
    /// a connection slot for nothing, since pings alone keep it alive).
    /// </summary>
    public bool RequireFirstMessage { get; init; }

    /// <summary>For a rejection: seconds the client should wait before trying again (a <c>Retry-After</c> header); 0 sends none.</summary>
    public int RetryAfterSeconds { get; init; }

    /// <summary>
    /// For a 401: the <c>WWW-Authenticate</c> challenge (RFC 6750), e.g. <c>Bearer error="invalid_token"</c>.
    /// Printable ASCII only; anything else makes the transport answer 500 instead.
    /// </summary>
    public string? Challenge { get; init; }

    public static HandshakeDecision Accept(string? subProtocol = null, object? state = null) => new(101, subProtocol, state, null);

    public static HandshakeDecision Reject(int statusCode, string reason, int retryAfterSeconds = 0, string? challenge = null) =>
        new(statusCode, null, null, reason) { RetryAfterSeconds = retryAfterSeconds, Challenge = challenge };
}

/// <summary>Why a connection ended: recorded once, counted in metrics.</summary>
public enum ConnectionEndReason
{
    ClientClosed,
    ServerClosed,
    ServerShutdown,
    ProtocolError,
    InvalidPayload,
    MessageTooBig,
    PolicyViolation,
    SlowConsumer,
    IdleTimeout,
    HandshakeTimeout,
    HandshakeRejected,
    ConnectionReset,
    InternalError,
}

/// <summary>The application's handle on one open WebSocket.</summary>
public interface IWebSocketConnection
{
    long Id { get; }
    IPEndPoint? RemoteEndPoint { get; }

    /// <summary>Cancelled when the connection ends.</summary>
    CancellationToken Closed { get; }

    /// <summary>
    /// Queues a message framed once for many recipients (see <see cref="OutboundMessage"/>).
    /// Returns false when the connection is closed or over its outbound bound; in the latter case the
    /// transport closes it as a slow consumer.
    /// </summary>
    bool TrySend(OutboundMessage message);

    /// <summary>Starts the close handshake with an RFC 6455 status code (or an application code 4000-4999).</summary>
    void Close(ushort statusCode, string reason);
}

/// <summary>How <see cref="TransportConnection.RunAsync"/> ended.</summary>
internal enum TransportOutcome
{
    /// <summary>Served here to the end (a WebSocket, a refused upgrade, or the peer left).</summary>
    Completed,

    /// <summary>Not a request for the WebSocket path: nothing was consumed and the connection belongs to the HTTP pipeline.</summary>
    HandedOff,
}

/// <summary>
/// The HTTP pipeline's side of an upgrade that reached it on a keep-alive connection (the transport validates the
/// request and decides; the pipeline owns the connection and writes the answer).
/// </summary>
internal interface IUpgradeResponse
{
    /// <summary>Answers an error status with a text/plain message and extra header lines ("Name: value\r\n" each).</summary>
    ValueTask RejectAsync(int statusCode, string message, string? extraHeaders);

    /// <summary>Writes the 101 and returns the switched connection as pipes; null when the connection is gone.</summary>
    ValueTask<IDuplexPipe?> AcceptAsync(string secWebSocketKey, string? subProtocol);

    /// <summary>Drops the connection (a deadline passed).</summary>
    void Abort();
}

/// <summary>A reader and a writer as one <see cref="IDuplexPipe"/>.</summary>
internal sealed class StreamPipes(PipeReader input, PipeWriter output) : IDuplexPipe
{
    public PipeReader Input { get; } = input;

    public PipeWriter Output { get; } = output;
}
