using System.Buffers;
using System.Text;
using Collab.Engine.Sequencing;
using Collab.Protocol.V1;
using Collab.Server.Transport;
using Google.Protobuf;

namespace Collab.Server.Sessions;

/// <summary>
/// Builds server-to-client frames: every ServerMessage is serialized straight into a pooled
/// <see cref="OutboundMessage"/> (no intermediate byte[]), framed once, and may then be queued on
/// any number of connections. Op bytes are wrapped, not copied: they are the sequencer's immutable encoding.
/// </summary>
internal static class ServerFrames
{
    // ServerMessage's body tags (field << 3 | length-delimited): ops = 12, ack = 13.
    private const byte OpsTag = (12 << 3) | 2;
    private const byte AckTag = (13 << 3) | 2;

    public static OutboundMessage Build(ServerMessage message)
    {
        OutboundMessage frame = OutboundMessage.CreateBinary(message.CalculateSize());
        message.WriteTo((IBufferWriter<byte>)frame);
        frame.Complete();
        return frame;
    }

    public static SequencedOp ToWire(in OpRecord record) => new()
    {
        Version = record.Version,
        ClientId = record.ClientId ?? string.Empty,
        ClientSeq = (ulong)record.ClientSeq,
        Op = UnsafeByteOperations.UnsafeWrap(record.Op),
        TimestampMs = record.TimestampMs,
        Author = record.Author ?? string.Empty,
    };

    /// <summary>
    /// An <c>Ops</c> frame, written straight from the records: the bytes Google.Protobuf writes for the same
    /// <see cref="ServerMessage"/> (fields in number order, defaults left out; ServerFramesTests compares the two), without
    /// the message objects it needs for them (a ServerMessage, an Ops, its list and a SequencedOp per op: ~300 B per
    /// broadcast; docs/PERFORMANCE.md, "Submit path allocations").
    /// </summary>
    public static OutboundMessage Ops(string docId, ReadOnlySpan<OpRecord> records, ulong requestId = 0)
    {
        int body = StringFieldSize(docId);
        foreach (ref readonly OpRecord record in records)
        {
            body += LengthDelimitedSize(SequencedOpSize(record));
        }

        int size = EnvelopeSize(requestId, body);
        OutboundMessage frame = OutboundMessage.CreateBinary(size);
        Span<byte> span = frame.GetSpan(size);
        int at = WriteEnvelope(span, requestId, OpsTag, body);
        at += WriteString(span[at..], 1, docId);
        foreach (ref readonly OpRecord record in records)
        {
            at += WriteSequencedOp(span[at..], record);
        }

        frame.Advance(at);
        frame.Complete();
        return frame;
    }

    /// <summary>An <c>Ack</c> frame, written directly as <see cref="Ops"/> is (the bytes Google.Protobuf writes for it).</summary>
    public static OutboundMessage Ack(string docId, long clientSeq, long version, bool duplicate, ulong requestId = 0)
    {
        int body = StringFieldSize(docId) + VarintFieldSize((ulong)clientSeq) + VarintFieldSize((ulong)version) + (duplicate ? 2 : 0);
        int size = EnvelopeSize(requestId, body);
        OutboundMessage frame = OutboundMessage.CreateBinary(size);
        Span<byte> span = frame.GetSpan(size);
        int at = WriteEnvelope(span, requestId, AckTag, body);
        at += WriteString(span[at..], 1, docId);
        at += WriteVarintField(span[at..], 2, (ulong)clientSeq);
        at += WriteVarintField(span[at..], 3, (ulong)version);
        if (duplicate)
        {
            span[at++] = 4 << 3;
            span[at++] = 1;
        }

        frame.Advance(at);
        frame.Complete();
        return frame;
    }

    private static int SequencedOpSize(in OpRecord record) =>
        VarintFieldSize((ulong)record.Version) + StringFieldSize(record.ClientId) + VarintFieldSize((ulong)record.ClientSeq)
        + (record.Op.IsEmpty ? 0 : LengthDelimitedSize(record.Op.Length)) + VarintFieldSize((ulong)record.TimestampMs) + StringFieldSize(record.Author);

