using System.Buffers;
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

    public static OutboundMessage Ops(string docId, ReadOnlySpan<OpRecord> records, ulong requestId = 0)
    {
        var ops = new Ops { DocId = docId };
        foreach (ref readonly OpRecord record in records)
        {
            ops.Ops_.Add(ToWire(record));
        }

        return Build(new ServerMessage { RequestId = requestId, Ops = ops });
    }

    public static OutboundMessage Ack(string docId, long clientSeq, long version, bool duplicate, ulong requestId = 0) =>
        Build(new ServerMessage
        {
            RequestId = requestId,
            Ack = new Ack { DocId = docId, ClientSeq = (ulong)clientSeq, Version = version, Duplicate = duplicate },
        });

    /// <summary>A snapshot message built by the document's type (<see cref="DocumentKind{TSnapshot, TOp}.ToMessage"/>).</summary>
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
