using System.Diagnostics.CodeAnalysis;

namespace Collab.Engine.Client;

/// <summary>An op the client must send: a submission with this client seq, made against <see cref="BaseVersion"/>.</summary>
public readonly record struct OutgoingOp<TOp>(long ClientSeq, long BaseVersion, TOp Op)
    where TOp : notnull;

/// <summary>
/// The client side of the OT protocol, without I/O (ot.js / ShareDB style): the local document, the server version it
/// reflects, at most one op in flight and the later local edits composed into one buffered op. Every client SDK wraps
/// one instance per open document and feeds it local edits, acknowledgements and the server's op stream.
/// </summary>
/// <remarks>
/// <para>
/// Convergence: the server transforms a submitted op with <see cref="TransformSide.Left"/> against each op sequenced after
/// its base. Here each incoming server op S is transformed past the inflight op I and then the buffer B with
/// <see cref="TransformSide.Right"/> while I and B are transformed past S with <see cref="TransformSide.Left"/>:
/// I' = T(I, S, Left) is exactly what the server computes for I, so the local document equals the server's once
/// everything is acknowledged.
/// </para>
/// <para>
/// Protocol (what the SDK does): after <see cref="ApplyLocal"/>, <see cref="OnAck"/>, <see cref="OnRemoteOp"/> and
/// <see cref="OnReconnect"/>, call <see cref="TryTakeOutgoing"/> and send what it returns. Server ops must arrive in
/// version order without gaps (a gap throws <see cref="InvalidOperationException"/>: resync with <see cref="Reset"/>).
/// After a reconnect, first apply the ops after <see cref="Version"/> (the server's catch-up), then resend: the catch-up
/// may contain the inflight op itself, which <see cref="OnRemoteOp"/> recognizes by (client id, client seq) and treats as
/// its acknowledgement; otherwise the resend (same client seq) is applied or deduplicated by the server. Not thread-safe.
/// </para>
/// </remarks>
public sealed class OtClientState<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    private readonly IOtType<TSnapshot, TOp> _type;
    private readonly RecentOp[] _recent;
    private int _recentCount;
    private int _recentNext;

    private bool _hasInflight;
    private TOp _inflight = default!;
    private long _inflightSeq;
    private bool _inflightSent;
    private bool _hasBuffer;
    private TOp _buffer = default!;

    /// <param name="type">The document's OT type.</param>
    /// <param name="clientId">Unique among clients and stable for this state's lifetime (across reconnects): the server's dedupe key.</param>
    /// <param name="snapshot">The document at <paramref name="version"/>.</param>
    /// <param name="version">The server version of <paramref name="snapshot"/>.</param>
    /// <param name="firstClientSeq">Seq of the first op sent (positive).</param>
    /// <param name="presenceHistory">Recent server ops kept to move remote cursors made at slightly older versions.</param>
    public OtClientState(IOtType<TSnapshot, TOp> type, string clientId, TSnapshot snapshot, long version, long firstClientSeq = 1, int presenceHistory = 64)
    {
        ArgumentNullException.ThrowIfNull(type);
        ArgumentException.ThrowIfNullOrEmpty(clientId);
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentOutOfRangeException.ThrowIfNegative(version);
        ArgumentOutOfRangeException.ThrowIfLessThan(firstClientSeq, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(presenceHistory);
        _type = type;
        ClientId = clientId;
        Snapshot = snapshot;
        Version = version;
        NextClientSeq = firstClientSeq;
        _recent = new RecentOp[presenceHistory];
    }

    /// <summary>The client id this state submits under (the server issued it in its Welcome).</summary>
    public string ClientId { get; }

    /// <summary>The local document: the server's at <see cref="Version"/> plus the inflight and buffered ops.</summary>
    public TSnapshot Snapshot { get; private set; }

    /// <summary>The last server version applied (remote op or acknowledgement).</summary>
    public long Version { get; private set; }

    /// <summary>The seq the next op put in flight will get.</summary>
    public long NextClientSeq { get; private set; }

    /// <summary>An op is in flight (sent or waiting to be sent) and not yet acknowledged.</summary>
    public bool HasInflight => _hasInflight;

    /// <summary>Local edits made while an op was in flight, waiting to be sent after its acknowledgement.</summary>
    public bool HasBuffer => _hasBuffer;

    /// <summary>Local edits the server has not acknowledged yet.</summary>
    public bool HasPending => _hasInflight;

    /// <summary>The inflight op's client seq (0 when none).</summary>
    public long InflightSeq => _hasInflight ? _inflightSeq : 0;

    /// <summary>
    /// Applies a local edit (validated against the local document; throws <see cref="OtException"/> if it does not fit).
    /// Returns true when it became the inflight op and <see cref="TryTakeOutgoing"/> now has something to send; false when
    /// it was buffered behind the inflight op (or changes nothing).
    /// </summary>
    public bool ApplyLocal(TOp op)
    {
        if (_type.IsNoop(op))
        {
            return false;
        }

        _type.Validate(op, Snapshot);
        Snapshot = _type.Apply(Snapshot, op);
        if (!_hasInflight)
        {
            SetInflight(op);
            return true;
        }

        _buffer = _hasBuffer ? _type.Compose(_buffer, op) : op;
        _hasBuffer = true;
        return false;
    }

    /// <summary>The inflight op, if it has not been sent on the current connection yet (marks it sent).</summary>
    public bool TryTakeOutgoing(out OutgoingOp<TOp> outgoing)
    {
        if (_hasInflight && !_inflightSent)
        {
            _inflightSent = true;

            // The inflight op is kept transformed past every server op received since it was made, so it always applies
            // to the current Version: a resend after reconnect goes with the current version as base.
            outgoing = new OutgoingOp<TOp>(_inflightSeq, Version, _inflight);
            return true;
        }

        outgoing = default;
        return false;
    }

    /// <summary>
    /// The server acknowledged the inflight op at <paramref name="version"/> (Acked or Duplicate). The buffered edits
    /// become the new inflight op. Returns false, changing nothing, for an acknowledgement already seen in the op stream
    /// (<paramref name="version"/> at or below <see cref="Version"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">Nothing is in flight, or server ops before <paramref name="version"/> are missing: resync.</exception>
    public bool OnAck(long version)
    {
        if (version <= Version)
        {
            return false;
        }

        if (!_hasInflight)
        {
            ThrowProtocol($"acknowledgement of version {version} with no op in flight");
        }

        if (version != Version + 1)
        {
            ThrowProtocol($"acknowledgement of version {version} while at version {Version}: ops in between are missing");
        }

        Remember(_inflight, ClientId);
        Version = version;
        _hasInflight = false;
        _inflight = default!;
        if (_hasBuffer)
        {
            TOp buffered = _buffer;
            _hasBuffer = false;
            _buffer = default!;
            SetInflight(buffered);
        }

        return true;
    }

    /// <summary>
    /// A server op at <paramref name="version"/> by (<paramref name="clientId"/>, <paramref name="clientSeq"/>). When it
    /// is this client's inflight op it counts as the acknowledgement (returns false). Otherwise it is transformed past the
    /// local pending edits and applied; <paramref name="localOp"/> is what the local view (editor) must apply, and the
    /// method returns true. Ops already applied (version at or below <see cref="Version"/>, e.g. catch-up overlapping the
    /// live stream) are ignored (false).
    /// </summary>
    /// <exception cref="InvalidOperationException">A version gap, or an op of this client id that is not its inflight op: resync.</exception>
    public bool OnRemoteOp(long version, TOp op, string? clientId, long clientSeq, [MaybeNullWhen(false)] out TOp localOp)
    {
        localOp = default;
        if (version <= Version)
        {
            return false;
        }

        if (version != Version + 1)
        {
            ThrowProtocol($"op of version {version} while at version {Version}: ops in between are missing");
        }

        if (string.Equals(clientId, ClientId, StringComparison.Ordinal))
        {
            if (!_hasInflight || clientSeq != _inflightSeq)
            {
                ThrowProtocol($"op {clientSeq} of this client id at version {version} is not the op in flight ({InflightSeq}); is the client id shared?");
            }

            OnAck(version);
            return false;
        }

        Remember(op, clientId);
        TOp incoming = op;
        if (_hasInflight)
        {
            TOp inflight = _type.Transform(_inflight, incoming, TransformSide.Left);
            incoming = _type.Transform(incoming, _inflight, TransformSide.Right);
            _inflight = inflight;
        }

        if (_hasBuffer)
        {
            TOp buffer = _type.Transform(_buffer, incoming, TransformSide.Left);
            incoming = _type.Transform(incoming, _buffer, TransformSide.Right);
            _buffer = buffer;
        }

        Snapshot = _type.Apply(Snapshot, incoming);
        Version = version;
        localOp = incoming;
        return true;
    }

    /// <summary>
    /// The connection was replaced (or the server answered the inflight op with a retryable status): the inflight op must
    /// be sent again, with the same client seq, so the server deduplicates it if the first send was sequenced.
    /// </summary>
    public void OnReconnect() => _inflightSent = false;

    /// <summary>
    /// Resynchronizes after an unrecoverable rejection or a gap: adopts the server's document and drops the local edits
    /// that were not acknowledged (the caller has them in <see cref="Snapshot"/> before the call if it wants to redo them).
    /// Client seqs keep increasing so a late duplicate of a dropped op can never be mistaken for a new one.
    /// </summary>
    public void Reset(TSnapshot snapshot, long version)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentOutOfRangeException.ThrowIfNegative(version);
        Snapshot = snapshot;
        Version = version;
        _hasInflight = false;
        _inflight = default!;
        _inflightSent = false;
        _hasBuffer = false;
        _buffer = default!;
        Array.Clear(_recent);
        _recentCount = 0;
        _recentNext = 0;
    }

    /// <summary>
    /// Moves another client's cursor, made against server version <paramref name="version"/>, into the local document:
    /// through the server ops after that version (ops by <paramref name="ownerClientId"/> count as the cursor owner's own),
    /// then through this client's pending edits. False when the version is newer than <see cref="Version"/> (keep it until
    /// the ops arrive) or older than the remembered ops.
    /// </summary>
    public bool TryTransformRemoteCursor(long version, int cursor, string? ownerClientId, out int localCursor)
    {
        localCursor = cursor;
        if (version > Version || Version - version > _recentCount)
        {
            return false;
        }

        for (long v = version + 1; v <= Version; v++)
        {
            ref readonly RecentOp recent = ref _recent[(int)((_recentNext - (Version - v) - 1 + _recent.Length) % _recent.Length)];
            bool own = ownerClientId is not null && string.Equals(recent.ClientId, ownerClientId, StringComparison.Ordinal);
            localCursor = _type.TransformCursor(localCursor, recent.Op, own);
        }

        if (_hasInflight)
        {
            localCursor = _type.TransformCursor(localCursor, _inflight, isOwnOp: false);
        }

        if (_hasBuffer)
        {
            localCursor = _type.TransformCursor(localCursor, _buffer, isOwnOp: false);
        }

        return true;
    }

    /// <summary>
    /// This client's cursor in server terms, to publish as presence. Only possible when nothing is pending (the local
    /// document then equals the server's at <see cref="Version"/>); otherwise false: publish after the acknowledgement.
    /// </summary>
    public bool TryGetServerCursor(int localCursor, out long version, out int cursor)
    {
        version = Version;
        cursor = localCursor;
        return !_hasInflight;
    }

    private void SetInflight(TOp op)
    {
        _inflight = op;
        _inflightSeq = NextClientSeq++;
        _inflightSent = false;
        _hasInflight = true;
    }

    private void Remember(TOp op, string? clientId)
    {
        if (_recent.Length == 0)
        {
            return;
        }

        _recent[_recentNext] = new RecentOp(op, clientId);
        _recentNext = (_recentNext + 1) % _recent.Length;
        _recentCount = Math.Min(_recentCount + 1, _recent.Length);
    }

    [DoesNotReturn]
    private static void ThrowProtocol(string message) => throw new InvalidOperationException($"OT protocol violation: {message}.");

    private readonly record struct RecentOp(TOp Op, string? ClientId);
}
