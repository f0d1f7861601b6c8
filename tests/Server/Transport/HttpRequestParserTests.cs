using System.Buffers;
using System.Text;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;

namespace Collab.Server.Tests.Transport;

public sealed class HttpRequestParserTests
{
    private const string Request =
        "GET /ws?doc=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: a, b\r\n" +
        "Sec-WebSocket-Protocol: c\r\nOrigin: https://app.example.com\r\nAuthorization: Bearer t\r\n\r\n";

    [Fact]
    public void Parses_every_field_the_transport_uses()
    {
        byte[] bytes = Encoding.ASCII.GetBytes(Request + "tail");
        HttpParseStatus status = HttpRequestParser.TryParse(new ReadOnlySequence<byte>(bytes), 8192, out HttpRequestHead? head, out SequencePosition consumed);
        Assert.Equal(HttpParseStatus.Complete, status);
        Assert.Equal(Request.Length, consumed.GetInteger());
        Assert.Equal("GET", head!.Method);
        Assert.Equal("/ws", head.Path);
        Assert.Equal("?doc=1", head.Query);
        Assert.True(head.IsHttp11);
        Assert.Equal("example.com", head.Host);
        Assert.Equal("websocket", head.Upgrade);
        Assert.True(HttpTokens.ContainsToken(head.Connection, "upgrade"));
        Assert.Equal("dGhlIHNhbXBsZSBub25jZQ==", head.SecWebSocketKey);
        Assert.Equal("13", head.SecWebSocketVersion);
        Assert.Equal(new[] { "a", "b", "c" }, HttpTokens.SplitList(head.SecWebSocketProtocol));
        Assert.Equal("https://app.example.com", head.Origin);
        Assert.Equal("Bearer t", head.Authorization);
        Assert.True(head.KeepAlive);
        Assert.False(head.HasBody);
    }

    [Fact]
    public void Request_in_one_segment_per_byte_is_incomplete_until_the_blank_line()
    {
        byte[] bytes = Encoding.ASCII.GetBytes(Request);
        for (int length = 0; length < bytes.Length; length++)
        {
            Assert.Equal(HttpParseStatus.Incomplete, HttpRequestParser.TryParse(PerByteSegments(bytes.AsSpan(0, length)), 8192, out _, out _));
        }

        Assert.Equal(HttpParseStatus.Complete, HttpRequestParser.TryParse(PerByteSegments(bytes), 8192, out HttpRequestHead? head, out _));
        Assert.Equal("Bearer t", head!.Authorization);
    }

    [Theory]
    [InlineData("GET /ws HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")]
    [InlineData("GET /ws HTTP/2.0\r\nHost: a\r\n\r\n")]
    [InlineData("GET  /ws HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /ws\r\nHost: a\r\n\r\n")]
    [InlineData("G@T /ws HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /w s HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /ws HTTP/1.1\r\nNoColon\r\n\r\n")]
    [InlineData("GET /ws HTTP/1.1\r\nX: a\u0001b\r\n\r\n")]
    [InlineData("GET /ws HTTP/1.1\r\nContent-Length: -1\r\n\r\n")]
    [InlineData("GET /ws HTTP/1.1\r\nX: a\nY: b\r\n\r\n")]
    public void Malformed_heads_are_bad_requests(string request)
    {
        Assert.Equal(HttpParseStatus.BadRequest, HttpRequestParser.TryParse(new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(request)), 8192, out _, out _));
    }

    [Fact]
    public void Heads_over_the_limit_are_rejected_with_or_without_their_end()
    {
        byte[] complete = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nX: " + new string('a', 600) + "\r\n\r\n");
        Assert.Equal(HttpParseStatus.HeadersTooLarge, HttpRequestParser.TryParse(new ReadOnlySequence<byte>(complete), 512, out _, out _));
        byte[] endless = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nX: " + new string('a', 600));
        Assert.Equal(HttpParseStatus.HeadersTooLarge, HttpRequestParser.TryParse(new ReadOnlySequence<byte>(endless), 512, out _, out _));
    }

    [Theory]
    [InlineData("HTTP/1.1", null, true)]
    [InlineData("HTTP/1.1", "close", false)]
    [InlineData("HTTP/1.0", null, false)]
    [InlineData("HTTP/1.0", "Keep-Alive", true)]
    public void Keep_alive_follows_the_version_defaults(string version, string? connection, bool keepAlive)
    {
        string request = $"GET /healthz {version}\r\nHost: a\r\n" + (connection is null ? "" : $"Connection: {connection}\r\n") + "\r\n";
        HttpRequestParser.TryParse(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(request)), 8192, out HttpRequestHead? head, out _);
        Assert.Equal(keepAlive, head!.KeepAlive);
    }

    private static ReadOnlySequence<byte> PerByteSegments(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new Segments.Segment(new[] { bytes[0] }, 0);
        Segments.Segment last = first;
        for (int i = 1; i < bytes.Length; i++)
        {
            last = last.Append(new[] { bytes[i] });
        }

        return new ReadOnlySequence<byte>(first, 0, last, 1);
    }
}
