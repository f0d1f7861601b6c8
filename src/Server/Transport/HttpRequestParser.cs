using System.Buffers;
using System.Text;

namespace Collab.Server.Transport;

/// <summary>The parts of an HTTP/1.1 request head the transport needs (routing, upgrade, probes).</summary>
internal sealed class HttpRequestHead
{
    public string Method { get; set; } = "";

    public string Path { get; set; } = "";

    public string Query { get; set; } = "";

    /// <summary>True for HTTP/1.1, false for HTTP/1.0.</summary>
    public bool IsHttp11 { get; set; }

    public string? Host { get; set; }

    public string? Upgrade { get; set; }

    public string? Connection { get; set; }

    public string? SecWebSocketKey { get; set; }

    public int SecWebSocketKeyCount { get; set; }

    public string? SecWebSocketVersion { get; set; }

    /// <summary>All Sec-WebSocket-Protocol header values joined by commas.</summary>
    public string? SecWebSocketProtocol { get; set; }

    public string? Origin { get; set; }

    public string? Authorization { get; set; }

    /// <summary>All Cookie header values joined by "; " (RFC 6265 section 5.4: one header, but proxies may split it).</summary>
    public string? Cookie { get; set; }

    /// <summary>A Content-Length above zero or any Transfer-Encoding: a body the transport does not accept.</summary>
    public bool HasBody { get; set; }

    public bool IsGet => Method == "GET";

    public bool IsHead => Method == "HEAD";

    /// <summary>HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 closes unless told otherwise.</summary>
    public bool KeepAlive => IsHttp11
        ? !HttpTokens.ContainsToken(Connection, "close")
        : HttpTokens.ContainsToken(Connection, "keep-alive");
}

/// <summary>Where a connection's first request goes (<see cref="HttpRequestParser.Route"/>).</summary>
internal enum RequestRoute
{
    /// <summary>The request line has not fully arrived.</summary>
    NeedMoreData,

    /// <summary>A request for the WebSocket path: served by the raw RFC 6455 transport.</summary>
    WebSocket,

    /// <summary>Anything else (including what does not parse): served by the ASP.NET Core HTTP pipeline.</summary>
    Pipeline,
}

internal enum HttpParseStatus
{
    Incomplete,
    Complete,
    BadRequest,
    HeadersTooLarge,
}

/// <summary>
/// Parses a request head straight from the connection's pipe buffer. Stateless between calls: the
/// caller keeps unconsumed bytes in the pipe (advance to start, examine to end), so a request split
/// across any number of reads - one byte at a time included - parses as soon as its blank line arrives.
/// </summary>
internal static class HttpRequestParser
{
    private static ReadOnlySpan<byte> HeaderTerminator => "\r\n\r\n"u8;

    public static HttpParseStatus TryParse(in ReadOnlySequence<byte> buffer, int maxHeaderBytes, out HttpRequestHead? request, out SequencePosition consumed)
    {
        request = null;
        consumed = buffer.Start;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryReadTo(out ReadOnlySequence<byte> head, HeaderTerminator, advancePastDelimiter: true))
        {
            return buffer.Length > maxHeaderBytes ? HttpParseStatus.HeadersTooLarge : HttpParseStatus.Incomplete;
        }

        if (head.Length + HeaderTerminator.Length > maxHeaderBytes)
        {
            return HttpParseStatus.HeadersTooLarge;
        }

        consumed = reader.Position;
        if (head.IsSingleSegment)
        {
            return Parse(head.FirstSpan, out request);
        }

