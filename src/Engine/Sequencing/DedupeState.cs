using System.Buffers;
using System.Text;

namespace Collab.Engine.Sequencing;

/// <summary>What <see cref="DedupeState.Check"/> decided for a submission.</summary>
internal enum DedupeDecision : byte
{
    /// <summary>Not seen before: sequence it.</summary>
    New = 0,

    /// <summary>This client's latest sequenced op has this seq: answer with its version, do not apply again.</summary>
    Duplicate,

    /// <summary>
    /// A seq below the client's latest sequenced one: the op may have been sequenced earlier (a resend of an op whose ack
    /// was lost behind a later one) or never (a pipelined op refused retryably while a later one went through). Only the
    /// history can tell: the sequencer looks the (client id, client seq) up in its window, then in the op log.
    /// </summary>
    Older,

    /// <summary>
    /// Unknown client with a base version below <see cref="DedupeState.Horizon"/>: its op may have been sequenced before
    /// the client was forgotten. The sequencer looks it up in the history as for <see cref="Older"/>.
    /// </summary>
    Expired,
}

/// <summary>
/// Per-document memory of the last op each client had sequenced: (client id → last client seq, its version).
/// It makes a resend after a reconnect idempotent, and it survives reloads: it is stored in
/// <see cref="SnapshotRecord.Meta"/> (<see cref="Encode()"/> / <see cref="Decode"/>) and rebuilt by replaying the ops
/// after the snapshot (<see cref="DocumentState.Load"/>).
/// </summary>
/// <remarks>
/// <para>
/// Only the latest op of each client is remembered: a resend of it is recognised at once, which is the only resend a
/// client that keeps one op in flight (<see cref="Client.OtClientState{TSnapshot, TOp}"/>) can make. A lower seq
/// (<see cref="DedupeDecision.Older"/>: a pipelining client's resend) is looked up in the history by the sequencer. When such
/// an older op is sequenced after a newer one, the newer stays the client's latest.
/// </para>
/// <para>
/// Bounded: a client is forgotten when more than <see cref="SequencerOptions.DedupeMaxClients"/> clients had ops sequenced
/// after its last one, or when its last op is more than <see cref="SequencerOptions.DedupeRetentionVersions"/> versions old.
/// Forgetting raises <see cref="Horizon"/> to the forgotten client's last version. A resent op always has a base version
/// lower than the version it got, so a submission from an unknown client with a base version at or above the horizon cannot
/// be a resend of a forgotten op and is safe; one below the horizon might be (<see cref="DedupeDecision.Expired"/>), and
/// the sequencer looks it up in the history rather than risk applying an op twice.
/// </para>
/// <para>
/// The sequencer tracks both the sequenced and the committed state of each client so <see cref="Encode()"/> describes exactly
/// the committed version even while later ops wait for their commit. Not thread-safe: owned by one sequencer's worker.
/// </para>
/// </remarks>
internal sealed class DedupeState
{
    private const byte FormatVersion = 1;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly Dictionary<string, ClientEntry> _clients;
    private readonly int _maxClients;
    private readonly long _retentionVersions;

    // Least recently sequenced first. Versions are assigned in increasing order, so moving a client to the tail on each
    // op keeps the list sorted by sequenced version and eviction is O(1) per op.
    private ClientEntry? _oldest;
    private ClientEntry? _newest;
    private long _lastVersion;

    /// <summary>An empty state bounded by <paramref name="options"/>.</summary>
    public DedupeState(SequencerOptions options)
        : this(options.DedupeMaxClients, options.DedupeRetentionVersions)
    {
    }

    /// <summary>An empty state that remembers at most <paramref name="maxClients"/> clients, each for <paramref name="retentionVersions"/> versions after its last op.</summary>
    public DedupeState(int maxClients, long retentionVersions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxClients, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(retentionVersions, 1);
        _maxClients = maxClients;
        _retentionVersions = retentionVersions;
        _clients = new Dictionary<string, ClientEntry>(StringComparer.Ordinal);
    }

    /// <summary>Number of clients remembered.</summary>
    public int Count => _clients.Count;

    /// <summary>Highest last version of any forgotten client (0 when none was forgotten); see the remarks.</summary>
    public long Horizon { get; private set; }

    /// <summary>The latest sequenced op of <paramref name="clientId"/>, if the client is remembered.</summary>
    public bool TryGetClient(string clientId, out long clientSeq, out long version)
    {
        if (_clients.TryGetValue(clientId, out ClientEntry? entry))
        {
            clientSeq = entry.Seq;
            version = entry.Version;
            return true;
        }

        clientSeq = 0;
        version = 0;
        return false;
    }

