using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Collab.Server.Tests.Transport.Infrastructure;

/// <summary>A frame as the raw client received it (server frames are unmasked).</summary>
public readonly record struct RawFrame(bool Fin, byte Reserved, byte Opcode, byte[] Payload)
{
    public ushort CloseCode => Payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(Payload) : (ushort)1005;

    public string CloseReason => Payload.Length > 2 ? Encoding.UTF8.GetString(Payload, 2, Payload.Length - 2) : "";

    public string Text => Encoding.UTF8.GetString(Payload);
}

/// <summary>
/// A deliberately minimal WebSocket client over a raw socket, written independently of the server's
/// framing code. It can break every rule (unmasked frames, reserved bits, lying lengths), so tests can
/// provoke each failure mode and read exactly what the server answered.
/// </summary>
public sealed class RawWebSocketClient : IAsyncDisposable
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);
    private readonly Socket _socket;
    private readonly byte[] _buffer;
    private int _start;
    private int _end;

    private RawWebSocketClient(Socket socket, int bufferSize)
    {
        _socket = socket;
        _buffer = new byte[bufferSize];
    }

    /// <summary>The raw HTTP response head of the handshake.</summary>
    public string HandshakeResponse { get; private set; } = "";

    /// <param name="port">Loopback port of the server.</param>
    /// <param name="bufferSize">Receive buffer; small for tests that hold thousands of clients.</param>
    /// <param name="source">Local (loopback) address to connect from, e.g. 127.0.0.2 to appear as a second client address.</param>
    public static async Task<RawWebSocketClient> ConnectTcpAsync(int port, int bufferSize = 64 * 1024, IPAddress? source = null)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (source is not null)
            {
                socket.Bind(new IPEndPoint(source, 0));
            }

            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new RawWebSocketClient(socket, bufferSize);
    }

    /// <summary>Connects and completes a valid handshake; throws unless the server answers 101 with the right accept key.</summary>
    public static async Task<RawWebSocketClient> ConnectAsync(int port, string path = "/ws", string? extraHeaders = null, int bufferSize = 64 * 1024, IPAddress? source = null)
    {
        RawWebSocketClient client = await ConnectTcpAsync(port, bufferSize, source);
        try
        {
            await client.UpgradeAsync(port, path, extraHeaders);
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }

        return client;
    }

    /// <summary>Sends an upgrade request on this (possibly already used, keep-alive) connection; throws unless it gets a valid 101.</summary>
    public async Task UpgradeAsync(int port, string path = "/ws", string? extraHeaders = null)
    {
        string key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        await SendRawAsync(Encoding.ASCII.GetBytes(
            $"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extraHeaders}\r\n"));
        string head = await ReadHttpHeadAsync();
        HandshakeResponse = head;
        if (!head.StartsWith("HTTP/1.1 101 ", StringComparison.Ordinal))
        {
            throw new InvalidOperationException("Handshake failed: " + head);
        }

#pragma warning disable CA5350 // RFC 6455 defines Sec-WebSocket-Accept as SHA-1; it protects nothing.
        string expected = Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
#pragma warning restore CA5350
        if (!head.Contains("Sec-WebSocket-Accept: " + expected + "\r\n", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException("Wrong Sec-WebSocket-Accept: " + head);
        }
    }

    /// <summary>Sends raw bytes and reads one HTTP response (head and Content-Length body).</summary>
    public static async Task<RawHttpResponse> SendHttpAsync(int port, string request)
    {
        await using RawWebSocketClient client = await ConnectTcpAsync(port);
        await client.SendRawAsync(Encoding.ASCII.GetBytes(request));
        return await client.ReadHttpResponseAsync(hasBody: !request.StartsWith("HEAD ", StringComparison.Ordinal));
    }

    public async Task SendRawAsync(ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            int sent = await _socket.SendAsync(bytes, SocketFlags.None);
            bytes = bytes.Slice(sent);
        }
    }

    /// <summary>Encodes a client frame; every field can be made invalid on purpose.</summary>
    public static byte[] EncodeFrame(byte opcode, ReadOnlySpan<byte> payload, bool fin = true, bool mask = true, byte reserved = 0, ulong? declaredLength = null, uint? maskKey = null)
    {
        ulong length = declaredLength ?? (ulong)payload.Length;
        var frame = new byte[14 + payload.Length];
        int i = 0;
        frame[i++] = (byte)((fin ? 0x80 : 0) | (reserved << 4) | opcode);
        byte maskBit = mask ? (byte)0x80 : (byte)0;
        if (length <= 125)
        {
            frame[i++] = (byte)(maskBit | (byte)length);
        }
        else if (length <= ushort.MaxValue)
        {
            frame[i++] = (byte)(maskBit | 126);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(i), (ushort)length);
            i += 2;
        }
        else
        {
            frame[i++] = (byte)(maskBit | 127);
            BinaryPrimitives.WriteUInt64BigEndian(frame.AsSpan(i), length);
            i += 8;
        }

        Span<byte> key = stackalloc byte[4];
        if (maskKey is uint fixedKey)
        {
            BinaryPrimitives.WriteUInt32BigEndian(key, fixedKey);
        }
        else
        {
            RandomNumberGenerator.Fill(key);
        }

        if (mask)
        {
            key.CopyTo(frame.AsSpan(i));
            i += 4;
        }

        for (int j = 0; j < payload.Length; j++)
        {
            frame[i + j] = mask ? (byte)(payload[j] ^ key[j % 4]) : payload[j];
        }

        return frame.AsSpan(0, i + payload.Length).ToArray();
    }

    public Task SendFrameAsync(byte opcode, ReadOnlySpan<byte> payload, bool fin = true, bool mask = true, byte reserved = 0, ulong? declaredLength = null) =>
        SendRawAsync(EncodeFrame(opcode, payload, fin, mask, reserved, declaredLength));

    public Task SendTextAsync(string text) => SendFrameAsync(0x1, Encoding.UTF8.GetBytes(text));

    public Task SendBinaryAsync(ReadOnlySpan<byte> payload) => SendFrameAsync(0x2, payload);

    public Task SendCloseAsync(ushort code, string reason = "")
    {
        byte[] payload = new byte[2 + Encoding.UTF8.GetByteCount(reason)];
        BinaryPrimitives.WriteUInt16BigEndian(payload, code);
        Encoding.UTF8.GetBytes(reason, payload.AsSpan(2));
        return SendFrameAsync(0x8, payload);
    }

    /// <summary>Reads the next frame; throws on timeout or if the connection ends first.</summary>
    public async Task<RawFrame> ReceiveFrameAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        await FillAsync(2, cts.Token);
        byte b0 = _buffer[_start];
        byte b1 = _buffer[_start + 1];
        if ((b1 & 0x80) != 0)
        {
            throw new InvalidDataException("The server sent a masked frame.");
        }

        int length7 = b1 & 0x7F;
        int headerLength = length7 == 126 ? 4 : length7 == 127 ? 10 : 2;
        await FillAsync(headerLength, cts.Token);
        long length = length7 switch
        {
            126 => BinaryPrimitives.ReadUInt16BigEndian(_buffer.AsSpan(_start + 2)),
            127 => (long)BinaryPrimitives.ReadUInt64BigEndian(_buffer.AsSpan(_start + 2)),
            _ => length7,
        };
        _start += headerLength;
        var payload = new byte[length];
        int copied = 0;
        while (copied < length)
        {
            await FillAsync(1, cts.Token);
            int n = (int)Math.Min(length - copied, _end - _start);
            _buffer.AsSpan(_start, n).CopyTo(payload.AsSpan(copied));
            _start += n;
            copied += n;
        }

        return new RawFrame((b0 & 0x80) != 0, (byte)((b0 >> 4) & 7), (byte)(b0 & 0xF), payload);
    }

    /// <summary>Skips data frames until a Close frame arrives; returns it.</summary>
    public async Task<RawFrame> ReceiveCloseAsync(TimeSpan? timeout = null)
    {
        while (true)
        {
            RawFrame frame = await ReceiveFrameAsync(timeout);
            if (frame.Opcode == 0x8)
            {
                return frame;
            }
        }
    }

    /// <summary>True when the server closes the TCP connection (EOF or reset) within the timeout.</summary>
    public async Task<bool> WaitForDisconnectAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        byte[] scratch = new byte[4096];
        try
        {
            while (true)
            {
                int n = await _socket.ReceiveAsync(scratch, SocketFlags.None, cts.Token);
                if (n == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async Task<string> ReadHttpHeadAsync()
    {
        using var cts = new CancellationTokenSource(DefaultTimeout);
        while (true)
        {
            int index = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8);
            if (index >= 0)
            {
                string head = Encoding.Latin1.GetString(_buffer, _start, index + 4);
                _start += index + 4;
                return head;
            }

            await FillAsync(_end - _start + 1, cts.Token);
        }
    }

    /// <summary>Reads a response head and, unless it answers a HEAD request, its Content-Length body.</summary>
    public async Task<RawHttpResponse> ReadHttpResponseAsync(bool hasBody = true)
    {
        string head = await ReadHttpHeadAsync();
        int status = int.Parse(head.AsSpan(9, 3), System.Globalization.CultureInfo.InvariantCulture);
        int contentLength = 0;
        foreach (string line in head.Split("\r\n"))
        {
            if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
            {
                contentLength = int.Parse(line.AsSpan(15).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        if (!hasBody)
        {
            contentLength = 0;
        }

        using var cts = new CancellationTokenSource(DefaultTimeout);
        byte[] body = new byte[contentLength];
        int copied = 0;
        while (copied < contentLength)
        {
            await FillAsync(1, cts.Token);
            int n = Math.Min(contentLength - copied, _end - _start);
            _buffer.AsSpan(_start, n).CopyTo(body.AsSpan(copied));
            _start += n;
            copied += n;
        }

        return new RawHttpResponse(status, head, Encoding.UTF8.GetString(body));
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task FillAsync(int needed, CancellationToken cancellationToken)
    {
        while (_end - _start < needed)
        {
            if (_start > 0 && (_end == _buffer.Length || _buffer.Length - _start < needed))
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            int n = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken);
            if (n == 0)
            {
                throw new EndOfStreamException("The server closed the connection.");
            }

            _end += n;
        }
    }
}

public readonly record struct RawHttpResponse(int StatusCode, string Head, string Body)
{
    public bool HasHeader(string headerLine) => Head.Contains("\r\n" + headerLine + "\r\n", StringComparison.OrdinalIgnoreCase);
}
