using System.Globalization;
using System.Text.RegularExpressions;
using Collab.Engine.Text;
using Collab.Protocol.V1;
using Collab.Server.Tests.Security.Infrastructure;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using Microsoft.Data.Sqlite;

namespace Collab.Server.Tests.Protocol;

/// <summary>
/// docs/PROTOCOL.md section 10, row by row, against the real server over real sockets: every documented close code
/// is the <see cref="CloseCode"/> of collab.proto under the same name (the one definition the server and the SDK
/// use), and the server sends it in each situation the row names. A row without a check here fails, so the table,
/// the enum and the server cannot drift apart again.
/// </summary>
public sealed partial class CloseCodeConformanceTests
{
    private static readonly IReadOnlyList<IReadOnlyDictionary<string, string>> s_rows = ProtocolSpec.Table("## 10. Close codes");

    /// <summary>One scenario per documented code: it provokes every situation of the row and asserts the code received.</summary>
    private static readonly Dictionary<int, Func<IReadOnlyDictionary<string, string>, Task>> s_checks = new()
    {
        [1000] = NormalClosureAsync,
        [1001] = GoingAwayAsync,
        [1002] = ProtocolErrorAsync,
        [1003] = UnsupportedDataAsync,
        [1007] = InvalidPayloadAsync,
        [1008] = PolicyViolationAsync,
        [1009] = MessageTooBigAsync,
        [1011] = InternalErrorAsync,
        [1012] = ServiceRestartAsync,
        [1013] = TryAgainLaterAsync,
        [4001] = AuthExpiredAsync,
        [4003] = ForbiddenAsync,
        [4008] = RateLimitedAsync,
        [4009] = SessionReplacedAsync,
    };

    public static TheoryData<int, string> DocumentedCodes()
    {
        var data = new TheoryData<int, string>();
        foreach (IReadOnlyDictionary<string, string> row in s_rows)
        {
            data.Add(Code(row), row["Name"]);
        }

        return data;
    }

    [Fact]
    public void The_table_lists_exactly_the_CloseCode_enum_under_the_same_names()
    {
        SortedDictionary<int, string> documented = new(s_rows.ToDictionary(Code, row => ProtocolSpec.PascalCase(row["Name"])));
        SortedDictionary<int, string> defined = new(Enum.GetValues<CloseCode>().Where(c => c != CloseCode.Unspecified).ToDictionary(c => (int)c, c => c.ToString()));
        Assert.Equal(defined, documented);
    }

    [Fact]
    public void Every_check_here_belongs_to_a_documented_code() =>
        Assert.Equal(s_rows.Select(Code).Order(), s_checks.Keys.Order());

    [Fact]
    public void The_SDK_reports_the_protocol_codes_from_the_same_definition()
    {
        Assert.Equal((int)CloseCode.AuthExpired, Collab.Client.CloseCodes.AuthExpired);
        Assert.Equal((int)CloseCode.Forbidden, Collab.Client.CloseCodes.Forbidden);
        Assert.Equal((int)CloseCode.RateLimited, Collab.Client.CloseCodes.RateLimited);
    }

    [Theory]
    [MemberData(nameof(DocumentedCodes))]
    public async Task The_server_sends_each_documented_code_when_the_spec_says(int code, string name)
    {
        IReadOnlyDictionary<string, string> row = s_rows.Single(r => Code(r) == code);
        Assert.True(s_checks.TryGetValue(code, out Func<IReadOnlyDictionary<string, string>, Task>? check), $"No conformance check for close code {code} ({name}) of docs/PROTOCOL.md section 10.");
        await check(row);
    }

    // ------------------------------------------------------------------ one check per row