        byte[] rented = ArrayPool<byte>.Shared.Rent((int)head.Length);
        try
        {
            head.CopyTo(rented);
            return Parse(rented.AsSpan(0, (int)head.Length), out request);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// Decides from the request line alone whether a new connection's first request is for the WebSocket path (its
    /// target's path is exactly <paramref name="webSocketPath"/>, with or without a query). Everything that is not goes
    /// to the HTTP pipeline, which also answers malformed or oversized requests itself.
    /// </summary>
    public static RequestRoute Route(in ReadOnlySequence<byte> buffer, string webSocketPath, int maxHeaderBytes)
    {
        var reader = new SequenceReader<byte>(buffer);
        while (reader.IsNext("\r\n"u8, advancePast: true))
        {
            // RFC 9112 section 2.2: empty lines before the request line are ignored.
        }

        if (!reader.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n', advancePastDelimiter: false))
        {
            return buffer.Length > maxHeaderBytes ? RequestRoute.Pipeline : RequestRoute.NeedMoreData;
        }

        // Only the method and the path matter; a longer line cannot name the WebSocket path anyway.
        int length = (int)Math.Min(line.Length, 16 + webSocketPath.Length + 1);
        Span<byte> start = stackalloc byte[length];
        line.Slice(0, length).CopyTo(start);
        int space = start.IndexOf((byte)' ');
        if (space <= 0)
        {
            return RequestRoute.Pipeline;
        }

        ReadOnlySpan<byte> target = start.Slice(space + 1);
        if (target.Length <= webSocketPath.Length || target[webSocketPath.Length] is not ((byte)' ' or (byte)'?'))
        {
            return RequestRoute.Pipeline;
        }

        for (int i = 0; i < webSocketPath.Length; i++)
        {
            if (target[i] != webSocketPath[i])
            {
                return RequestRoute.Pipeline;
            }
        }

        return RequestRoute.WebSocket;
    }

    /// <summary>Parses a request line and header lines separated by CRLF (the final blank line already removed).</summary>
    internal static HttpParseStatus Parse(ReadOnlySpan<byte> head, out HttpRequestHead? request)
    {
        request = null;

        // RFC 9112 section 2.2: a server SHOULD ignore at least one empty line before the request line.
        while (head.StartsWith("\r\n"u8))
        {
            head = head.Slice(2);
        }

        int lineEnd = head.IndexOf("\r\n"u8);
        ReadOnlySpan<byte> requestLine = lineEnd < 0 ? head : head.Slice(0, lineEnd);
        ReadOnlySpan<byte> rest = lineEnd < 0 ? default : head.Slice(lineEnd + 2);

        var result = new HttpRequestHead();
        if (!TryParseRequestLine(requestLine, result))
        {
            return HttpParseStatus.BadRequest;
        }

        while (!rest.IsEmpty)
        {
            lineEnd = rest.IndexOf("\r\n"u8);
            ReadOnlySpan<byte> line = lineEnd < 0 ? rest : rest.Slice(0, lineEnd);
            rest = lineEnd < 0 ? default : rest.Slice(lineEnd + 2);
            if (!TryParseHeader(line, result))
            {
                return HttpParseStatus.BadRequest;
            }
        }

        request = result;
        return HttpParseStatus.Complete;
    }

    private static bool TryParseRequestLine(ReadOnlySpan<byte> line, HttpRequestHead request)
    {
        int firstSpace = line.IndexOf((byte)' ');
        if (firstSpace <= 0)
        {
            return false;
        }

        ReadOnlySpan<byte> method = line.Slice(0, firstSpace);
        ReadOnlySpan<byte> afterMethod = line.Slice(firstSpace + 1);
        int secondSpace = afterMethod.IndexOf((byte)' ');
        if (secondSpace <= 0)
        {
            return false;
        }

        ReadOnlySpan<byte> target = afterMethod.Slice(0, secondSpace);
        ReadOnlySpan<byte> version = afterMethod.Slice(secondSpace + 1);
        if (!HttpTokens.IsToken(method) || target[0] != (byte)'/' || ContainsControlOrSpace(target))
        {
            return false; // only origin-form targets: this server is never a proxy
        }

        if (version.SequenceEqual("HTTP/1.1"u8))
        {
            request.IsHttp11 = true;
        }
        else if (!version.SequenceEqual("HTTP/1.0"u8))
        {
            return false;
        }

        request.Method = Encoding.ASCII.GetString(method);
        int query = target.IndexOf((byte)'?');
        request.Path = Encoding.ASCII.GetString(query < 0 ? target : target.Slice(0, query));
        request.Query = query < 0 ? "" : Encoding.ASCII.GetString(target.Slice(query));
        return true;
    }

    private static bool TryParseHeader(ReadOnlySpan<byte> line, HttpRequestHead request)
    {
        int colon = line.IndexOf((byte)':');
        if (colon <= 0)
        {
            return false; // also rejects obsolete line folding (a line starting with whitespace)
        }

        ReadOnlySpan<byte> name = line.Slice(0, colon);
        if (!HttpTokens.IsToken(name))
        {
            return false; // whitespace between name and colon is forbidden (RFC 9112 section 5.1)
        }

        ReadOnlySpan<byte> value = line.Slice(colon + 1).Trim(" \t"u8);
        foreach (byte b in value)
        {
            if ((b < 0x20 && b != (byte)'\t') || b == 0x7F)
            {
                return false;
            }
        }

        switch (name.Length)
        {
            case 4 when Ascii.EqualsIgnoreCase(name, "Host"u8):
                if (request.Host is not null)
                {
                    return false; // RFC 9112 section 3.2: more than one Host is a 400
                }

                request.Host = Latin1(value);
                break;
            case 6 when Ascii.EqualsIgnoreCase(name, "Origin"u8):
                request.Origin = Latin1(value);
                break;
            case 6 when Ascii.EqualsIgnoreCase(name, "Cookie"u8):
                request.Cookie = request.Cookie is null ? Latin1(value) : request.Cookie + "; " + Latin1(value);
                break;
            case 7 when Ascii.EqualsIgnoreCase(name, "Upgrade"u8):
                request.Upgrade = Join(request.Upgrade, value);
                break;
            case 10 when Ascii.EqualsIgnoreCase(name, "Connection"u8):
                request.Connection = Join(request.Connection, value);
                break;
            case 13 when Ascii.EqualsIgnoreCase(name, "Authorization"u8):
                request.Authorization = Latin1(value);
                break;
            case 14 when Ascii.EqualsIgnoreCase(name, "Content-Length"u8):
                if (!TryParseContentLength(value, out long length))
                {
                    return false;
                }

                request.HasBody |= length > 0;
                break;
            case 17 when Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8):
                request.HasBody = true;
                break;
            case 17 when Ascii.EqualsIgnoreCase(name, "Sec-WebSocket-Key"u8):
                request.SecWebSocketKey = Latin1(value);
                request.SecWebSocketKeyCount++;
                break;
            case 21 when Ascii.EqualsIgnoreCase(name, "Sec-WebSocket-Version"u8):
                request.SecWebSocketVersion = Join(request.SecWebSocketVersion, value);
                break;
            case 22 when Ascii.EqualsIgnoreCase(name, "Sec-WebSocket-Protocol"u8):
                request.SecWebSocketProtocol = Join(request.SecWebSocketProtocol, value);
                break;
        }

        return true;
    }

    private static bool TryParseContentLength(ReadOnlySpan<byte> value, out long length)
    {
        length = 0;
        if (value.IsEmpty || value.Length > 18)
        {
            return false;
        }

        foreach (byte b in value)
        {
            if (b is < (byte)'0' or > (byte)'9')
            {
                return false;
            }

            length = (length * 10) + (b - '0');
        }

        return true;
    }

    private static bool ContainsControlOrSpace(ReadOnlySpan<byte> value)
    {
        foreach (byte b in value)
        {
            if (b <= 0x20 || b >= 0x7F)
            {
                return true;
            }
        }

        return false;
    }

    private static string Latin1(ReadOnlySpan<byte> value) => Encoding.Latin1.GetString(value);

    // RFC 9110 section 5.3: repeated list headers combine into one comma-separated value.
    private static string Join(string? existing, ReadOnlySpan<byte> value) =>
        existing is null ? Latin1(value) : existing + ", " + Latin1(value);
}

/// <summary>Token helpers for HTTP header values (RFC 9110 section 5.6).</summary>
internal static class HttpTokens
{
    private static readonly SearchValues<byte> s_tokenChars =
        SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    public static bool IsToken(ReadOnlySpan<byte> value) => !value.IsEmpty && !value.ContainsAnyExcept(s_tokenChars);

    /// <summary>Whether a comma-separated header value contains <paramref name="token"/> (case-insensitive).</summary>
    public static bool ContainsToken(string? headerValue, string token)
    {
        if (headerValue is null)
        {
            return false;
        }

        foreach (Range range in headerValue.AsSpan().Split(','))
        {
            if (headerValue.AsSpan(range).Trim().Equals(token, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Splits a comma-separated list into trimmed, non-empty items.</summary>
    public static IReadOnlyList<string> SplitList(string? headerValue)
    {
        if (string.IsNullOrWhiteSpace(headerValue))
        {
            return Array.Empty<string>();
        }

        var items = new List<string>();
        foreach (Range range in headerValue.AsSpan().Split(','))
        {
            ReadOnlySpan<char> item = headerValue.AsSpan(range).Trim();
            if (!item.IsEmpty)
            {
                items.Add(item.ToString());
            }
        }

        return items;
    }
}
