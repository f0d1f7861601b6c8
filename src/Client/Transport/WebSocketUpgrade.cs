using System.Buffers;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;

namespace Collab.Client.Transport;

/// <summary>
/// The client side of the RFC 6455 section 4 opening handshake: an HTTP/1.1 GET with the upgrade headers, and a
/// strict check of the server's answer (101, Upgrade, Connection, Sec-WebSocket-Accept, subprotocol, no extensions).
/// </summary>
/// <remarks>
/// Hand-written because no library fits: <see cref="System.Net.Http.HttpClient"/> would own the connection (its
/// upgrade stream is what <see cref="ClientWebSocket"/> uses), and Kestrel's parser reads requests, not responses. The
/// exchange is one request and a header block read once per connection, so it is plain string code, not a hot path.
/// </remarks>
internal sealed class WebSocketUpgrade
{
    /// <summary>A longer header block is refused: HttpClient's default limit is 64 KiB, an upgrade answer is a few hundred bytes.</summary>
    public const int MaxResponseHeaderBytes = 16 * 1024;

    private const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    private static ReadOnlySpan<byte> EndOfHeaders => "\r\n\r\n"u8;

    private readonly string _key;
    private readonly List<string> _subProtocols = [];

    public WebSocketUpgrade(Uri uri, string? accessToken, TokenDelivery delivery, string? subProtocol)
    {
        if (uri.Scheme is not ("ws" or "wss"))
        {
            throw new ArgumentException($"Expected a ws:// or wss:// address, got '{uri}'.", nameof(uri));
        }

        _key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        if (!string.IsNullOrEmpty(subProtocol))
        {
            _subProtocols.Add(CheckToken(subProtocol, "subprotocol"));
        }

        if (accessToken is { Length: > 0 } token)
        {
            switch (delivery)
            {
                case TokenDelivery.QueryParameter:
                    uri = WebSocketTransportFactory.AppendQuery(uri, "access_token", token);
                    break;
                case TokenDelivery.SubProtocol:
                    _subProtocols.Add(CheckToken(WebSocketTransportFactory.BearerSubProtocolPrefix + token, "access token"));
                    break;
                default:
                    Authorization = "Bearer " + CheckToken(token, "access token");
                    break;
            }
        }

        Uri = uri;
    }

    /// <summary>The address requested, with the token in its query when delivered there.</summary>
    public Uri Uri { get; }

    /// <summary>The Authorization header value, when the token travels in it.</summary>
    public string? Authorization { get; }

    /// <summary>The subprotocols offered, in order.</summary>
    public IReadOnlyList<string> SubProtocols => _subProtocols;

    /// <summary>The subprotocol the server selected (null: none), once <see cref="TryReadResponse"/> accepted its answer.</summary>
    public string? SelectedSubProtocol { get; private set; }

    /// <summary>The request bytes.</summary>
    public byte[] BuildRequest()
    {
        var request = new StringBuilder(256);
        request.Append("GET ").Append(Uri.PathAndQuery).Append(" HTTP/1.1\r\n");
        string host = Uri.HostNameType == UriHostNameType.IPv6 ? $"[{Uri.IdnHost}]" : Uri.IdnHost;
        request.Append("Host: ").Append(host);
        if (!Uri.IsDefaultPort)
        {
            request.Append(':').Append(Uri.Port);
        }

        request.Append("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ").Append(_key).Append("\r\n");
        if (_subProtocols.Count > 0)
        {
            request.Append("Sec-WebSocket-Protocol: ").AppendJoin(", ", _subProtocols).Append("\r\n");
        }

        if (Authorization is not null)
        {
            request.Append("Authorization: ").Append(Authorization).Append("\r\n");
        }

        request.Append("\r\n");
        return Encoding.ASCII.GetBytes(request.ToString());
    }

    /// <summary>
    /// Reads the response header block from <paramref name="buffer"/>. Returns false when it is not complete yet
    /// (<paramref name="consumed"/> is then untouched); true when it was read and accepted, with
    /// <paramref name="consumed"/> after its blank line: what follows is already WebSocket frames. Throws
    /// <see cref="TransportConnectException"/> for an HTTP status other than 101 and <see cref="WebSocketException"/>
    /// for an answer that is not a valid upgrade.
    /// </summary>
    public bool TryReadResponse(in ReadOnlySequence<byte> buffer, out SequencePosition consumed)
    {
        consumed = buffer.Start;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryReadTo(out ReadOnlySequence<byte> block, EndOfHeaders, advancePastDelimiter: true))
        {
            if (buffer.Length > MaxResponseHeaderBytes)
            {
                throw new WebSocketException(WebSocketError.HeaderError, $"The upgrade response headers exceed {MaxResponseHeaderBytes} bytes.");
            }

            return false;
        }