    private static async Task NormalClosureAsync(IReadOnlyDictionary<string, string> row)
    {
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>());
        await using WireClient client = await WireClient.ConnectAsync(server.Port);
        await client.Socket.SendCloseAsync(1000);
        Assert.Equal(1000, await client.ReceiveCloseAsync());
    }

    private static async Task GoingAwayAsync(IReadOnlyDictionary<string, string> row)
    {
        // Shutdown (a drain).
        SecureServer stopping = await SecureServer.StartAsync(new Dictionary<string, string?>());
        await using (WireClient client = await WireClient.ConnectAsync(stopping.Port))
        {
            Task stopped = stopping.DisposeAsync().AsTask();
            Assert.Equal(1001, await client.ReceiveCloseAsync());
            await client.Socket.SendCloseAsync(1000);
            await stopped;
        }

        // Pings unanswered.
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>
        {
            ["Transport:PingInterval"] = "00:00:00.300",
            ["Transport:HeartbeatInterval"] = "00:00:00.050",
        });
        await using WireClient deaf = await WireClient.ConnectAsync(server.Port);
        RawFrame close = await deaf.Socket.ReceiveCloseAsync(); // reads the pings, never answers them
        Assert.Equal(1001, close.CloseCode);
    }

    private static async Task ProtocolErrorAsync(IReadOnlyDictionary<string, string> row)
    {
        // A handshake timeout short enough to wait for, long enough that the other clients' first messages beat it on a
        // loaded machine.
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>
        {
            ["Transport:HandshakeTimeout"] = "00:00:02",
            ["Transport:HeartbeatInterval"] = "00:00:00.050",
        });

        // A framing error (an unmasked client frame).
        await using (WireClient client = await WireClient.ConnectAsync(server.Port))
        {
            await client.Socket.SendFrameAsync(0x2, [0x82, 0x01, 0x00], mask: false);
            Assert.Equal(1002, await client.ReceiveCloseAsync());
        }

        // A first message that is not Hello, and an unsupported version: the Error, then the close.
        await ExpectErrorThenCloseAsync(server.Port, new ClientMessage { Subscribe = new Subscribe { DocId = "a", Snapshot = true } }, ErrorCode.NotHello, 1002);
        await ExpectErrorThenCloseAsync(server.Port, new ClientMessage { Hello = new Hello { ProtocolVersion = 2 } }, ErrorCode.ProtocolVersion, 1002);

        // No message at all within the handshake timeout.
        await using WireClient silent = await WireClient.ConnectAsync(server.Port, hello: false);
        Assert.Equal(1002, await silent.ReceiveCloseAsync());
    }

    private static async Task UnsupportedDataAsync(IReadOnlyDictionary<string, string> row)
    {
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>());
        await using WireClient client = await WireClient.ConnectAsync(server.Port);
        await client.Socket.SendTextAsync("""{"hello":1}""");
        Assert.Equal(1003, await client.ReceiveCloseAsync());
    }

    private static async Task InvalidPayloadAsync(IReadOnlyDictionary<string, string> row)
    {
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>());

        // Not a ClientMessage: BAD_MESSAGE, then 1007.
        await using (WireClient client = await WireClient.ConnectAsync(server.Port))
        {
            var before = new List<ServerMessage>();
            await client.Socket.SendBinaryAsync([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
            Assert.Equal(1007, await client.ReceiveCloseAsync(before));
            Assert.Equal([ErrorCode.BadMessage], before.Select(m => m.Error.Code));
        }

        // A text frame that is not UTF-8.
        await using WireClient text = await WireClient.ConnectAsync(server.Port);
        await text.Socket.SendFrameAsync(0x1, [0x61, 0xC3, 0x28]);
        Assert.Equal(1007, await text.ReceiveCloseAsync());
    }

    private static async Task PolicyViolationAsync(IReadOnlyDictionary<string, string> row)
    {
        int tolerated = int.Parse(MoreThan().Match(row["Sent by the server when"]).Groups[1].Value, CultureInfo.InvariantCulture);
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>());

        // Malformed requests (each one decodes, each one is refused): the one past the tolerance closes.
        await using (WireClient client = await WireClient.ConnectAsync(server.Port))
        {
            for (int i = 0; i <= tolerated; i++)
            {
                await client.SendAsync(new ClientMessage { RequestId = (ulong)i, Subscribe = new Subscribe { DocId = "/not-an-id", Snapshot = true } });
            }

            var before = new List<ServerMessage>();
            Assert.Equal(1008, await client.ReceiveCloseAsync(before));
            Assert.Equal(tolerated + 1, before.Count(m => m.Error?.Code == ErrorCode.InvalidDocId));
        }

        // A client id that cannot be one.
        await ExpectErrorThenCloseAsync(server.Port, new ClientMessage { Hello = new Hello { ProtocolVersion = 1, ClientId = "not an id!" } }, ErrorCode.BadMessage, 1008);
    }

    private static async Task MessageTooBigAsync(IReadOnlyDictionary<string, string> row)
    {
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?> { ["Transport:MaxMessageBytes"] = "4096" });
        await using WireClient client = await WireClient.ConnectAsync(server.Port);
        Assert.Equal(4096u, client.Welcome!.MaxMessageBytes);
        await client.Socket.SendBinaryAsync(new byte[4097]);
        Assert.Equal(1009, await client.ReceiveCloseAsync());
    }

    private static async Task InternalErrorAsync(IReadOnlyDictionary<string, string> row)
    {
        // The server's transport with an application that fails handling a message (no such bug is known in the
        // real sessions, which is why the failure is injected here).
        var app = new TestApplication { OnMessage = (_, _, _) => throw new InvalidOperationException("injected fault") };
        await using TestTransportServer server = await TestTransportServer.StartAsync(app);
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(server.Port);
        await client.SendBinaryAsync([1]);
        Assert.Equal(1011, (await client.ReceiveCloseAsync()).CloseCode);
    }

    private static async Task ServiceRestartAsync(IReadOnlyDictionary<string, string> row)
    {
        const string doc = "conformance/fenced";
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>());
        await using WireClient client = await WireClient.ConnectAsync(server.Port);
        await client.OpenAsync(doc);
        await client.SendAsync(WireClient.Submit(doc, 1, 0, TextOp.Insert(0, "a")));
        Assert.Equal(1, (await client.ReceiveAsync(ServerMessage.BodyOneofCase.Ack)).Ack.Version);

        // Another writer takes version 2 in the op log behind this node's back: the node's next commit is fenced.
        await using (var other = new SqliteConnection($"Data Source={Path.Combine(server.DataDirectory, "collab.db")};Pooling=False"))
        {
            await other.OpenAsync();
            using SqliteCommand insert = other.CreateCommand();
            insert.CommandText = "PRAGMA busy_timeout = 5000; INSERT INTO ops (doc_id, version, client_id, client_seq, author, op, ts_ms) VALUES ($doc, 2, 'other-writer', 1, NULL, x'00', 0)";
            insert.Parameters.AddWithValue("$doc", doc);
            Assert.Equal(1, await insert.ExecuteNonQueryAsync());
        }

        await client.SendAsync(WireClient.Submit(doc, 2, 1, TextOp.Insert(1, "b")));
        var before = new List<ServerMessage>();
        Assert.Equal(1012, await client.ReceiveCloseAsync(before));
        Assert.Contains(before, m => m.BodyCase == ServerMessage.BodyOneofCase.Redirect);
    }

    private static async Task TryAgainLaterAsync(IReadOnlyDictionary<string, string> row)
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            MaxOutboundBytesPerConnection = 64 * 1024,
            HeartbeatInterval = TimeSpan.FromMilliseconds(50),
        });
        await using RawWebSocketClient client = await RawWebSocketClient.ConnectAsync(server.Port);
        IWebSocketConnection connection = await app.NextOpenedAsync();
        using OutboundMessage chunk = OutboundMessage.CreateBinary(new byte[16 * 1024]);
        for (int sent = 0; connection.TrySend(chunk); sent++)
        {
            Assert.True(sent < 100_000, "the outbound bound was never enforced");
        }

        // The client was not reading: behind the frames that made it into the socket buffers comes the Close.
        Assert.Equal(1013, (await client.ReceiveCloseAsync(TimeSpan.FromSeconds(30))).CloseCode);

        // A Hello while the store cannot be written (another process holds SQLite's write lock past the busy timeout),
        // so the key client ids are signed with cannot be created: UNAVAILABLE, then 1013; once the lock is gone, Welcome.
        await using SecureServer real = await SecureServer.StartAsync(new Dictionary<string, string?> { ["Storage:SqliteBusyTimeout"] = "00:00:00.200" });
        await using (var locker = new SqliteConnection($"Data Source={Path.Combine(real.DataDirectory, "collab.db")};Pooling=False"))
        {
            await locker.OpenAsync();
            using SqliteCommand begin = locker.CreateCommand();
            begin.CommandText = "PRAGMA busy_timeout = 5000; BEGIN IMMEDIATE";
            await begin.ExecuteNonQueryAsync();
            await ExpectErrorThenCloseAsync(real.Port, new ClientMessage { Hello = new Hello { ProtocolVersion = 1 } }, ErrorCode.Unavailable, 1013);
        }

        await using WireClient later = await WireClient.ConnectAsync(real.Port);
        Assert.NotEmpty(later.Welcome!.ClientId);
    }

    private static async Task SessionReplacedAsync(IReadOnlyDictionary<string, string> row)
    {
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>());
        await using WireClient first = await WireClient.ConnectAsync(server.Port);
        await using WireClient second = await WireClient.ConnectAsync(server.Port, hello: false);
        await second.SendAsync(new ClientMessage { Hello = new Hello { ProtocolVersion = 1, ClientId = first.Welcome!.ClientId } });
        ServerMessage welcome = await second.ReceiveAsync(ServerMessage.BodyOneofCase.Welcome);
        Assert.True(welcome.Welcome.Resumed);
        Assert.Equal(4009, await first.ReceiveCloseAsync());
        await second.PingAsync(); // the newer connection has the session
    }

    private static async Task AuthExpiredAsync(IReadOnlyDictionary<string, string> row)
    {
        var tokens = new TokenFactory();
        await using SecureServer server = await SecureServer.StartAsync(TokenFactory.Hs256Settings(new() { ["Auth:AdminToken"] = AdminToken, ["Auth:ClockSkew"] = "00:00:00" }));

        // The token expires (4 s) without a Reauthenticate.
        await using (WireClient expiring = await WireClient.ConnectAsync(server.Port, tokens.Create("alice", expires: DateTimeOffset.UtcNow.AddSeconds(4))))
        {
            var before = new List<ServerMessage>();
            Assert.Equal(4001, await expiring.ReceiveCloseAsync(before, TimeSpan.FromSeconds(30)));
            Assert.Contains(before, m => m.BodyCase == ServerMessage.BodyOneofCase.AuthExpiring);
        }

        // The token is revoked.
        await using WireClient revoked = await WireClient.ConnectAsync(server.Port, tokens.Create("alice", jti: "conformance-4001"));
        Assert.Equal(200, (await AdminAsync(server.Port, "/admin/revoke?jti=conformance-4001")).StatusCode);
        Assert.Equal(4001, await revoked.ReceiveCloseAsync());
    }

    private static async Task ForbiddenAsync(IReadOnlyDictionary<string, string> row)
    {
        var tokens = new TokenFactory();
        await using SecureServer server = await SecureServer.StartAsync(TokenFactory.Hs256Settings(new() { ["Auth:AdminToken"] = AdminToken }));

        // The user's access is revoked.
        await using (WireClient banned = await WireClient.ConnectAsync(server.Port, tokens.Create("mallory")))
        {
            Assert.Equal(200, (await AdminAsync(server.Port, "/admin/revoke?sub=mallory")).StatusCode);
            Assert.Equal(4003, await banned.ReceiveCloseAsync());
        }

        // A Reauthenticate carries another user's token.
        await using WireClient alice = await WireClient.ConnectAsync(server.Port, tokens.Create("alice"));
        await alice.SendAsync(new ClientMessage { Reauth = new Reauthenticate { Token = tokens.Create("bob") } });
        Assert.Equal(4003, await alice.ReceiveCloseAsync());
    }

    private static async Task RateLimitedAsync(IReadOnlyDictionary<string, string> row)
    {
        (List<ServerMessage> before, ushort close) = await WireClient.FloodPastTheMessageRateAsync();
        Assert.Equal(4008, close);
        Assert.Contains(before, m => m.Error?.Code == ErrorCode.RateLimited);
    }

    // ------------------------------------------------------------------ helpers

    private const string AdminToken = "admin-token-for-conformance-0123456789";

    private static int Code(IReadOnlyDictionary<string, string> row) => int.Parse(row["Code"], CultureInfo.InvariantCulture);

    private static async Task ExpectErrorThenCloseAsync(int port, ClientMessage first, ErrorCode error, ushort close)
    {
        await using WireClient client = await WireClient.ConnectAsync(port, hello: false);
        await client.SendAsync(first);
        var before = new List<ServerMessage>();
        Assert.Equal(close, await client.ReceiveCloseAsync(before));
        Assert.Equal([error], before.Select(m => m.Error.Code));
    }

    private static Task<RawHttpResponse> AdminAsync(int port, string target) =>
        RawWebSocketClient.SendHttpAsync(port, $"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {AdminToken}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");

    [GeneratedRegex(@"More than (\d+)")]
    private static partial Regex MoreThan();
}
