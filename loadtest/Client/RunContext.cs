using System.Net;
using Collab.LoadTest.Metrics;

namespace Collab.LoadTest.Client;

/// <summary>How a writer submits its scheduled ops.</summary>
internal enum SubmitMode
{
    /// <summary>Every op is sent at its scheduled time with base_version = the client's last known version; the server transforms (several in flight).</summary>
    Pipelined,

    /// <summary>ShareDB's client queue: at most one op in flight per client; scheduled ops wait for the previous ack (latency still counts from the schedule).</summary>
    OneInFlight,

    /// <summary>
    /// No ops: each slot sends a protocol Ping and the Pong counts as its "ack". The round trip through the socket,
    /// framing, session and back without sequencing or storage: the floor that the ack latency of the other modes
    /// sits on, measured by the same generator on the same schedule.
    /// </summary>
    Ping,
}

/// <summary>Which server a run drives, and so which wire protocol its light clients speak.</summary>
internal enum ServerKind
{
    /// <summary>Collab: binary protobuf over WebSocket (subprotocol collab.v1), docs/PROTOCOL.md.</summary>
    Collab,

    /// <summary>
    /// ShareDB 7 (loadtest/peers/sharedb-server.js): its JSON protocol over WebSocket text frames, text-unicode
    /// ops, and its client's discipline: one op in flight per document, later ops queued, never composed.
    /// </summary>
    ShareDb,
}

/// <summary>Behaviour of every simulated client in a run.</summary>
internal sealed record ClientSettings
{
    public ServerKind Server { get; init; } = ServerKind.Collab;

    public SubmitMode SubmitMode { get; init; } = SubmitMode.Pipelined;

    /// <summary>The documents' OT type (Collab only: ShareDB's harness serves text-unicode).</summary>
    public DocumentKind Document { get; init; } = DocumentKind.Text;

    /// <summary>Deadline for TCP connect + upgrade + Hello/Welcome + subscribe (and catch-up).</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Reconnect after a lost connection (resume with the same client id and resend unacknowledged ops).</summary>
    public bool Reconnect { get; init; } = true;

    /// <summary>
    /// Backoff of the protocol's reference client (docs/PROTOCOL.md 4.3): before attempt n wait uniformly in
    /// [min, min(max, min·2^n)]. Zero reconnects at once (the worst case for the server).
    /// </summary>
    public TimeSpan ReconnectMinDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    public TimeSpan ReconnectMaxDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Characters per inserted token (ASCII).</summary>
    public int TokenLength { get; init; } = 4;

    public string ClientName { get; init; } = "collab-loadtest/1.0";
}

/// <summary>Everything the simulated clients share: settings, counters, histograms, the measurement window, the directory.</summary>
internal sealed class RunContext
{
    private readonly Dictionary<Uri, IPEndPoint> _endpoints = [];
    private volatile ClientDirectory _directory = ClientDirectory.Empty;

    public RunContext(ClientSettings settings, int seed)
    {
        Settings = settings;
        Seed = seed;
    }

    public ClientSettings Settings { get; }

    public int Seed { get; }

    public RunCounters Counters { get; } = new();

    public ErrorCounters Errors { get; } = new();

    /// <summary>Scheduled send time → own Ack.</summary>
    public LatencyMetric AckLatency { get; } = new();

    /// <summary>Scheduled send time → op received by another client of the document.</summary>
    public LatencyMetric BroadcastLatency { get; } = new();

    /// <summary>Scheduled send time → the scheduler actually handed the op to its client (the generator's own lateness).</summary>
    public LatencyMetric SendLag { get; } = new();

    /// <summary>Drop → resumed (Welcome, subscribed, caught up) per client, for reconnect storms.</summary>
    public LatencyMetric ResumeTime { get; } = new();

    public MeasurementWindow Window { get; } = new();

    public ClientDirectory Directory
    {
        get => _directory;
        set => _directory = value;
    }

    /// <summary>The endpoint of a server URL, resolved once.</summary>
    public IPEndPoint EndPointFor(Uri server)
    {
        lock (_endpoints)
        {
            if (!_endpoints.TryGetValue(server, out IPEndPoint? endpoint))
            {
                IPAddress address = IPAddress.TryParse(server.Host, out IPAddress? parsed)
                    ? parsed
                    : Dns.GetHostAddresses(server.Host).First(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork);
                endpoint = new IPEndPoint(address, server.Port);
                _endpoints[server] = endpoint;
            }

            return endpoint;
        }
    }
}