    /// <summary>Decides what to do with a submission; for <see cref="DedupeDecision.Duplicate"/> <paramref name="version"/> is the version the op got.</summary>
    public DedupeDecision Check(string clientId, long clientSeq, long baseVersion, out long version)
    {
        if (_clients.TryGetValue(clientId, out ClientEntry? entry))
        {
            version = entry.Version;
            if (clientSeq == entry.Seq)
            {
                return DedupeDecision.Duplicate;
            }

            return clientSeq < entry.Seq ? DedupeDecision.Older : DedupeDecision.New;
        }

        version = 0;
        return baseVersion < Horizon ? DedupeDecision.Expired : DedupeDecision.New;
    }

    /// <summary>Records a committed op (replaying the op log). <paramref name="version"/> must be higher than every version recorded before.</summary>
    public void Record(string clientId, long clientSeq, long version)
    {
        ClientEntry entry = RecordSequenced(clientId, clientSeq, version);
        MarkCommitted(entry, clientSeq, version);
    }

    /// <summary>Records a sequenced op that is not committed yet; <see cref="MarkCommitted"/> follows once it is.</summary>
    internal ClientEntry RecordSequenced(string clientId, long clientSeq, long version)
    {
        ArgumentException.ThrowIfNullOrEmpty(clientId);
        ArgumentOutOfRangeException.ThrowIfLessThan(clientSeq, 1);
        if (version <= _lastVersion)
        {
            ThrowVersionNotIncreasing(version, _lastVersion);
        }

        _lastVersion = version;
        if (_clients.TryGetValue(clientId, out ClientEntry? entry))
        {
            if (clientSeq < entry.Seq)
            {
                // An older seq sequenced after a newer one (found in no history: it had never been sequenced). The newer
                // stays the latest, so its own resend is still recognised at once; the list stays in version order.
                return entry;
            }

            Unlink(entry);
        }
        else
        {
            entry = new ClientEntry(clientId);
            _clients.Add(clientId, entry);
        }

        entry.Seq = clientSeq;
        entry.Version = version;
        LinkNewest(entry);

        long expiredBelow = version - _retentionVersions;
        while (_oldest is { } oldest && (_clients.Count > _maxClients || oldest.Version < expiredBelow))
        {
            Evict(oldest);
        }

        return entry;
    }

    /// <summary>The op the entry's client had sequenced at <paramref name="version"/> is now committed.</summary>
    internal static void MarkCommitted(ClientEntry entry, long clientSeq, long version)
    {
        // Commits come in version order; an older seq committed after a newer one does not replace it.
        if (clientSeq >= entry.CommittedSeq)
        {
            entry.CommittedSeq = clientSeq;
            entry.CommittedVersion = version;
        }
    }

    /// <summary>Size in bytes of <see cref="Encode(IBufferWriter{byte})"/>'s output.</summary>
    public int GetEncodedLength()
    {
        int length = 1 + VarLength((ulong)Horizon);
        int count = 0;
        foreach (ClientEntry entry in _clients.Values)
        {
            if (entry.CommittedVersion > 0)
            {
                count++;
                int idBytes = Encoding.UTF8.GetByteCount(entry.ClientId);
                length += VarLength((uint)idBytes) + idBytes + VarLength((ulong)entry.CommittedSeq) + VarLength((ulong)entry.CommittedVersion);
            }
        }

        return length + VarLength((uint)count);
    }

