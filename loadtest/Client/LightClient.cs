using System.Net;
using System.Net.Sockets;
using Collab.LoadTest.Metrics;
using Collab.LoadTest.Scheduling;

namespace Collab.LoadTest.Client;

/// <summary>What a simulated client does.</summary>
internal enum ClientRole
{
    /// <summary>Submits ops on the schedule and receives the others'.</summary>
    Writer,

    /// <summary>Only receives (fan-out scenarios): tracks version and length, measures broadcast latency.</summary>
    Reader,

    /// <summary>Opens the document once more after the run to fetch the server's snapshot for the convergence check.</summary>
    Checker,
}

/// <summary>Connection and subscription state of a <see cref="LightClient"/>.</summary>
internal enum ClientState
{
    Idle,
    Connecting,
    AwaitingWelcome,
    AwaitingSubscription,
    CatchingUp,
    Live,
    Disconnected,
    Closed,
}

/// <summary>
/// An op this client submitted and has not seen acknowledged yet: an insert at <paramref name="Position"/> of
/// <paramref name="Text"/> (ASCII), or of the token derived from the seq when it is null (every scheduled op).
/// <paramref name="Scheduled"/> 0 marks a setup op, left out of the statistics. <paramref name="Create"/>: ShareDB's
/// creation of the document with <paramref name="Text"/>.
/// </summary>
/// <paramref name="Own"/>: the op itself for types other than the text fast path (rich-text), transformed as ops arrive.
internal readonly record struct PendingOp(ulong Seq, long Scheduled, long BaseVersion, int Position, byte[]? Text = null, bool Create = false, OwnOp? Own = null);

/// <summary>A Subscribe or Hello was refused by the server.</summary>
internal sealed class ServerRefusedException(string message) : Exception(message);

/// <summary>
/// One simulated client: a raw TCP socket with its own RFC 6455 client framing, one document, and just enough
/// protocol state to produce valid ops and check what it receives — the document's version and length, the
/// unacknowledged ops, and (optionally) a full replica of the text. It speaks Collab's protocol or ShareDB's
/// (<see cref="ClientSettings.Server"/>); hot messages (ops, acks) are decoded in place without allocating.
/// </summary>
/// <remarks>
/// Threads: the receive loop runs on the socket engine's thread (inline completions), the scheduler calls
/// <see cref="OnScheduled"/> from its own thread, and the run's control flow connects, drops and closes. All
/// state is guarded by one lock per client; sends are non-blocking writes under that lock, with an outbox
/// flushed asynchronously if the socket buffer is ever full (a slow server never blocks the scheduler).
/// The class is split by concern: <c>LightClient.Connection.cs</c> (connect, handshake, drop, close, reconnect),
/// <c>.Receive.cs</c> (receive loop and frame parsing), <c>.Document.cs</c> (document state from incoming ops,
/// snapshot, client id; going live), <c>.Submit.cs</c> (scheduled submits and ack matching), <c>.Send.cs</c>
/// (framing and non-blocking writes), and one file per protocol: <c>.Collab.cs</c> and <c>.ShareDb.cs</c>.
/// </remarks>
internal sealed partial class LightClient : IScheduleTarget
{
    private const int InitialReceiveBuffer = 4096;
    private const int HeaderGap = WebSocketFraming.MaxClientHeaderLength;
    private const int SolIp = 0;
    private const int IpBindAddressNoPort = 24;
    private const string CollabSubprotocol = "collab.v1";

    private static readonly byte[] s_tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"u8.ToArray();

    private readonly RunContext _ctx;
    private readonly DocModel _model;
    private readonly bool _shareDb;
    private readonly Lock _gate = new();
    private readonly Queue<PendingOp> _pending = new();
    private readonly Queue<long> _backlog = new();
    private byte[] _scratch = new byte[256];
    private ulong _rng;

    private Socket? _socket;
    private int _generation;
    private ClientState _state;
    private TaskCompletionSource? _ready;
    private bool _hasDocument;
    private long _version;
    private long _length;
    private long _catchUpTarget;
    private ulong _lastSeq;
    private ulong _lastAckedSeq;
    private long _droppedAt;

    private int _pingsInFlight; // ping mode: Pings sent on this connection and not answered yet (a drain waits for them)
    private readonly Queue<long>? _pingSchedule; // ShareDB ping mode: the slots of the pings in flight, in order (its pong has no payload)

    private byte[] _clientIdJson = []; // ShareDB: the client id JSON-escaped (the src of this client's ops)
    private bool _fetching; // ShareDB: a fetch for missed ops is in flight

    private byte[]? _outbox;
    private int _outboxLength;
    private bool _flushing;

    private byte[]? _fragments;
    private int _fragmentLength;

    public LightClient(RunContext ctx, int index, DocState doc, Uri server, IPAddress? source, ClientRole role, bool replica, int trackCapacity)
    {
        _ctx = ctx;
        _shareDb = ctx.Settings.Server == ServerKind.ShareDb;
        _model = DocModel.For(ctx.Settings.Document);
        _pingSchedule = _shareDb ? new Queue<long>() : null;
        Index = index;
        Doc = doc;
        Server = server;
        Source = source;
        Role = role;
        Replica = replica ? _model.NewReplica() : null;
        Track = role == ClientRole.Writer ? new OpTrack(trackCapacity) : null;
        _rng = (ulong)(ctx.Seed + 1) * 0x9E3779B97F4A7C15UL ^ (ulong)(index + 1) * 0xBF58476D1CE4E5B9UL;
        if (_rng == 0)
        {
            _rng = 1;
        }
    }

    public int Index { get; }

    /// <summary>The opcode of the server's messages: binary protobuf (Collab) or JSON text (ShareDB).</summary>
    private WsOpcode MessageOpcode => _shareDb ? WsOpcode.Text : WsOpcode.Binary;

    public DocState Doc { get; }

    public Uri Server { get; }

    public IPAddress? Source { get; }

    public ClientRole Role { get; }

    /// <summary>The server-assigned client id (kept across reconnects, which resume it).</summary>
    public string? ClientId { get; private set; }

    public byte[] ClientIdUtf8 { get; private set; } = [];

    public OpTrack? Track { get; }

    public IReplica? Replica { get; private set; }

    /// <summary>The documents' OT type, as the convergence check needs it.</summary>
    public DocModel Model => _model;

    /// <summary>The snapshot text a <see cref="ClientRole.Checker"/> received (text-unicode).</summary>
    public string? SnapshotText { get; private set; }

    /// <summary>The snapshot content a <see cref="ClientRole.Checker"/> received (rich-text: the document as an insert-only op).</summary>
    public byte[] SnapshotContent { get; private set; } = [];

    /// <summary>Set when this client saw something that makes its state unreliable (a gap, a replica failure).</summary>
    public string? Fault { get; private set; }

    public ulong LastSeq
    {
        get
        {
            lock (_gate)
            {
                return _lastSeq;
            }
        }
    }

    public ClientState State
    {
        get
        {
            lock (_gate)
            {
                return _state;
            }
        }
    }

    /// <summary>Dropped by the storm (or the network) and not yet live again on a new connection.</summary>
    public bool AwaitingResume
    {
        get
        {
            lock (_gate)
            {
                return _droppedAt != 0;
            }
        }
    }

    /// <summary>Version, length and outstanding work, read together.</summary>
    public (long Version, long Length, int Pending, int Backlog) Progress
    {
        get
        {
            lock (_gate)
            {
                return (_version, _length, _pending.Count + _pingsInFlight, _backlog.Count);
            }
        }
    }
}
