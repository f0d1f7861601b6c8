using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Collab.LoadTest.Client;

/// <summary>RFC 6455 opcodes.</summary>
internal enum WsOpcode : byte
{
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

/// <summary>The header of one server-to-client frame.</summary>
internal readonly record struct ServerFrameHeader(bool Fin, WsOpcode Opcode, int HeaderLength, int PayloadLength)
{
    /// <summary>Header plus payload.</summary>
    public int FrameLength => HeaderLength + PayloadLength;
}

/// <summary>The server broke RFC 6455 (or the upgrade failed); the connection cannot continue.</summary>
internal sealed class WebSocketProtocolException(string message) : Exception(message);

/// <summary>
/// Client side of RFC 6455, just what a load generator needs: the upgrade request and its validation, masked
/// client frames written into a caller's span, and unmasked server frames parsed in place. No allocation per frame.
/// </summary>
internal static class WebSocketFraming
{
    /// <summary>Largest client frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask key.</summary>
    public const int MaxClientHeaderLength = 14;

    /// <summary>Frames larger than this are refused (the server announces 1 MiB messages; snapshots of big documents fit).</summary>
    public const int MaxServerPayload = 64 * 1024 * 1024;

    private const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    /// <summary>Length of a client frame header for a payload of <paramref name="payloadLength"/> bytes.</summary>
    public static int ClientHeaderLength(int payloadLength) => payloadLength switch
    {
        < 126 => 6,
        <= ushort.MaxValue => 8,
        _ => 14,
    };

    /// <summary>
    /// Writes a final (FIN) client frame header with the mask bit and <paramref name="maskKey"/>; returns its length.
    /// The key's bytes go on the wire in little-endian order, the order <see cref="Mask"/> applies them.
    /// </summary>
    public static int WriteClientHeader(Span<byte> destination, WsOpcode opcode, int payloadLength, uint maskKey)
    {
        destination[0] = (byte)(0x80 | (byte)opcode);
        int position;
        if (payloadLength < 126)
        {
            destination[1] = (byte)(0x80 | payloadLength);
            position = 2;
        }
        else if (payloadLength <= ushort.MaxValue)
        {
            destination[1] = 0x80 | 126;
            BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)payloadLength);
            position = 4;
        }
        else
        {
            destination[1] = 0x80 | 127;
            BinaryPrimitives.WriteUInt64BigEndian(destination[2..], (ulong)payloadLength);
            position = 10;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(destination[position..], maskKey);
        return position + 4;
    }

    /// <summary>XORs <paramref name="payload"/> with the key written by <see cref="WriteClientHeader"/> (RFC 6455 section 5.3).</summary>
    public static void Mask(Span<byte> payload, uint maskKey)
    {
        // Eight bytes at a time: the key repeats every four bytes, so a word starting at a multiple of 8 sees it twice.
        ulong wide = maskKey | ((ulong)maskKey << 32);
        Span<ulong> words = MemoryMarshal.Cast<byte, ulong>(payload);
        if (!BitConverter.IsLittleEndian)
        {
            wide = BinaryPrimitives.ReverseEndianness(wide);
        }

        for (int i = 0; i < words.Length; i++)
        {
            words[i] ^= wide;
        }

        for (int i = words.Length * 8; i < payload.Length; i++)
        {
            payload[i] ^= (byte)(maskKey >> (8 * (i & 3)));
        }
    }

