using System.Globalization;

namespace Collab.Server.Transport;

/// <summary>Every tunable of the network layer in one place. Validated once at startup by <see cref="Validate"/>.</summary>
public sealed class TransportOptions
{
    /// <summary>The configuration section bound by <see cref="FromConfiguration"/> (environment: <c>Transport__MaxConnections</c> etc.).</summary>
    public const string Section = "Transport";

    /// <summary>TCP port for WebSocket and the HTTP probes. Default 8080; <c>--port</c> or <c>COLLAB_PORT</c>. 0 picks a free port (tests).</summary>
    public int Port { get; set; } = 8080;

    /// <summary>Address to bind; null or empty binds every interface (IPv6 dual-stack where available).</summary>
    public string? ListenAddress { get; set; }

    /// <summary>
    /// A second port serving only /healthz, /readyz and /metrics on dedicated threads, so probes and scrapes are
    /// answered promptly while client work saturates the thread pool (on the WebSocket port they queue behind it).
    /// Unset: off (the probes stay on <see cref="Port"/> either way). 0 picks a free port (tests). Point orchestrator
    /// probes and Prometheus here in production.
    /// </summary>
    public int? ManagementPort { get; set; }

    /// <summary>Request path of the WebSocket endpoint.</summary>
    public string WebSocketPath { get; set; } = "/ws";

    /// <summary>Largest message (all fragments together) a client may send; larger ones close with 1009 (announced in Welcome.max_message_bytes).</summary>
    public int MaxMessageBytes { get; set; } = Collab.Protocol.ProtocolLimits.DefaultMaxMessageBytes;

    /// <summary>
    /// Most concurrently open WebSocket connections; further upgrades are answered 503 before the
    /// handshake completes. The default stays under the 20,000 open files a process may hold here.
    /// </summary>
    public int MaxConnections { get; set; } = 19_000;

    /// <summary>
    /// Most TCP connections at once that have not (yet) become WebSockets: handshakes in progress, probe
    /// requests and idle keep-alive HTTP connections. Further connections are answered 503 at once, so a
    /// flood of slow or never-finished handshakes cannot exhaust memory or sockets; each pending one is
    /// also bounded in time by <see cref="HandshakeTimeout"/>.
    /// </summary>
    public int MaxPendingHandshakes { get; set; } = 1000;

    /// <summary>
    /// Most of those <see cref="MaxPendingHandshakes"/> connections that one client address may hold at once (IPv4
    /// addresses alone, IPv6 per /64), so one address cannot take the server's whole handshake capacity; further
    /// connections from it are answered 429 at once. Loopback clients are not counted unless
    /// <see cref="ExemptLoopbackAddresses"/> is false. Behind a reverse proxy every client has the proxy's address: limit
    /// at the proxy instead. 0 disables the limit.
    /// </summary>
    public int MaxPendingHandshakesPerAddress { get; set; } = 64;

    /// <summary>
    /// Loopback clients (a reverse proxy on the same host, through which every client appears as 127.0.0.1; load
    /// generators) are not counted by <see cref="MaxPendingHandshakesPerAddress"/>. Default true.
    /// </summary>
    public bool ExemptLoopbackAddresses { get; set; } = true;

    /// <summary>
    /// When true (and <see cref="ManagementPort"/> is set), /metrics and /readyz are served on the management port only
    /// and the public port answers them 404, so the world cannot read the metrics or watch readiness. /healthz stays on
    /// both ports. Default false.
    /// </summary>
    public bool ManagementEndpointsPrivate { get; set; }

    /// <summary>
    /// Time a new connection (or an idle keep-alive HTTP connection) has to deliver a complete request head, and a new
    /// WebSocket whose application requires it (Collab: the Hello) its first message; a WebSocket that sends none is
    /// closed with 1002.
    /// </summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>A connection silent for this long is pinged; see <see cref="MaxMissedPongs"/>. One heartbeat tick pings at most twice the steady rate (all connections once per interval), so connections that fell due together are pinged over a few ticks.</summary>
    public TimeSpan PingInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Pings left unanswered (no pong and no other frame for a whole interval each) before the connection is closed with 1001.</summary>
    public int MaxMissedPongs { get; set; } = 2;

    /// <summary>Bound on framed bytes queued for one connection and not yet handed to its socket; past it the connection is closed with 1013 (try again later) as a slow consumer.</summary>
    public int MaxOutboundBytesPerConnection { get; set; } = 4 * 1024 * 1024;

    /// <summary>Origins allowed to open a WebSocket (e.g. <c>https://app.example.com</c>, compared case-insensitively). Empty allows any; a request without Origin (not a browser) is always allowed.</summary>
    public IList<string> AllowedOrigins { get; set; } = new List<string>();

    /// <summary>Certificate for wss:// (PFX, or PEM with <see cref="CertificateKeyPath"/>). Null serves plain ws://.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>PEM private key file when <see cref="CertificatePath"/> is a PEM certificate.</summary>
    public string? CertificateKeyPath { get; set; }

    /// <summary>Password of a PFX certificate (or of an encrypted PEM key).</summary>
    public string? CertificatePassword { get; set; }

