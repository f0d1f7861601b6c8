using System.Buffers;
using System.Buffers.Binary;
using System.Net.WebSockets;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;

namespace Collab.Client.Transport;

/// <summary>RFC 6455 section 5.2 opcodes.</summary>
internal enum FrameOpcode : byte
{
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

/// <summary>What <see cref="ClientFraming.TryParseHeader(in ReadOnlySequence{byte}, out ServerFrameHeader)"/> found.</summary>
internal enum HeaderParse
{
    /// <summary>More bytes are needed to read the header.</summary>
    Incomplete,

    /// <summary>A valid server frame header.</summary>
    Valid,

    /// <summary>RSV bits set: no extension was negotiated (5.2).</summary>
    ReservedBits,

    /// <summary>A masked frame: a client MUST close on one (5.1).</summary>
    Masked,

    /// <summary>A reserved opcode (5.2).</summary>
    ReservedOpcode,

    /// <summary>A fragmented or longer than 125 bytes control frame (5.5).</summary>
    BadControlFrame,

    /// <summary>A 64-bit length with its most significant bit set (5.2).</summary>
    BadLength,
}

/// <summary>A parsed server frame header (unmasked, as RFC 6455 section 5.1 requires of a server).</summary>
internal readonly record struct ServerFrameHeader(bool Fin, FrameOpcode Opcode, long PayloadLength, int HeaderLength)
{
    public bool IsControl => ((byte)Opcode & 0x8) != 0;
}

/// <summary>
/// The client side of RFC 6455 framing as pure functions over spans: parse a server frame header, write a masked
/// client frame header, mask a payload, read a close payload. The server's framing (src/Server/Transport) does the
/// mirror image; the SDK does not reference the server, so the few lines both need are written twice.
/// </summary>
internal static class ClientFraming
{
    /// <summary>The longest server header: 2 bytes + 8-byte length (servers do not mask).</summary>
    public const int MaxServerHeaderLength = 10;

    /// <summary>The longest client header: 2 bytes + 8-byte length + 4-byte masking key.</summary>
    public const int MaxClientHeaderLength = 14;

    public const int MaxControlPayload = 125;

    /// <summary>A close reason fits in a control frame after the 2-byte code.</summary>
    public const int MaxCloseReasonBytes = MaxControlPayload - 2;

    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Parses and checks a server frame header at the start of <paramref name="source"/>.</summary>
    public static HeaderParse TryParseHeader(ReadOnlySpan<byte> source, out ServerFrameHeader header)
    {
        header = default;
        if (source.Length < 2)
        {
            return HeaderParse.Incomplete;
        }

        byte b0 = source[0];
        byte b1 = source[1];
        // Fail on what is wrong as soon as the first two bytes show it, before waiting for a length that may never come.
        if ((b0 & 0x70) != 0)
        {
            return HeaderParse.ReservedBits;
        }

        if ((b1 & 0x80) != 0)
        {
            return HeaderParse.Masked;
        }

        var opcode = (FrameOpcode)(b0 & 0x0F);
        bool fin = (b0 & 0x80) != 0;
        int length7 = b1 & 0x7F;
        switch (opcode)
        {
            case FrameOpcode.Continuation or FrameOpcode.Text or FrameOpcode.Binary:
                break;
            case FrameOpcode.Close or FrameOpcode.Ping or FrameOpcode.Pong:
                if (!fin || length7 > MaxControlPayload)
                {
                    return HeaderParse.BadControlFrame;
                }

                break;
            default:
                return HeaderParse.ReservedOpcode;
        }

        int headerLength = length7 switch { 126 => 4, 127 => 10, _ => 2 };
        if (source.Length < headerLength)
        {
            return HeaderParse.Incomplete;
        }

        long payloadLength;
        switch (length7)
        {
            case 126:
                payloadLength = BinaryPrimitives.ReadUInt16BigEndian(source[2..]);
                break;
            case 127:
                ulong length64 = BinaryPrimitives.ReadUInt64BigEndian(source[2..]);
                if (length64 > long.MaxValue)
                {
                    return HeaderParse.BadLength;
                }

                payloadLength = (long)length64;
                break;
            default:
                payloadLength = length7;
                break;
        }

        header = new ServerFrameHeader(fin, opcode, payloadLength, headerLength);
        return HeaderParse.Valid;
    }

    /// <summary>Parses a header from a pipe buffer: from its first span when it holds the header (nearly always), else from a copy.</summary>
    public static HeaderParse TryParseHeader(in ReadOnlySequence<byte> source, out ServerFrameHeader header)
    {
        ReadOnlySpan<byte> first = source.FirstSpan;
        if (first.Length >= MaxServerHeaderLength || source.IsSingleSegment)
        {
            return TryParseHeader(first, out header);
        }

        Span<byte> scratch = stackalloc byte[MaxServerHeaderLength];
        int available = (int)Math.Min(source.Length, MaxServerHeaderLength);
        source.Slice(0, available).CopyTo(scratch);
        return TryParseHeader(scratch[..available], out header);
    }

