using System.Diagnostics.CodeAnalysis;
using System.Numerics;

namespace Collab.LoadTest.Client;

/// <summary>A server message that does not follow the protobuf wire format or the collab.v1 schema.</summary>
internal sealed class WireFormatException(string message) : Exception(message);

/// <summary>Protobuf wire types (the low three bits of a field tag).</summary>
internal enum WireType
{
    Varint = 0,
    Fixed64 = 1,
    LengthDelimited = 2,
    Fixed32 = 5,
}

/// <summary>
/// A forward-only protobuf reader over a span. The generator decodes the two hot server messages (Ops and Ack)
/// with it instead of the generated classes: no objects, no strings, client ids compared as UTF-8 bytes.
/// </summary>
internal ref struct ProtoReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _position;

    public ProtoReader(ReadOnlySpan<byte> data)
    {
        _data = data;
        _position = 0;
    }

    /// <summary>Reads the next field tag; false at the end of the data.</summary>
    public bool TryReadTag(out int field, out WireType wireType)
    {
        if (_position >= _data.Length)
        {
            field = 0;
            wireType = default;
            return false;
        }

        ulong tag = ReadVarint();
        field = (int)(tag >> 3);
        wireType = (WireType)(int)(tag & 7);
        if (field == 0 || tag > int.MaxValue)
        {
            Throw("invalid field tag");
        }

        return true;
    }

    public ulong ReadVarint()
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (_position >= _data.Length)
            {
                Throw("truncated varint");
            }

            byte b = _data[_position++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return result;
            }
        }

        Throw("varint longer than ten bytes");
        return 0;
    }

    public ReadOnlySpan<byte> ReadLengthDelimited()
    {
        ulong length = ReadVarint();
        if (length > (ulong)(_data.Length - _position))
        {
            Throw("length-delimited field runs past the end");
        }

        ReadOnlySpan<byte> value = _data.Slice(_position, (int)length);
        _position += (int)length;
        return value;
    }

    /// <summary>Skips a field of an unknown number (forward compatibility: newer servers add fields).</summary>
    public void Skip(WireType wireType)
    {
        switch (wireType)
        {
            case WireType.Varint:
                ReadVarint();
                break;
            case WireType.Fixed64:
                Advance(8);
                break;
            case WireType.LengthDelimited:
                ReadLengthDelimited();
                break;
            case WireType.Fixed32:
                Advance(4);
                break;
            default:
                Throw($"unsupported wire type {(int)wireType}");
                break;
        }
    }

    private void Advance(int count)
    {
        if (_data.Length - _position < count)
        {
            Throw("truncated fixed-width field");
        }

        _position += count;
    }

    [DoesNotReturn]
    public static void Throw(string message) => throw new WireFormatException(message);
}

/// <summary>Which body a ServerMessage carries (the collab.v1 oneof field numbers).</summary>
internal enum ServerBody
{
    None = 0,
    Welcome = 10,
    Snapshot = 11,
    Ops = 12,
    Ack = 13,
    Presence = 14,
    Error = 15,
    Redirect = 16,
    Pong = 17,
    Subscribed = 18,
    Unsubscribed = 19,
    AuthExpiring = 20,
}

/// <summary>An Ack body, decoded without allocating.</summary>
internal ref struct AckView
{
    public ReadOnlySpan<byte> DocId;
    public ulong ClientSeq;
    public long Version;
    public bool Duplicate;
}

/// <summary>One SequencedOp of an Ops body, decoded without allocating.</summary>
internal ref struct SequencedOpView
{
    public long Version;
    public ReadOnlySpan<byte> ClientId;
    public ulong ClientSeq;
    public ReadOnlySpan<byte> Op;
}

/// <summary>Decoders and encoders for the collab.v1 messages on the generator's hot path.</summary>
internal static class CollabWire
{
    /// <summary>Finds the body of a ServerMessage: its kind and bytes. Unknown bodies are reported as <see cref="ServerBody.None"/>.</summary>
    public static ServerBody ReadEnvelope(ReadOnlySpan<byte> message, out ReadOnlySpan<byte> body)
    {
        var reader = new ProtoReader(message);
        ServerBody kind = ServerBody.None;
        body = default;
        while (reader.TryReadTag(out int field, out WireType wireType))
        {
            if (field is >= 10 and <= 20 && wireType == WireType.LengthDelimited)
            {
                body = reader.ReadLengthDelimited();
                kind = (ServerBody)field;
            }
            else
            {
                reader.Skip(wireType);
            }
        }

        return kind;
    }