    /// <summary>How long to wait for the client's Close reply (and our Close frame's flush) before dropping the TCP connection.</summary>
    public TimeSpan CloseTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>On shutdown, how long connections get to finish the 1001 close handshake and flush before they are aborted.</summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Largest request head (request line and headers) accepted; larger ones get 431.</summary>
    public int MaxRequestHeaderBytes { get; set; } = 8 * 1024;

    /// <summary>Granularity of the timer that enforces every deadline (handshake, ping, close). Lowered in tests.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Whether wss:// is served.</summary>
    public bool UseTls => !string.IsNullOrEmpty(CertificatePath);

    /// <summary>
    /// Builds options from configuration: the <c>Transport</c> section, then the port from <c>--port</c>
    /// (command-line key <c>port</c>) or else the <c>COLLAB_PORT</c> environment variable.
    /// </summary>
    public static TransportOptions FromConfiguration(IConfiguration configuration)
    {
        var options = new TransportOptions();
        BindInto(configuration, options);
        return options;
    }

    /// <summary>Binds configuration into <paramref name="options"/> as <see cref="FromConfiguration"/> does (the options pattern's configure step).</summary>
    internal static void BindInto(IConfiguration configuration, TransportOptions options)
    {
        SettingsBinder.BindInto(configuration, Section, options);
        string? port = configuration["port"] ?? configuration["COLLAB_PORT"];
        if (!string.IsNullOrWhiteSpace(port))
        {
            if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out int value))
            {
                throw SettingErrors.ForSetting(Section, typeof(TransportOptions), nameof(Port), $"'{port}' (from --port or COLLAB_PORT) is not a port number.");
            }

            options.Port = value;
        }
    }

    /// <summary>Throws <see cref="Microsoft.Extensions.Options.OptionsValidationException"/> listing every invalid setting.</summary>
    public void Validate()
    {
        var errors = new SettingErrors(Section, typeof(TransportOptions));
        if (Port is < 0 or > 65535)
        {
            errors.Add(nameof(Port), $"must be 0-65535 (was {Port}).");
        }

        if (ManagementPort is < 0 or > 65535 || (ManagementPort is { } management && management != 0 && management == Port))
        {
            errors.Add(nameof(ManagementPort), $"must be 0-65535 and differ from Port (was {ManagementPort}).");
        }

        if (string.IsNullOrEmpty(WebSocketPath) || WebSocketPath[0] != '/')
        {
            errors.Add(nameof(WebSocketPath), "must start with '/'.");
        }
        else if (WebSocketPath is "/healthz" or "/readyz" or "/metrics")
        {
            errors.Add(nameof(WebSocketPath), $"'{WebSocketPath}' collides with a probe endpoint.");
        }

        errors.Positive(MaxMessageBytes, nameof(MaxMessageBytes));
        errors.Positive(MaxConnections, nameof(MaxConnections));
        errors.Positive(MaxPendingHandshakes, nameof(MaxPendingHandshakes));
        errors.Positive(MaxPendingHandshakesPerAddress, nameof(MaxPendingHandshakesPerAddress), allowZero: true);
        if (ManagementEndpointsPrivate && ManagementPort is null)
        {
            errors.Add(nameof(ManagementEndpointsPrivate), "needs a ManagementPort (otherwise /metrics and /readyz would be served nowhere).");
        }

        errors.Positive(HandshakeTimeout, nameof(HandshakeTimeout));
        errors.Positive(PingInterval, nameof(PingInterval));
        errors.Positive(CloseTimeout, nameof(CloseTimeout));
        errors.Positive(ShutdownTimeout, nameof(ShutdownTimeout));
        errors.Positive(HeartbeatInterval, nameof(HeartbeatInterval));
        errors.Positive(MaxMissedPongs, nameof(MaxMissedPongs));
        if (MaxOutboundBytesPerConnection < 1024)
        {
            errors.Add(nameof(MaxOutboundBytesPerConnection), $"must be at least 1024 (was {MaxOutboundBytesPerConnection}).");
        }

        if (MaxRequestHeaderBytes < 256)
        {
            errors.Add(nameof(MaxRequestHeaderBytes), $"must be at least 256 (was {MaxRequestHeaderBytes}).");
        }

        for (int i = 0; i < AllowedOrigins.Count; i++)
        {
            string origin = AllowedOrigins[i];
            if (!Uri.TryCreate(origin, UriKind.Absolute, out Uri? uri) || uri.AbsolutePath != "/" || origin.EndsWith('/'))
            {
                errors.Add($"{nameof(AllowedOrigins)}:{i}", $"'{origin}' is not an origin like https://host[:port].");
            }
        }

        if (UseTls && !File.Exists(CertificatePath))
        {
            errors.Add(nameof(CertificatePath), $"'{CertificatePath}' does not exist.");
        }

        if (!string.IsNullOrEmpty(CertificateKeyPath) && !File.Exists(CertificateKeyPath))
        {
            errors.Add(nameof(CertificateKeyPath), $"'{CertificateKeyPath}' does not exist.");
        }

        if (!string.IsNullOrEmpty(ListenAddress) && !System.Net.IPAddress.TryParse(ListenAddress, out _))
        {
            errors.Add(nameof(ListenAddress), $"'{ListenAddress}' is not an IP address.");
        }

        errors.ThrowIfAny();
    }
}
