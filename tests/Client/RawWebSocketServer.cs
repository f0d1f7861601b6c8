using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Threading.Channels;
using Collab.Client.Transport;

namespace Collab.Client.Tests;

/// <summary>
/// A scripted WebSocket server over a raw loopback socket: the test reads the client's upgrade request, answers it
/// with whatever bytes it likes, writes frames bit by bit (fragments, pings, RSV bits, masks) and reads the client's
/// frames, checking that each is masked. For the client transports' protocol and failure tests.
/// </summary>
internal sealed class RawWebSocketServer : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Channel<RawServerConnection> _accepted = Channel.CreateUnbounded<RawServerConnection>();
    private readonly X509Certificate2? _certificate;
    private readonly Task _acceptLoop;

    public RawWebSocketServer(X509Certificate2? certificate = null)
    {
        _certificate = certificate;
        _listener.Start();
        _acceptLoop = AcceptLoopAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public Uri Uri => new($"{(_certificate is null ? "ws" : "wss")}://127.0.0.1:{Port}/ws");

    /// <summary>The next connection, with its upgrade request read.</summary>
    public async Task<RawServerConnection> AcceptAsync()
    {
        using var cts = new CancellationTokenSource(Timeout);
        return await _accepted.Reader.ReadAsync(cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        await _acceptLoop;
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(async () =>
            {
                try
                {
                    Stream stream = new NetworkStream(socket, ownsSocket: true);
                    if (_certificate is not null)
                    {
                        var tls = new SslStream(stream);
                        await tls.AuthenticateAsServerAsync(_certificate);
                        stream = tls;
                    }

                    (string requestLine, Dictionary<string, string> headers) = await ReadRequestHeadAsync(stream);
                    _accepted.Writer.TryWrite(new RawServerConnection(socket, stream, requestLine, headers));
                }
                catch (Exception ex) when (ex is IOException or SocketException or System.Security.Authentication.AuthenticationException)
                {
                    socket.Dispose();
                }
            });
        }
    }

    /// <summary>Reads an HTTP request head (request line and headers, up to the blank line) byte by byte, so nothing after it is consumed.</summary>
    public static async Task<(string RequestLine, Dictionary<string, string> Headers)> ReadRequestHeadAsync(Stream stream)
    {
        using var cts = new CancellationTokenSource(Timeout);
        var head = new List<byte>();
        byte[] one = new byte[1];
        while (head.Count < 4 || !(head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n'))
        {
            if (await stream.ReadAsync(one, cts.Token) == 0)
            {
                throw new IOException("The client closed the connection before its request ended.");
            }

            head.Add(one[0]);
        }

        string[] lines = Encoding.ASCII.GetString([.. head]).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (string line in lines.Skip(1))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }

        return (lines[0], headers);
    }

    /// <summary>The 101 answer to a request with <paramref name="headers"/>, selecting <paramref name="subProtocol"/> (null: none).</summary>
    public static string SwitchingProtocols(Dictionary<string, string> headers, string? subProtocol) =>
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + $"Sec-WebSocket-Accept: {WebSocketUpgrade.ExpectedAccept(headers["Sec-WebSocket-Key"])}\r\n"
        + (subProtocol is null ? string.Empty : $"Sec-WebSocket-Protocol: {subProtocol}\r\n")
        + "\r\n";
}

/// <summary>One accepted connection of a <see cref="RawWebSocketServer"/>.</summary>
internal sealed class RawServerConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly Stream _stream;

    public RawServerConnection(Socket socket, Stream stream, string requestLine, Dictionary<string, string> headers)
    {
        _socket = socket;
        _stream = stream;
        RequestLine = requestLine;
        Headers = headers;
    }

    public string RequestLine { get; }

    public Dictionary<string, string> Headers { get; }

    /// <summary>The masking key of the last frame <see cref="ReadFrameAsync"/> read.</summary>
    public byte[] LastMaskKey { get; private set; } = [];

    /// <summary>Answers the upgrade with a valid 101 selecting <c>collab.v1</c>.</summary>
    public Task AcceptAsync(string? subProtocol = "collab.v1") => WriteAsync(RawWebSocketServer.SwitchingProtocols(Headers, subProtocol));

    public Task WriteAsync(string text) => WriteAsync(Encoding.ASCII.GetBytes(text));

    public async Task WriteAsync(byte[] bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    /// <summary>A server frame: unmasked unless <paramref name="mask"/>, with RSV bits <paramref name="rsv"/> (0-7).</summary>
    public static byte[] Frame(int opcode, ReadOnlySpan<byte> payload, bool fin = true, int rsv = 0, bool mask = false)
    {
        var frame = new List<byte> { (byte)((fin ? 0x80 : 0) | (rsv << 4) | opcode) };
        byte maskBit = mask ? (byte)0x80 : (byte)0;
        if (payload.Length <= 125)
        {
            frame.Add((byte)(maskBit | payload.Length));
        }
        else if (payload.Length <= ushort.MaxValue)
        {
            frame.Add((byte)(maskBit | 126));
            frame.Add((byte)(payload.Length >> 8));
            frame.Add((byte)payload.Length);
        }
        else
        {
            frame.Add((byte)(maskBit | 127));
            byte[] length = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(length, (ulong)payload.Length);
            frame.AddRange(length);
        }

        byte[] key = mask ? RandomNumberGenerator.GetBytes(4) : [0, 0, 0, 0];
        if (mask)
        {
            frame.AddRange(key);
        }

        for (int i = 0; i < payload.Length; i++)
        {
            frame.Add((byte)(payload[i] ^ key[i & 3]));
        }

        return [.. frame];
    }

    public static byte[] ClosePayload(int code, string reason = "")
    {
        byte[] text = Encoding.UTF8.GetBytes(reason);
        byte[] payload = new byte[2 + text.Length];
        BinaryPrimitives.WriteUInt16BigEndian(payload, (ushort)code);
        text.CopyTo(payload, 2);
        return payload;
    }

    /// <summary>Reads one client frame, asserting it is masked (RFC 6455 5.1), and returns it unmasked.</summary>
    public async Task<(bool Fin, int Opcode, byte[] Payload)> ReadFrameAsync()
    {
        using var cts = new CancellationTokenSource(RawWebSocketServer.Timeout);
        byte[] head = await ReadExactlyAsync(2, cts.Token);
        Assert.True((head[1] & 0x80) != 0, "a client frame must be masked");
        Assert.Equal(0, head[0] & 0x70);
        long length = head[1] & 0x7F;
        if (length == 126)
        {
            length = BinaryPrimitives.ReadUInt16BigEndian(await ReadExactlyAsync(2, cts.Token));
        }
        else if (length == 127)
        {
            length = (long)BinaryPrimitives.ReadUInt64BigEndian(await ReadExactlyAsync(8, cts.Token));
        }

        byte[] key = await ReadExactlyAsync(4, cts.Token);
        LastMaskKey = key;
        byte[] payload = await ReadExactlyAsync((int)length, cts.Token);
        for (int i = 0; i < payload.Length; i++)
        {
            payload[i] ^= key[i & 3];
        }

        return ((head[0] & 0x80) != 0, head[0] & 0x0F, payload);
    }

    /// <summary>Bytes the client sent between the last read and the end of the connection (see <see cref="ClientClosedConnectionAsync"/>).</summary>
    public int TrailingBytes { get; private set; }

    /// <summary>True when the client closed the TCP connection (read returns 0 or the connection resets) within the timeout.</summary>
    public async Task<bool> ClientClosedConnectionAsync()
    {
        using var cts = new CancellationTokenSource(RawWebSocketServer.Timeout);
        byte[] buffer = new byte[4096];
        try
        {
            int read;
            while ((read = await _stream.ReadAsync(buffer, cts.Token)) > 0)
            {
                TrailingBytes += read;
            }

            return true;
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Closes the TCP connection (FIN).</summary>
    public void CloseSocket() => _socket.Shutdown(SocketShutdown.Both);

    private async Task<byte[]> ReadExactlyAsync(int count, CancellationToken cancellationToken)
    {
        byte[] bytes = new byte[count];
        await _stream.ReadExactlyAsync(bytes, cancellationToken);
        return bytes;
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _socket.Dispose();
    }
}
