using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Collab.Protocol.V1;

namespace Collab.Server.Transport;

/// <summary>RFC 6455 section 5.2 opcodes.</summary>
public enum WebSocketOpcode : byte
{
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

/// <summary>
/// Close status codes the transport sends (RFC 6455 section 7.4.1), as ushort constants for frame code. The values
/// come from the protocol's one definition, <see cref="CloseCode"/> in collab.proto.
/// </summary>
public static class WebSocketCloseCodes
{
    public const ushort NormalClosure = (ushort)CloseCode.NormalClosure;
    public const ushort GoingAway = (ushort)CloseCode.GoingAway;
    public const ushort ProtocolError = (ushort)CloseCode.ProtocolError;
    public const ushort UnsupportedData = (ushort)CloseCode.UnsupportedData;
    public const ushort InvalidPayload = (ushort)CloseCode.InvalidPayload;
    public const ushort PolicyViolation = (ushort)CloseCode.PolicyViolation;
    public const ushort MessageTooBig = (ushort)CloseCode.MessageTooBig;
    public const ushort InternalError = (ushort)CloseCode.InternalError;
    public const ushort TryAgainLater = (ushort)CloseCode.TryAgainLater;

    /// <summary>
    /// Whether a code may appear in a Close frame on the wire. 1004-1006 and 1015 are reserved for
    /// local use, 0-999 and 1016-2999 are unassigned or reserved for the RFC, 3000-4999 belong to
    /// libraries and applications.
    /// </summary>
    public static bool IsValidOnWire(ushort code) =>
        code is >= 1000 and <= 1014 and not (1004 or 1005 or 1006) || code is >= 3000 and <= 4999;
}

/// <summary>A parsed frame header (RFC 6455 section 5.2).</summary>
internal readonly struct FrameHeader
{
    public FrameHeader(bool fin, byte reservedBits, WebSocketOpcode opcode, bool masked, ulong payloadLength, uint maskKey, int headerLength)
    {
        Fin = fin;
        ReservedBits = reservedBits;
        Opcode = opcode;
        Masked = masked;
        PayloadLength = payloadLength;
        MaskKey = maskKey;
        HeaderLength = headerLength;
    }

    public bool Fin { get; }

    /// <summary>RSV1-3 as the low three bits; non-zero without a negotiated extension is a protocol error.</summary>
    public byte ReservedBits { get; }

    public WebSocketOpcode Opcode { get; }

    public bool Masked { get; }

    public ulong PayloadLength { get; }

    /// <summary>The masking key as the four wire bytes read little-endian, ready for <see cref="WebSocketMask"/>.</summary>
    public uint MaskKey { get; }

    public int HeaderLength { get; }

    public bool IsControl => ((byte)Opcode & 0x8) != 0;
}

/// <summary>Frame header parsing and encoding. Pure functions over spans so they are testable and benchmarkable alone.</summary>
internal static class WebSocketFrame
{
    /// <summary>The longest possible header: 2 bytes + 8-byte length + 4-byte mask.</summary>
    public const int MaxHeaderLength = 14;

    /// <summary>The longest server (unmasked) header: 2 bytes + 8-byte length.</summary>
    public const int MaxServerHeaderLength = 10;

    public const int MaxControlPayload = 125;

    /// <summary>
    /// Parses a header from the start of <paramref name="source"/>. Returns false when more bytes are
    /// needed. Performs no validation beyond what is needed to find the header's end; see <see cref="Validate"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryParseHeader(ReadOnlySpan<byte> source, out FrameHeader header)
    {
        if (source.Length < 2)
        {
            header = default;
            return false;
        }

        byte b0 = source[0];
        byte b1 = source[1];
        bool masked = (b1 & 0x80) != 0;
        int length7 = b1 & 0x7F;
        int lengthBytes = length7 switch { 126 => 2, 127 => 8, _ => 0 };
        int headerLength = 2 + lengthBytes + (masked ? 4 : 0);
        if (source.Length < headerLength)
        {
            header = default;
            return false;
        }

        ulong payloadLength = lengthBytes switch
        {
            0 => (ulong)length7,
            2 => BinaryPrimitives.ReadUInt16BigEndian(source.Slice(2)),
            _ => BinaryPrimitives.ReadUInt64BigEndian(source.Slice(2)),
        };
        uint mask = masked ? BinaryPrimitives.ReadUInt32LittleEndian(source.Slice(2 + lengthBytes)) : 0;
        header = new FrameHeader((b0 & 0x80) != 0, (byte)((b0 >> 4) & 0x7), (WebSocketOpcode)(b0 & 0xF), masked, payloadLength, mask, headerLength);
        return true;
    }