        if (block.Length > MaxResponseHeaderBytes)
        {
            throw new WebSocketException(WebSocketError.HeaderError, $"The upgrade response headers exceed {MaxResponseHeaderBytes} bytes.");
        }

        consumed = reader.Position;
        // Latin-1 maps every byte to one char, so nothing a server sends can make decoding itself fail.
        string[] lines = Encoding.Latin1.GetString(block).Split("\r\n");
        int status = ParseStatusLine(lines[0]);
        if (status != 101)
        {
            throw new TransportConnectException(status, new WebSocketException(
                WebSocketError.NotAWebSocket, $"The server returned status code '{status}' when status code '101' was expected."));
        }

        Dictionary<string, string> headers = ParseHeaders(lines);
        Require(headers.TryGetValue("Upgrade", out string? upgrade) && upgrade.Equals("websocket", StringComparison.OrdinalIgnoreCase),
            "The 101 response has no 'Upgrade: websocket' header.");
        Require(headers.TryGetValue("Connection", out string? connection)
            && connection.Split(',').Any(t => t.Trim().Equals("Upgrade", StringComparison.OrdinalIgnoreCase)),
            "The 101 response has no 'Connection: Upgrade' header.");
        Require(headers.TryGetValue("Sec-WebSocket-Accept", out string? accept) && accept == ExpectedAccept(_key),
            "The 101 response's Sec-WebSocket-Accept does not match the key sent.");
        Require(!headers.ContainsKey("Sec-WebSocket-Extensions"), "The server accepted an extension that was not offered.");
        if (headers.TryGetValue("Sec-WebSocket-Protocol", out string? selected))
        {
            Require(_subProtocols.Contains(selected, StringComparer.Ordinal), $"The server selected the subprotocol '{selected}', which was not offered.");
            SelectedSubProtocol = selected;
        }

        return true;
    }

    /// <summary>Sec-WebSocket-Accept for a key (4.2.2): base64(SHA-1(key + GUID)).</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5350", Justification = "RFC 6455 defines Sec-WebSocket-Accept as SHA-1; it protects nothing.")]
    public static string ExpectedAccept(string key) => Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + AcceptGuid)));

    private static int ParseStatusLine(string line)
    {
        // "HTTP/1.1 101 Switching Protocols": a version, a space, three digits, then a space or the end.
        if (line.Length >= 12 && line.StartsWith("HTTP/1.", StringComparison.Ordinal) && line[8] == ' '
            && (line.Length == 12 || line[12] == ' ') && int.TryParse(line.AsSpan(9, 3), out int status) && status >= 100)
        {
            return status;
        }

        throw new WebSocketException(WebSocketError.HeaderError, "The server's answer to the upgrade is not an HTTP/1.x response.");
    }

    private static Dictionary<string, string> ParseHeaders(string[] lines)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (int i = 1; i < lines.Length; i++)
        {
            int colon = lines[i].IndexOf(':', StringComparison.Ordinal);
            Require(colon > 0, "A header line of the upgrade response has no name.");
            string name = lines[i][..colon].Trim();
            string value = lines[i][(colon + 1)..].Trim();
            // A repeated header is the same as one with the values joined by commas (RFC 9110 5.3).
            headers[name] = headers.TryGetValue(name, out string? earlier) ? earlier + ", " + value : value;
        }

        return headers;
    }

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new WebSocketException(WebSocketError.HeaderError, message);
        }
    }

    /// <summary>Subprotocols and bearer tokens travel in headers: only printable ASCII without separators is safe there.</summary>
    private static string CheckToken(string value, string what)
    {
        foreach (char c in value)
        {
            if (c is <= ' ' or >= (char)0x7F or '"' or ',' or ';' or '\\' or '(' or ')' or '<' or '>' or '@' or ':' or '[' or ']' or '?' or '{' or '}')
            {
                throw new ArgumentException($"The {what} contains a character that cannot be sent in an HTTP header.");
            }
        }

        return value;
    }
}