    public static AckView ReadAck(ReadOnlySpan<byte> body)
    {
        var reader = new ProtoReader(body);
        var ack = default(AckView);
        while (reader.TryReadTag(out int field, out WireType wireType))
        {
            switch (field)
            {
                case 1 when wireType == WireType.LengthDelimited:
                    ack.DocId = reader.ReadLengthDelimited();
                    break;
                case 2 when wireType == WireType.Varint:
                    ack.ClientSeq = reader.ReadVarint();
                    break;
                case 3 when wireType == WireType.Varint:
                    ack.Version = (long)reader.ReadVarint();
                    break;
                case 4 when wireType == WireType.Varint:
                    ack.Duplicate = reader.ReadVarint() != 0;
                    break;
                default:
                    reader.Skip(wireType);
                    break;
            }
        }

        return ack;
    }

    /// <summary>Reads the doc id of an Ops body; the ops themselves are read one by one as <see cref="SequencedOpView"/>.</summary>
    public static ReadOnlySpan<byte> ReadOpsDocId(ReadOnlySpan<byte> body)
    {
        var reader = new ProtoReader(body);
        while (reader.TryReadTag(out int field, out WireType wireType))
        {
            if (field == 1 && wireType == WireType.LengthDelimited)
            {
                return reader.ReadLengthDelimited();
            }

            reader.Skip(wireType);
        }

        return default;
    }

    public static SequencedOpView ReadSequencedOp(ReadOnlySpan<byte> data)
    {
        var reader = new ProtoReader(data);
        var op = default(SequencedOpView);
        while (reader.TryReadTag(out int field, out WireType wireType))
        {
            switch (field)
            {
                case 1 when wireType == WireType.Varint:
                    op.Version = (long)reader.ReadVarint();
                    break;
                case 2 when wireType == WireType.LengthDelimited:
                    op.ClientId = reader.ReadLengthDelimited();
                    break;
                case 3 when wireType == WireType.Varint:
                    op.ClientSeq = reader.ReadVarint();
                    break;
                case 4 when wireType == WireType.LengthDelimited:
                    op.Op = reader.ReadLengthDelimited();
                    break;
                default:
                    reader.Skip(wireType);
                    break;
            }
        }

        return op;
    }

    /// <summary>
    /// Size of a ClientMessage{submit: Submit{doc_id, client_seq, base_version, op}} whose op is an insert of
    /// <paramref name="tokenLength"/> ASCII characters at <paramref name="position"/>.
    /// </summary>
    public static int SubmitInsertLength(int docIdLength, ulong clientSeq, long baseVersion, int position, int tokenLength) =>
        SubmitLength(docIdLength, clientSeq, baseVersion, InsertOpLength(position, tokenLength));

    /// <summary>
    /// Writes the ClientMessage measured by <see cref="SubmitInsertLength"/>, byte for byte what Google.Protobuf
    /// writes for it (fields in number order, proto3 defaults omitted); returns the bytes written.
    /// </summary>
    public static int WriteSubmitInsert(Span<byte> destination, ReadOnlySpan<byte> docId, ulong clientSeq, long baseVersion, int position, ReadOnlySpan<byte> token)
    {
        int p = WriteSubmitHeader(destination, docId, clientSeq, baseVersion, InsertOpLength(position, token.Length));
        return p + WriteInsertOp(destination[p..], position, token);
    }

    /// <summary>Size of a ClientMessage{submit: Submit{doc_id, client_seq, base_version, op}} carrying <paramref name="opLength"/> bytes of op.</summary>
    public static int SubmitLength(int docIdLength, ulong clientSeq, long baseVersion, int opLength)
    {
        int submit = SubmitBodyLength(docIdLength, clientSeq, baseVersion, opLength);
        return 1 + VarintLength((ulong)submit) + submit;
    }

    /// <summary>Writes that ClientMessage with <paramref name="op"/> already encoded (any OT type), as Google.Protobuf would; returns the bytes written.</summary>
    public static int WriteSubmit(Span<byte> destination, ReadOnlySpan<byte> docId, ulong clientSeq, long baseVersion, ReadOnlySpan<byte> op)
    {
        int p = WriteSubmitHeader(destination, docId, clientSeq, baseVersion, op.Length);
        op.CopyTo(destination[p..]);
        return p + op.Length;
    }