    /// <summary>
    /// Parses the header of the server frame at the start of <paramref name="buffer"/>. False when more bytes are
    /// needed; throws <see cref="WebSocketProtocolException"/> for a frame no server may send (masked, reserved bits,
    /// unknown opcode, fragmented or oversized control frame, or larger than <see cref="MaxServerPayload"/>).
    /// </summary>
    public static bool TryReadServerHeader(ReadOnlySpan<byte> buffer, out ServerFrameHeader header)
    {
        header = default;
        if (buffer.Length < 2)
        {
            return false;
        }

        byte first = buffer[0];
        byte second = buffer[1];
        if ((first & 0x70) != 0)
        {
            Throw("reserved bits set (no extension was negotiated)");
        }

        if ((second & 0x80) != 0)
        {
            Throw("server frames must not be masked");
        }

        var opcode = (WsOpcode)(first & 0x0F);
        bool fin = (first & 0x80) != 0;
        bool control = ((byte)opcode & 0x08) != 0;
        if (opcode is not (WsOpcode.Continuation or WsOpcode.Text or WsOpcode.Binary or WsOpcode.Close or WsOpcode.Ping or WsOpcode.Pong))
        {
            Throw($"unknown opcode {(byte)opcode}");
        }

        int length7 = second & 0x7F;
        if (control && (!fin || length7 > 125))
        {
            Throw("control frames must be final and at most 125 bytes");
        }

        int headerLength;
        ulong payloadLength;
        switch (length7)
        {
            case 126:
                if (buffer.Length < 4)
                {
                    return false;
                }

                payloadLength = BinaryPrimitives.ReadUInt16BigEndian(buffer[2..]);
                headerLength = 4;
                break;
            case 127:
                if (buffer.Length < 10)
                {
                    return false;
                }

                payloadLength = BinaryPrimitives.ReadUInt64BigEndian(buffer[2..]);
                headerLength = 10;
                break;
            default:
                payloadLength = (ulong)length7;
                headerLength = 2;
                break;
        }

        if (payloadLength > MaxServerPayload)
        {
            Throw($"a {payloadLength}-byte frame exceeds the generator's {MaxServerPayload}-byte limit");
        }

        header = new ServerFrameHeader(fin, opcode, headerLength, (int)payloadLength);
        return true;
    }

    /// <summary>A fresh Sec-WebSocket-Key: 16 random bytes in base64.</summary>
    public static string NewKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));

    /// <summary>The Sec-WebSocket-Accept value the server must answer <paramref name="key"/> with.</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5350", Justification = "RFC 6455 defines Sec-WebSocket-Accept as SHA-1; it protects nothing.")]
    public static string ExpectedAccept(string key) =>
        Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + AcceptGuid)));

    /// <summary>The HTTP/1.1 upgrade request for <paramref name="uri"/>, offering <paramref name="subprotocol"/> (none when null).</summary>
    public static byte[] BuildUpgradeRequest(Uri uri, string key, string? subprotocol = "collab.v1")
    {
        string host = uri.IsDefaultPort ? uri.Host : $"{uri.Host}:{uri.Port}";
        string request =
            $"GET {uri.PathAndQuery} HTTP/1.1\r\n" +
            $"Host: {host}\r\n" +
            "Upgrade: websocket\r\n" +
            "Connection: Upgrade\r\n" +
            $"Sec-WebSocket-Key: {key}\r\n" +
            "Sec-WebSocket-Version: 13\r\n" +
            (subprotocol is null ? string.Empty : $"Sec-WebSocket-Protocol: {subprotocol}\r\n") +
            "\r\n";
        return Encoding.ASCII.GetBytes(request);
    }

    /// <summary>Index just past the blank line that ends the response head, or -1 when it has not arrived yet.</summary>
    public static int FindHeadEnd(ReadOnlySpan<byte> buffer)
    {
        int index = buffer.IndexOf("\r\n\r\n"u8);
        return index < 0 ? -1 : index + 4;
    }

    /// <summary>Checks the server's answer to the upgrade: status 101 and the right Sec-WebSocket-Accept.</summary>
    public static void ValidateUpgradeResponse(ReadOnlySpan<byte> head, string key)
    {
        string text = Encoding.Latin1.GetString(head);
        string[] lines = text.Split("\r\n");
        string[] status = lines[0].Split(' ', 3);
        if (status.Length < 2 || !status[0].StartsWith("HTTP/1.", StringComparison.Ordinal))
        {
            Throw($"not an HTTP response: '{lines[0]}'");
        }

        if (status[1] != "101")
        {
            Throw($"upgrade refused: {lines[0]}");
        }

        string expected = ExpectedAccept(key);
        foreach (string line in lines.AsSpan(1))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && line.AsSpan(0, colon).Trim().Equals("Sec-WebSocket-Accept", StringComparison.OrdinalIgnoreCase))
            {
                if (line.AsSpan(colon + 1).Trim().SequenceEqual(expected))
                {
                    return;
                }

                Throw("wrong Sec-WebSocket-Accept");
            }
        }

        Throw("no Sec-WebSocket-Accept header");
    }

    [DoesNotReturn]
    private static void Throw(string message) => throw new WebSocketProtocolException(message);
}
