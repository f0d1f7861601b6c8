using System.Buffers;
using System.Buffers.Text;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;

namespace Collab.Server.Transport;

/// <summary>Minimal HTTP/1.1 response writing for the raw WebSocket path (101 and its errors) and the management port.</summary>
internal static class HttpResponseWriter
{
    private static ReadOnlySpan<byte> WebSocketGuid => "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"u8;

    private static ReadOnlySpan<byte> SwitchingProtocolsHead => "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "u8;

    private static ReadOnlySpan<byte> SubProtocolHeader => "\r\nSec-WebSocket-Protocol: "u8;

    /// <summary>Writes the 101 response into the pipe.</summary>
    public static void WriteSwitchingProtocols(PipeWriter output, string key, string? subProtocol)
    {
        int length = SwitchingProtocolsLength(subProtocol);
        output.Advance(FormatSwitchingProtocols(output.GetSpan(length), key, subProtocol));
    }

    /// <summary>The length of the 101 response (the sub-protocol is ASCII: a validated token).</summary>
    public static int SwitchingProtocolsLength(string? subProtocol) =>
        SwitchingProtocolsHead.Length + 28 + (subProtocol is null ? 0 : SubProtocolHeader.Length + subProtocol.Length) + 4;

    /// <summary>
    /// Formats the 101 response into <paramref name="destination"/> (at least <see cref="SwitchingProtocolsLength"/>
    /// bytes) and returns its length; the accept key is computed on the stack.
    /// </summary>
    public static int FormatSwitchingProtocols(Span<byte> destination, string key, string? subProtocol)
    {
        int written = SwitchingProtocolsHead.Length;
        SwitchingProtocolsHead.CopyTo(destination);
        AcceptKey(key, destination.Slice(written, 28));
        written += 28;
        if (subProtocol is not null)
        {
            SubProtocolHeader.CopyTo(destination.Slice(written));
            written += SubProtocolHeader.Length;
            written += Encoding.ASCII.GetBytes(subProtocol, destination.Slice(written));
        }

        "\r\n\r\n"u8.CopyTo(destination.Slice(written));
        return written + 4;
    }

    /// <summary>The Sec-WebSocket-Accept value for a validated key (the HTTP pipeline's upgrade path).</summary>
    public static string ComputeAcceptKey(string key)
    {
        Span<byte> accept = stackalloc byte[28];
        AcceptKey(key, accept);
        return Encoding.ASCII.GetString(accept);
    }

    /// <summary>RFC 6455 section 4.2.2: base64(SHA-1(key + GUID)). The key was validated as 24 base64 characters.</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5350", Justification = "RFC 6455 defines Sec-WebSocket-Accept as SHA-1; it proves the server read the key, it protects nothing.")]
    private static void AcceptKey(string key, Span<byte> accept)
    {
        Span<byte> concatenated = stackalloc byte[24 + 36];
        Encoding.ASCII.GetBytes(key, concatenated);
        WebSocketGuid.CopyTo(concatenated.Slice(24));
        Span<byte> hash = stackalloc byte[20];
        SHA1.HashData(concatenated, hash);
        Base64.EncodeToUtf8(hash, accept, out _, out _);
    }

    /// <summary>Writes a complete response with a body and Content-Length.</summary>
    public static void WriteResponse(
        PipeWriter output,
        int statusCode,
        string contentType,
        ReadOnlySpan<byte> body,
        bool keepAlive,
        bool omitBody = false,
        string? extraHeaders = null)
    {
        var builder = new Builder(output);
        builder.AppendAscii(FormatHead(statusCode, contentType, body.Length, keepAlive, extraHeaders));
        builder.Commit();
        if (!omitBody && !body.IsEmpty)
        {
            output.Write(body);
        }
    }

    /// <summary>
    /// The status line and headers of a response with a Content-Length body, through the blank line. Shared with the
    /// management listener, which writes to a plain socket.
    /// </summary>
    public static string FormatHead(int statusCode, string contentType, int contentLength, bool keepAlive, string? extraHeaders = null)
    {
        var head = new StringBuilder(160);
        head.Append("HTTP/1.1 ").Append(statusCode).Append(' ').Append(ReasonPhrase(statusCode)).Append("\r\n");
        head.Append("Content-Type: ").Append(contentType).Append("\r\n");
        head.Append("Content-Length: ").Append(contentLength).Append("\r\n");
        head.Append("Cache-Control: no-store\r\n");
        head.Append(keepAlive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
        if (extraHeaders is not null)
        {
            head.Append(extraHeaders);
        }

        return head.Append("\r\n").ToString();
    }

    /// <summary>A text/plain error (connection closed after it).</summary>
    public static void WriteError(PipeWriter output, int statusCode, string message, string? extraHeaders = null) =>
        WriteResponse(output, statusCode, "text/plain; charset=utf-8", Encoding.UTF8.GetBytes(message + "\n"), keepAlive: false, extraHeaders: extraHeaders);

    public static string ReasonPhrase(int statusCode) => statusCode switch
    {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };

    /// <summary>Appends into one span of the pipe (response heads are small) and advances once.</summary>
    private ref struct Builder
    {
        private readonly PipeWriter _output;
        private Span<byte> _span;
        private int _written;

        public Builder(PipeWriter output)
        {
            _output = output;
            _span = output.GetSpan(512);
            _written = 0;
        }

        public void Append(scoped ReadOnlySpan<byte> bytes)
        {
            Ensure(bytes.Length);
            bytes.CopyTo(_span.Slice(_written));
            _written += bytes.Length;
        }

        public void AppendAscii(string text)
        {
            Ensure(text.Length);
            _written += Encoding.ASCII.GetBytes(text, _span.Slice(_written));
        }

        public void Commit()
        {
            _output.Advance(_written);
            _written = 0;
        }

        private void Ensure(int count)
        {
            if (_span.Length - _written < count)
            {
                _output.Advance(_written);
                _written = 0;
                _span = _output.GetSpan(count);
            }
        }
    }
}
