using System.Buffers;
using System.Text;
using Collab.Server.Security;
using Collab.Server.Tests.Security.Infrastructure;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using CsCheck;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.IdentityModel.Tokens;

namespace Collab.Server.Tests.Fuzz;

/// <summary>
/// The two other parsers that see attacker bytes before any authentication: the HTTP request head parser
/// (every split of the input must parse exactly like the whole) and the token validator (mutated tokens
/// never throw and never pass unless they decode to the very same token).
/// </summary>
public sealed class HttpAndTokenFuzzTests
{
    private const int MaxHeaderBytes = 1024;

    private static readonly Gen<string> HeaderName = Gen.OneOf(
        "Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
        "Origin", "Authorization", "Content-Length", "Transfer-Encoding", "X-Other", "host", "Bad Name", "");

    private static readonly Gen<string> HeaderValue = Gen.OneOf(
        Gen.OneOf("websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", "collab.v1, bearer.abc", "0", "5", "-1", "chunked", "Bearer x.y.z", " padded ", ""),
        Gen.String[Gen.Char[' ', '~'], 0, 40]);

    private static readonly Gen<(string Method, string Target, string Version, (string, string)[] Headers)> RequestGen = Gen.Select(
        Gen.OneOf("GET", "HEAD", "POST", "get", "G ET", ""),
        Gen.OneOf("/ws", "/ws?access_token=a%20b", "/healthz", "*", "http://x/ws", "/ws#frag", "/%00", ""),
        Gen.OneOf("HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1", ""),
        Gen.Select(HeaderName, HeaderValue).Array[0, 12]);

    private static readonly Gen<(byte[] Head, int[] Splits)> HeadGen = Gen.Select(
        Gen.Frequency(
            (4, Gen.Select(RequestGen, FuzzCheck.Mutations(4), (r, m) => FuzzCheck.Apply(Encoding.Latin1.GetBytes(Render(r)), m))),
            (1, Gen.Byte.Array[0, 600])),
        Gen.Int[0, 2000].Array[0, 5]);

    [Fact]
    public void TheRequestParserGivesTheSameAnswerForEverySplitAndNeverThrows() =>
        FuzzCheck.Run(HeadGen, t => AssertSplitParsesLikeWhole(t.Head, t.Splits), 3000, t => Convert.ToHexString(t.Head));

    /// <summary>Parsing <paramref name="head"/> as one segment and as segments cut at <paramref name="splits"/> gives the same result.</summary>
    internal static void AssertSplitParsesLikeWhole(byte[] head, int[] splits)
    {
        HttpParseStatus whole = HttpRequestParser.TryParse(new ReadOnlySequence<byte>(head), MaxHeaderBytes, out HttpRequestHead? expected, out SequencePosition consumedWhole);
        ReadOnlySequence<byte> segmented = Segments.Cut(head, splits);
        HttpParseStatus split = HttpRequestParser.TryParse(segmented, MaxHeaderBytes, out HttpRequestHead? actual, out SequencePosition consumedSplit);

        Assert.Equal(whole, split);
        Assert.Equal(whole == HttpParseStatus.Complete, expected is not null);
        if (expected is not null)
        {
            Assert.Equal(new ReadOnlySequence<byte>(head).Slice(0, consumedWhole).Length, segmented.Slice(0, consumedSplit).Length);
            Assert.Equal(Describe(expected), Describe(actual!));
        }
    }

    [Fact]
    public async Task MutatedTokensNeverThrowAndPassOnlyIfTheyDecodeToTheOriginal()
    {
        var tokens = new TokenFactory();
        using SecurityServices security = SecurityServices.Create(
            new AuthOptions { Mode = AuthMode.Jwt, Issuers = [TokenFactory.Issuer], Audiences = [TokenFactory.Audience], SigningKey = TokenFactory.SecretText },
            new LimitsOptions(),
            new InProcessRevocationBus(),
            TimeProvider.System,
            NullLogger.Instance);
        await security.StartAsync(CancellationToken.None);
        string original = tokens.Create(jti: "fuzz");
        byte[][] originalSegments = Decode(original);

        Gen<(Mutation[] Mutations, bool Ascii)> gen = Gen.Select(FuzzCheck.Mutations(4), Gen.Bool);
        await FuzzCheck.RunAsync(gen, async t =>
        {
            byte[] mutated = FuzzCheck.Apply(Encoding.ASCII.GetBytes(original), t.Mutations);
            string token = t.Ascii ? Encoding.ASCII.GetString(mutated) : Encoding.Latin1.GetString(mutated);
            AuthResult result = await security.Validator!.ValidateAsync(token, CancellationToken.None);
            if (result.Succeeded)
            {
                // Base64url has spare bits in a segment's last character: such variants carry the same bytes.
                byte[][] segments = Decode(token);
                Assert.Equal(originalSegments.Length, segments.Length);
                for (int i = 0; i < segments.Length; i++)
                {
                    Assert.Equal(originalSegments[i], segments[i]);
                }
            }
        }, 2000, t => string.Join(",", t.Mutations));

        Gen<string> garbage = Gen.String[Gen.Char[' ', '~'], 0, 300];
        await FuzzCheck.RunAsync(garbage, async text => Assert.False((await security.Validator!.ValidateAsync(text, CancellationToken.None)).Succeeded), 1000);
    }

    private static byte[][] Decode(string token) => [.. token.Split('.').Select(Base64UrlEncoder.DecodeBytes)];

    private static string Render((string Method, string Target, string Version, (string, string)[] Headers) r)
    {
        var builder = new StringBuilder().Append(r.Method).Append(' ').Append(r.Target).Append(' ').Append(r.Version).Append("\r\n");
        foreach ((string name, string value) in r.Headers)
        {
            builder.Append(name).Append(": ").Append(value).Append("\r\n");
        }

        return builder.Append("\r\n").ToString();
    }

    private static string Describe(HttpRequestHead h) =>
        $"{h.Method}|{h.Path}|{h.Query}|{h.IsHttp11}|{h.Host}|{h.Upgrade}|{h.Connection}|{h.SecWebSocketKey}|{h.SecWebSocketKeyCount}|{h.SecWebSocketVersion}|{h.SecWebSocketProtocol}|{h.Origin}|{h.Authorization}|{h.HasBody}";
}