    /// <summary>Parses a header that may straddle segments of a pipe buffer.</summary>
    public static bool TryParseHeader(in ReadOnlySequence<byte> source, out FrameHeader header)
    {
        ReadOnlySpan<byte> first = source.FirstSpan;
        if (first.Length >= MaxHeaderLength || source.IsSingleSegment)
        {
            return TryParseHeader(first, out header);
        }

        // Rare: the header crosses a segment boundary. Copy at most 14 bytes to the stack.
        Span<byte> scratch = stackalloc byte[MaxHeaderLength];
        int available = (int)Math.Min(source.Length, MaxHeaderLength);
        source.Slice(0, available).CopyTo(scratch);
        return TryParseHeader(scratch.Slice(0, available), out header);
    }

    /// <summary>
    /// Checks a client frame header against RFC 6455 section 5. Returns 0 when valid, otherwise the
    /// close code the connection must fail with. Fragmentation state is checked by the caller.
    /// </summary>
    public static ushort Validate(in FrameHeader header, long maxMessageBytes)
    {
        if (header.ReservedBits != 0)
        {
            return WebSocketCloseCodes.ProtocolError; // no extension negotiated (5.2)
        }

        switch (header.Opcode)
        {
            case WebSocketOpcode.Continuation:
            case WebSocketOpcode.Text:
            case WebSocketOpcode.Binary:
                break;
            case WebSocketOpcode.Close:
            case WebSocketOpcode.Ping:
            case WebSocketOpcode.Pong:
                if (!header.Fin || header.PayloadLength > MaxControlPayload)
                {
                    return WebSocketCloseCodes.ProtocolError; // 5.5: control frames are short and never fragmented
                }

                break;
            default:
                return WebSocketCloseCodes.ProtocolError; // reserved opcode
        }

        if (!header.Masked)
        {
            return WebSocketCloseCodes.ProtocolError; // 5.1: a server MUST close on an unmasked client frame
        }

        if ((header.PayloadLength & (1UL << 63)) != 0)
        {
            return WebSocketCloseCodes.ProtocolError; // 5.2: the most significant bit of a 64-bit length MUST be 0
        }

        if (header.PayloadLength > (ulong)maxMessageBytes)
        {
            return WebSocketCloseCodes.MessageTooBig;
        }

        return 0;
    }

    /// <summary>Length of an unmasked server header for a payload of <paramref name="payloadLength"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ServerHeaderLength(long payloadLength) => payloadLength switch
    {
        <= 125 => 2,
        <= ushort.MaxValue => 4,
        _ => 10,
    };

    /// <summary>Writes an unmasked, final server frame header; returns the bytes written.</summary>
    public static int WriteServerHeader(Span<byte> destination, WebSocketOpcode opcode, long payloadLength)
    {
        destination[0] = (byte)(0x80 | (byte)opcode);
        if (payloadLength <= 125)
        {
            destination[1] = (byte)payloadLength;
            return 2;
        }

        if (payloadLength <= ushort.MaxValue)
        {
            destination[1] = 126;
            BinaryPrimitives.WriteUInt16BigEndian(destination.Slice(2), (ushort)payloadLength);
            return 4;
        }

        destination[1] = 127;
        BinaryPrimitives.WriteUInt64BigEndian(destination.Slice(2), (ulong)payloadLength);
        return 10;
    }
}