    private static int WriteSequencedOp(Span<byte> span, in OpRecord record)
    {
        span[0] = (2 << 3) | 2;
        int at = 1 + WriteVarint(span[1..], (uint)SequencedOpSize(record));
        at += WriteVarintField(span[at..], 1, (ulong)record.Version);
        at += WriteString(span[at..], 2, record.ClientId);
        at += WriteVarintField(span[at..], 3, (ulong)record.ClientSeq);
        if (!record.Op.IsEmpty)
        {
            span[at++] = (4 << 3) | 2;
            at += WriteVarint(span[at..], (uint)record.Op.Length);
            record.Op.Span.CopyTo(span[at..]);
            at += record.Op.Length;
        }

        at += WriteVarintField(span[at..], 5, (ulong)record.TimestampMs);
        at += WriteString(span[at..], 6, record.Author);
        return at;
    }

    private static int EnvelopeSize(ulong requestId, int body) => VarintFieldSize(requestId) + LengthDelimitedSize(body);

    private static int WriteEnvelope(Span<byte> span, ulong requestId, byte bodyTag, int body)
    {
        int at = WriteVarintField(span, 1, requestId);
        span[at++] = bodyTag;
        return at + WriteVarint(span[at..], (uint)body);
    }

    /// <summary>Tag, length and payload of a length-delimited field (single-byte tags: fields 1-15).</summary>
    private static int LengthDelimitedSize(int length) => 1 + CodedOutputStream.ComputeLengthSize(length) + length;

    private static int StringFieldSize(string? value) => string.IsNullOrEmpty(value) ? 0 : LengthDelimitedSize(Encoding.UTF8.GetByteCount(value));

    private static int VarintFieldSize(ulong value) => value == 0 ? 0 : 1 + CodedOutputStream.ComputeRawVarint64Size(value);

    private static int WriteString(Span<byte> span, int field, string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return 0;
        }

        span[0] = (byte)((field << 3) | 2);
        int at = 1 + WriteVarint(span[1..], (uint)Encoding.UTF8.GetByteCount(value));
        return at + Encoding.UTF8.GetBytes(value, span[at..]);
    }

    private static int WriteVarintField(Span<byte> span, int field, ulong value)
    {
        if (value == 0)
        {
            return 0;
        }

        span[0] = (byte)(field << 3);
        return 1 + WriteVarint(span[1..], value);
    }

    private static int WriteVarint(Span<byte> span, ulong value)
    {
        int at = 0;
        while (value >= 0x80)
        {
            span[at++] = (byte)(value | 0x80);
            value >>= 7;
        }

        span[at++] = (byte)value;
        return at;
    }

    public static OutboundMessage Snapshot(Snapshot snapshot, ulong requestId) =>
        Build(new ServerMessage { RequestId = requestId, Snapshot = snapshot });

    public static OutboundMessage Subscribed(string docId, long fromVersion, long currentVersion, string type, ulong requestId) =>
        Build(new ServerMessage
        {
            RequestId = requestId,
            Subscribed = new Subscribed { DocId = docId, FromVersion = fromVersion, CurrentVersion = currentVersion, Type = type },
        });

    public static OutboundMessage Unsubscribed(string docId, ulong requestId) =>
        Build(new ServerMessage { RequestId = requestId, Unsubscribed = new Unsubscribed { DocId = docId } });

    public static OutboundMessage Error(ErrorCode code, string message, ulong requestId, string? docId = null, long clientSeq = 0) =>
        Build(new ServerMessage
        {
            RequestId = requestId,
            Error = new Error
            {
                Code = code,
                Message = message,
                Retryable = ErrorCodes.IsRetryable(code),
                DocId = docId ?? string.Empty,
                ClientSeq = (ulong)clientSeq,
            },
        });

    public static OutboundMessage Presence(string docId, string clientId, long version, Selection? selection, ByteString userData) =>
        Build(new ServerMessage
        {
            Presence = new Presence { DocId = docId, ClientId = clientId, Version = version, Selection = selection, UserData = userData },
        });
}
