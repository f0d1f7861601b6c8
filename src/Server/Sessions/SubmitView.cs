namespace Collab.Server.Sessions;

/// <summary>
/// A <c>ClientMessage</c> holding a <c>Submit</c>, read in place from the received bytes: the fields the submit path
/// needs, with no ClientMessage, Submit, ByteString or doc id string made for them (~200 B per op; docs/PERFORMANCE.md,
/// "Submit path allocations"). Only the plain shape is taken: request_id and submit, the submit's four fields, well-formed
/// varints and lengths; anything else (another body, an unknown or repeated submessage field, a malformed length)
/// returns false and the message goes through the generated parser, which decides what it means exactly as before.
/// A repeated scalar field keeps its last value, as protobuf does.
/// </summary>
internal ref struct SubmitView
{
    // ClientMessage: request_id = 1 (varint), submit = 13 (length-delimited). Submit: doc_id = 1, client_seq = 2,
    // base_version = 3, op = 4.
    private const uint RequestIdTag = (1 << 3) | 0;
    private const uint SubmitTag = (13 << 3) | 2;
    private const uint DocIdTag = (1 << 3) | 2;
    private const uint ClientSeqTag = (2 << 3) | 0;
    private const uint BaseVersionTag = (3 << 3) | 0;
    private const uint OpTag = (4 << 3) | 2;

    public ulong RequestId;
    public ReadOnlySpan<byte> DocId;
    public ulong ClientSeq;
    public long BaseVersion;
    public ReadOnlySpan<byte> Op;

    public static bool TryRead(ReadOnlySpan<byte> message, out SubmitView view)
    {
        view = default;
        int at = 0;
        int submitStart = -1;
        int submitLength = 0;
        while (at < message.Length)
        {
            if (!TryReadVarint(message, ref at, out ulong tag))
            {
                return false;
            }

            switch (tag)
            {
                case RequestIdTag:
                    if (!TryReadVarint(message, ref at, out view.RequestId))
                    {
                        return false;
                    }

                    break;
                case SubmitTag:
                    // A second occurrence would be merged into the first by protobuf: leave that to the parser.
                    if (submitStart >= 0 || !TryReadLength(message, ref at, out submitStart, out submitLength))
                    {
                        return false;
                    }

                    break;
                default:
                    return false;
            }
        }

        return submitStart >= 0 && TryReadSubmit(message.Slice(submitStart, submitLength), ref view);
    }

    private static bool TryReadSubmit(ReadOnlySpan<byte> submit, ref SubmitView view)
    {
        int at = 0;
        while (at < submit.Length)
        {
            if (!TryReadVarint(submit, ref at, out ulong tag))
            {
                return false;
            }

            bool ok;
            int start;
            int length;
            switch (tag)
            {
                case DocIdTag:
                    ok = TryReadLength(submit, ref at, out start, out length);
                    view.DocId = ok ? submit.Slice(start, length) : default;
                    break;
                case ClientSeqTag:
                    ok = TryReadVarint(submit, ref at, out view.ClientSeq);
                    break;
                case BaseVersionTag:
                    ok = TryReadVarint(submit, ref at, out ulong baseVersion);
                    view.BaseVersion = (long)baseVersion;
                    break;
                case OpTag:
                    ok = TryReadLength(submit, ref at, out start, out length);
                    view.Op = ok ? submit.Slice(start, length) : default;
                    break;
                default:
                    return false;
            }

            if (!ok)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A length-delimited field's payload: where it starts and how long it is; <paramref name="at"/> moves past it.</summary>
    private static bool TryReadLength(ReadOnlySpan<byte> buffer, ref int at, out int start, out int length)
    {
        start = 0;
        length = 0;
        if (!TryReadVarint(buffer, ref at, out ulong value) || value > (ulong)(buffer.Length - at))
        {
            return false;
        }

        start = at;
        length = (int)value;
        at += length;
        return true;
    }

    private static bool TryReadVarint(ReadOnlySpan<byte> buffer, ref int at, out ulong value)
    {
        value = 0;
        for (int i = 0; i < 10 && at + i < buffer.Length; i++)
        {
            byte b = buffer[at + i];
            if (i == 9 && b > 1)
            {
                return false; // more than 64 bits: left to the parser
            }

            value |= (ulong)(b & 0x7F) << (7 * i);
            if (b < 0x80)
            {
                at += i + 1;
                return true;
            }
        }

        return false;
    }
}