    private static int SubmitBodyLength(int docIdLength, ulong clientSeq, long baseVersion, int opLength) =>
        1 + VarintLength((ulong)docIdLength) + docIdLength
        + 1 + VarintLength(clientSeq)
        + (baseVersion == 0 ? 0 : 1 + VarintLength((ulong)baseVersion))
        + 1 + VarintLength((ulong)opLength) + opLength;

    /// <summary>Everything of the Submit message up to the op's bytes (ending with the op field's length).</summary>
    private static int WriteSubmitHeader(Span<byte> destination, ReadOnlySpan<byte> docId, ulong clientSeq, long baseVersion, int opLength)
    {
        int submit = SubmitBodyLength(docId.Length, clientSeq, baseVersion, opLength);
        int p = 0;
        destination[p++] = (13 << 3) | 2; // ClientMessage.submit
        p += WriteVarint(destination[p..], (ulong)submit);
        destination[p++] = (1 << 3) | 2; // Submit.doc_id
        p += WriteVarint(destination[p..], (ulong)docId.Length);
        docId.CopyTo(destination[p..]);
        p += docId.Length;
        destination[p++] = 2 << 3; // Submit.client_seq
        p += WriteVarint(destination[p..], clientSeq);
        if (baseVersion != 0)
        {
            destination[p++] = 3 << 3; // Submit.base_version
            p += WriteVarint(destination[p..], (ulong)baseVersion);
        }

        destination[p++] = (4 << 3) | 2; // Submit.op
        p += WriteVarint(destination[p..], (ulong)opLength);
        return p;
    }

    /// <summary>Encoded size of the TextOp "insert <paramref name="tokenLength"/> ASCII characters at <paramref name="position"/>" (docs/OT.md).</summary>
    public static int InsertOpLength(int position, int tokenLength) =>
        (position > 0 ? VarintLength((ulong)position << 2) : 0) + VarintLength(((ulong)tokenLength << 2) | 1) + tokenLength;

    /// <summary>Writes that op in the TextOp binary encoding: [retain position] insert token (no trailing retain).</summary>
    public static int WriteInsertOp(Span<byte> destination, int position, ReadOnlySpan<byte> token)
    {
        int p = 0;
        if (position > 0)
        {
            p += WriteVarint(destination, (ulong)position << 2);
        }

        p += WriteVarint(destination[p..], ((ulong)token.Length << 2) | 1);
        token.CopyTo(destination[p..]);
        return p + token.Length;
    }

    /// <summary>
    /// How much an encoded TextOp changes a document's length, in code points: inserts add the code points of
    /// their UTF-8 text, deletes remove their count, retains change nothing. Throws on a malformed op.
    /// </summary>
    public static long LengthDelta(ReadOnlySpan<byte> op)
    {
        long delta = 0;
        int position = 0;
        while (position < op.Length)
        {
            // The op encoding is a sequence of varint tags, not protobuf fields: read them with a local cursor.
            ulong tag = ReadRawVarint(op, ref position);
            ulong length = tag >> 2;
            switch ((int)(tag & 3))
            {
                case 0:
                    break;
                case 1:
                    if (length > (ulong)(op.Length - position))
                    {
                        ProtoReader.Throw("insert text runs past the end of the op");
                    }

                    delta += CountCodePoints(op.Slice(position, (int)length));
                    position += (int)length;
                    break;
                case 2:
                    delta -= (long)length;
                    break;
                default:
                    ProtoReader.Throw("reserved op component kind 3");
                    break;
            }
        }

        return delta;
    }

    /// <summary>Code points in valid UTF-8: every byte that is not a continuation byte (10xxxxxx) starts one.</summary>
    public static int CountCodePoints(ReadOnlySpan<byte> utf8)
    {
        int continuation = 0;
        foreach (byte b in utf8)
        {
            if ((b & 0xC0) == 0x80)
            {
                continuation++;
            }
        }

        return utf8.Length - continuation;
    }

    public static int VarintLength(ulong value) => value == 0 ? 1 : ((BitOperations.Log2(value) / 7) + 1);

    public static int WriteVarint(Span<byte> destination, ulong value)
    {
        int p = 0;
        while (value >= 0x80)
        {
            destination[p++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[p++] = (byte)value;
        return p;
    }

    private static ulong ReadRawVarint(ReadOnlySpan<byte> data, ref int position)
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (position >= data.Length)
            {
                ProtoReader.Throw("truncated varint in op");
            }

            byte b = data[position++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return result;
            }
        }

        ProtoReader.Throw("varint longer than ten bytes in op");
        return 0;
    }
}