    /// <summary>Length of a masked client header for <paramref name="payloadLength"/> bytes.</summary>
    public static int ClientHeaderLength(long payloadLength) => payloadLength switch
    {
        <= 125 => 6,
        <= ushort.MaxValue => 8,
        _ => 14,
    };

    /// <summary>
    /// Writes a final, masked client frame header with a fresh masking key from a cryptographically secure generator
    /// (5.3: the key must be unpredictable, so a hostile page cannot steer the bytes an intermediary sees).
    /// Returns the header length and the key, read little-endian for <see cref="Mask"/>.
    /// </summary>
    public static int WriteClientHeader(Span<byte> destination, FrameOpcode opcode, long payloadLength, out uint maskKey)
    {
        int headerLength = ClientHeaderLength(payloadLength);
        destination[0] = (byte)(0x80 | (byte)opcode);
        switch (headerLength)
        {
            case 6:
                destination[1] = (byte)(0x80 | payloadLength);
                break;
            case 8:
                destination[1] = 0x80 | 126;
                BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)payloadLength);
                break;
            default:
                destination[1] = 0x80 | 127;
                BinaryPrimitives.WriteUInt64BigEndian(destination[2..], (ulong)payloadLength);
                break;
        }

        Span<byte> key = destination.Slice(headerLength - 4, 4);
        RandomNumberGenerator.Fill(key);
        maskKey = BinaryPrimitives.ReadUInt32LittleEndian(key);
        return headerLength;
    }

    /// <summary>
    /// Writes <paramref name="source"/> XOR the masking key into <paramref name="destination"/>, where the source
    /// starts at byte <paramref name="offset"/> of the frame's payload (5.3: byte i uses key byte i mod 4).
    /// </summary>
    public static void Mask(ReadOnlySpan<byte> source, Span<byte> destination, uint maskKey, long offset)
    {
        // Key byte k sits in bits 8k..8k+7; starting at payload byte `offset` rotates the pattern by offset mod 4.
        uint key = BitOperations.RotateRight(maskKey, (int)(offset & 3) * 8);
        destination = destination[..source.Length];
        int i = 0;
        if (Vector.IsHardwareAccelerated && source.Length >= Vector<byte>.Count)
        {
            // A vector is a whole number of 4-byte keys, so one broadcast key masks every vector.
            Vector<byte> keys = Vector.AsVectorByte(new Vector<uint>(key));
            for (; i <= source.Length - Vector<byte>.Count; i += Vector<byte>.Count)
            {
                (new Vector<byte>(source[i..]) ^ keys).CopyTo(destination[i..]);
            }
        }

        for (; i < source.Length; i++)
        {
            destination[i] = (byte)(source[i] ^ (byte)(key >> ((i & 3) * 8)));
        }
    }

    /// <summary>Writes a close payload (code + UTF-8 reason); returns its length. <see cref="WebSocketCloseStatus.Empty"/> writes none.</summary>
    public static int WriteClosePayload(Span<byte> destination, WebSocketCloseStatus status, string? reason)
    {
        if (status == WebSocketCloseStatus.Empty)
        {
            return 0;
        }

        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)status);
        return 2 + (string.IsNullOrEmpty(reason) ? 0 : Encoding.UTF8.GetBytes(reason, destination[2..]));
    }

    /// <summary>
    /// Reads a close payload (5.5.1, 7.4): none (status <see cref="WebSocketCloseStatus.Empty"/>, as 1005 means), or a
    /// code allowed on the wire and a UTF-8 reason. Returns the code to fail the connection with when it is neither:
    /// 1002 for a 1-byte payload or a code that may not be sent, 1007 for a reason that is not UTF-8 (8.1).
    /// </summary>
    public static WebSocketCloseStatus? ReadClosePayload(in ReadOnlySequence<byte> payload, out WebSocketCloseStatus status, out string reason)
    {
        status = WebSocketCloseStatus.Empty;
        reason = string.Empty;
        if (payload.IsEmpty)
        {
            return null;
        }

        Span<byte> bytes = stackalloc byte[MaxControlPayload];
        int length = (int)payload.Length;
        if (length < 2 || length > MaxControlPayload)
        {
            return WebSocketCloseStatus.ProtocolError;
        }

        payload.CopyTo(bytes);
        ushort code = BinaryPrimitives.ReadUInt16BigEndian(bytes);
        if (!IsValidCloseCode(code))
        {
            return WebSocketCloseStatus.ProtocolError;
        }

        try
        {
            reason = s_strictUtf8.GetString(bytes[2..length]);
        }
        catch (DecoderFallbackException)
        {
            return WebSocketCloseStatus.InvalidPayloadData;
        }

        status = (WebSocketCloseStatus)code;
        return null;
    }

    /// <summary>
    /// Whether a code may appear in a close frame (7.4): 1004-1006 and 1015 are for local use only, 0-999 and
    /// 1016-2999 are unassigned or reserved, 3000-4999 belong to libraries and applications.
    /// </summary>
    public static bool IsValidCloseCode(int code) =>
        code is >= 1000 and <= 1014 and not (1004 or 1005 or 1006) || code is >= 3000 and <= 4999;
}
