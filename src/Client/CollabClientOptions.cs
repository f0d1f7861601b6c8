using Collab.Client.Transport;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Collab.Client;

/// <summary>How the access token travels on the WebSocket upgrade request.</summary>
public enum TokenDelivery
{
    /// <summary><c>Authorization: Bearer &lt;token&gt;</c> header (the default; keeps tokens out of access logs).</summary>
    AuthorizationHeader = 0,

    /// <summary><c>access_token</c> query parameter, for proxies that strip headers.</summary>
    QueryParameter = 1,

    /// <summary>
    /// A second offered subprotocol <c>bearer.&lt;token&gt;</c> next to <see cref="CollabClientOptions.SubProtocol"/>
    /// (what browsers can do, as they cannot set headers); the server never selects it.
    /// </summary>
    SubProtocol = 2,
}

/// <summary>Which WebSocket client carries the connection (<see cref="CollabClientOptions.Transport"/>).</summary>
public enum TransportKind
{
    /// <summary>
    /// <see cref="Pipelines"/>, except where the system proxy settings (<c>HTTP_PROXY</c>/<c>HTTPS_PROXY</c>/<c>NO_PROXY</c>,
    /// or the registry on Windows) send the server's address through a proxy: then <see cref="ClientWebSocket"/>. Decided
    /// for each connection attempt. The default.
    /// </summary>
    Automatic = 0,

    /// <summary>
    /// The SDK's own RFC 6455 client over a socket pipe (Pipelines.Sockets.Unofficial's <c>SocketConnection</c>, TCP_NODELAY;
    /// <c>wss://</c> through <see cref="System.Net.Security.SslStream"/>): no allocation per message and a lower latency than
    /// <see cref="ClientWebSocket"/> (docs/PERFORMANCE.md). Connects to the server directly, never through a proxy.
    /// </summary>
    Pipelines = 1,

    /// <summary>
    /// .NET's <see cref="System.Net.WebSockets.ClientWebSocket"/>: follows the system proxy settings (HTTP CONNECT), for
    /// networks that allow no direct connection.
    /// </summary>
    ClientWebSocket = 2,
}

/// <summary>Settings of one <see cref="CollabClient"/>. Read once when the client is created.</summary>
public sealed class CollabClientOptions
{
    /// <summary>The WebSocket subprotocol of wire protocol version 1.</summary>
    public const string DefaultSubProtocol = "collab.v1";

    /// <summary>
    /// A client id from an earlier session to resume, so the server keeps deduplicating that id's
    /// (client id, client seq) pairs; <see langword="null"/> lets the server assign one
    /// (read it back from <see cref="CollabClient.ClientId"/>). Only ids the server issued (to this user) are resumed;
    /// for any other the server issues a fresh one. One live connection per id: a second one takes the session over and
    /// the first is closed with 4009, so do not share a stored id between processes running at the same time.
    /// </summary>
    public string? ClientId { get; init; }

    /// <summary>
    /// The last client seq this <see cref="ClientId"/> used in an earlier process (0 for a new id).
    /// Seqs are never reused for a client id: the next submit uses <c>LastClientSeq + 1</c>.
    /// Persist <see cref="CollabClient.LastClientSeq"/> together with the client id to resume across processes.
    /// </summary>
    public long LastClientSeq { get; init; }

    /// <summary>
    /// Returns the access token to present, or <see langword="null"/> for none. Called before every
    /// connect and reconnect, and when the server announces that the current token expires soon
    /// (the answer is sent as Reauthenticate over the open connection).
    /// </summary>
    public Func<CancellationToken, ValueTask<string?>>? AccessTokenProvider { get; init; }

    /// <summary>How the token is attached to the upgrade request.</summary>
    public TokenDelivery TokenDelivery { get; init; } = TokenDelivery.AuthorizationHeader;

    /// <summary>The WebSocket client used; see <see cref="TransportKind"/>.</summary>
    public TransportKind Transport { get; init; } = TransportKind.Automatic;

    /// <summary>The WebSocket subprotocol requested; <see langword="null"/> or empty requests none.</summary>
    public string? SubProtocol { get; init; } = DefaultSubProtocol;

    /// <summary>Free text sent in Hello for the server's logs and metrics.</summary>
    public string ClientName { get; init; } = "collab-dotnet/1.0";

    /// <summary>Reconnect backoff after a dropped connection.</summary>
    public ReconnectPolicy Reconnect { get; init; } = ReconnectPolicy.Default;

    /// <summary>
    /// How often a Ping is sent; the connection is considered dead (and re-established) when nothing at all
    /// was received for <see cref="PingInterval"/> + <see cref="PongTimeout"/>.
    /// <see cref="Timeout.InfiniteTimeSpan"/> disables the keep-alive.
    /// </summary>
    public TimeSpan PingInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Grace period for the server's answer to a Ping; see <see cref="PingInterval"/>.</summary>
    public TimeSpan PongTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Budget for one connection attempt: transport connect plus Hello/Welcome.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest server message accepted (a snapshot of a large document is the biggest); larger ones close the connection.</summary>
    public int MaxReceiveMessageBytes { get; init; } = 64 * 1024 * 1024;

    /// <summary>How many Redirects in a row are followed before the attempt counts as failed.</summary>
    public int MaxRedirects { get; init; } = 5;

    /// <summary>Diagnostics sink.</summary>
    public ILogger Logger { get; init; } = NullLogger.Instance;

    /// <summary>The transport: the one <see cref="Transport"/> selects unless a test or the load-test tool plugs another.</summary>
    internal IClientTransportFactory TransportFactory
    {
        get => _transportFactory ?? SelectingTransportFactory.For(Transport);
        init => _transportFactory = value;
    }

    private readonly IClientTransportFactory? _transportFactory;

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Reconnect);
        ArgumentNullException.ThrowIfNull(Logger);
        ArgumentNullException.ThrowIfNull(TransportFactory);
        if (!Enum.IsDefined(Transport))
        {
            throw new ArgumentOutOfRangeException(nameof(Transport), Transport, "Unknown transport.");
        }
        Reconnect.Validate();
        if (PingInterval != Timeout.InfiniteTimeSpan && PingInterval <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(PingInterval), PingInterval, "PingInterval must be positive or infinite.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(PongTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ConnectTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxReceiveMessageBytes, 1024);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxRedirects);
    }
}