    /// <summary>The committed state as bytes for <see cref="SnapshotRecord.Meta"/>.</summary>
    public byte[] Encode()
    {
        var writer = new ArrayBufferWriter<byte>(GetEncodedLength());
        Encode(writer);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Writes the committed state: format byte, horizon, count, then (client id, seq, version) per client in version order,
    /// all integers as LEB128 varints. Clients whose only op is still uncommitted are left out.
    /// </summary>
    public void Encode(IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var committed = new List<ClientEntry>(_clients.Count);
        foreach (ClientEntry entry in _clients.Values)
        {
            if (entry.CommittedVersion > 0)
            {
                committed.Add(entry);
            }
        }

        // Version order lets Decode rebuild the recency list by appending.
        committed.Sort(static (a, b) => a.CommittedVersion.CompareTo(b.CommittedVersion));

        Span<byte> header = output.GetSpan(1);
        header[0] = FormatVersion;
        output.Advance(1);
        VarInt.Write(output, (ulong)Horizon);
        VarInt.Write(output, (ulong)committed.Count);
        foreach (ClientEntry entry in committed)
        {
            int idBytes = Encoding.UTF8.GetByteCount(entry.ClientId);
            VarInt.Write(output, (uint)idBytes);
            Span<byte> span = output.GetSpan(idBytes);
            output.Advance(Encoding.UTF8.GetBytes(entry.ClientId, span));
            VarInt.Write(output, (ulong)entry.CommittedSeq);
            VarInt.Write(output, (ulong)entry.CommittedVersion);
        }
    }

    /// <summary>
    /// Rebuilds a state from <see cref="Encode()"/>'s output (empty input gives an empty state). Throws <see cref="OtException"/>
    /// (<see cref="OtErrorCode.Malformed"/>) on corrupt bytes. If the bytes hold more clients than <paramref name="options"/> allow,
    /// the oldest are forgotten (raising the horizon) as if they had been evicted.
    /// </summary>
    public static DedupeState Decode(ReadOnlySpan<byte> meta, SequencerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var state = new DedupeState(options);
        if (meta.IsEmpty)
        {
            return state;
        }

        if (meta[0] != FormatVersion)
        {
            ThrowMalformed($"unknown format {meta[0]}");
        }

        int offset = 1;
        ulong horizon = ReadVarInt(meta, ref offset);
        ulong count = ReadVarInt(meta, ref offset);

        // Each client takes at least 4 bytes; refusing larger counts up front bounds work on hostile input.
        if (horizon > long.MaxValue || count > (ulong)(meta.Length - offset) / 4)
        {
            ThrowMalformed("header out of range");
        }

        state.Horizon = (long)horizon;
        for (ulong i = 0; i < count; i++)
        {
            ulong idLength = ReadVarInt(meta, ref offset);
            if (idLength == 0 || idLength > (ulong)(meta.Length - offset))
            {
                ThrowMalformed("bad client id length");
            }

            string clientId;
            try
            {
                clientId = StrictUtf8.GetString(meta.Slice(offset, (int)idLength));
            }
            catch (DecoderFallbackException)
            {
                ThrowMalformed("client id is not UTF-8");
                throw;
            }

            offset += (int)idLength;
            ulong seq = ReadVarInt(meta, ref offset);
            ulong version = ReadVarInt(meta, ref offset);
            // Versions strictly increase (the encoder sorts them). They may lie below the horizon: a client can have its
            // committed op at an older version than a client evicted for a newer, still uncommitted one.
            if (seq == 0 || seq > long.MaxValue || version > long.MaxValue || (long)version <= state._lastVersion || state._clients.ContainsKey(clientId))
            {
                ThrowMalformed("bad client entry");
            }

            var entry = new ClientEntry(clientId) { Seq = (long)seq, Version = (long)version, CommittedSeq = (long)seq, CommittedVersion = (long)version };
            state._clients.Add(clientId, entry);
            state.LinkNewest(entry);
            state._lastVersion = (long)version;
            while (state._clients.Count > state._maxClients)
            {
                state.Evict(state._oldest!);
            }
        }

        if (offset != meta.Length)
        {
            ThrowMalformed("trailing bytes");
        }

        return state;
    }

    private void Evict(ClientEntry entry)
    {
        Unlink(entry);
        _clients.Remove(entry.ClientId);
        Horizon = Math.Max(Horizon, entry.Version);
    }

    private void LinkNewest(ClientEntry entry)
    {
        entry.Older = _newest;
        entry.Newer = null;
        if (_newest is null)
        {
            _oldest = entry;
        }
        else
        {
            _newest.Newer = entry;
        }

        _newest = entry;
    }

    private void Unlink(ClientEntry entry)
    {
        if (entry.Older is null)
        {
            _oldest = entry.Newer;
        }
        else
        {
            entry.Older.Newer = entry.Newer;
        }

        if (entry.Newer is null)
        {
            _newest = entry.Older;
        }
        else
        {
            entry.Newer.Older = entry.Older;
        }

        entry.Older = null;
        entry.Newer = null;
    }

    private static ulong ReadVarInt(ReadOnlySpan<byte> input, ref int offset)
    {
        if (!VarInt.TryRead(input, ref offset, out ulong value))
        {
            ThrowMalformed("truncated varint");
        }

        return value;
    }

    private static int VarLength(ulong value)
    {
        int length = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            length++;
        }

        return length;
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowMalformed(string reason) => OtException.Throw(OtErrorCode.Malformed, $"Dedupe metadata is corrupt: {reason}.");

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowVersionNotIncreasing(long version, long last) =>
        throw new ArgumentOutOfRangeException(nameof(version), $"Version {version} is not above the last recorded version {last}.");

    /// <summary>One remembered client; the sequencer keeps a reference so marking it committed needs no lookup.</summary>
    internal sealed class ClientEntry(string clientId)
    {
        public string ClientId { get; } = clientId;

        /// <summary>Latest sequenced seq and version.</summary>
        public long Seq;
        public long Version;

        /// <summary>Latest committed seq and version (0 while the client's first op is uncommitted).</summary>
        public long CommittedSeq;
        public long CommittedVersion;

        public ClientEntry? Older;
        public ClientEntry? Newer;
    }
}
