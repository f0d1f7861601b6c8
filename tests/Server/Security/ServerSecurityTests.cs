using System.Security.Cryptography;
using Collab.Client;
using Collab.Server.Security;
using Collab.Server.Tests.Security.Infrastructure;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using Microsoft.Extensions.Logging;

namespace Collab.Server.Tests.Security;

/// <summary>Server-level behaviour: the anonymous default, the per-address attempt limit, the pending-handshake bound.</summary>
public sealed class ServerSecurityTests
{
    [Fact]
    public async Task TheZeroConfigServerIsAnonymousAndHasNoAdminEndpoint()
    {
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>());
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using CollabClient client = await CollabClient.ConnectAsync(server.WebSocketUri, new CollabClientOptions(), cts.Token);
        await using CollabDocument document = await client.OpenDocumentAsync("anon/1", cts.Token);
        document.Insert(0, "open to all");
        await document.WhenSyncedAsync(cts.Token);

        RawHttpResponse admin = await RawWebSocketClient.SendHttpAsync(server.Port, "POST /admin/revoke?sub=x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        Assert.Equal(404, admin.StatusCode);
    }

    [Fact]
    public async Task AnonymousModeSaysSoLoudlyOnceAtStart()
    {
        var logger = new RecordingLogger();
        using SecurityServices anonymous = SecurityServices.Create(new AuthOptions(), new LimitsOptions(), new InProcessRevocationBus(), TimeProvider.System, logger);
        await anonymous.StartAsync(CancellationToken.None);
        (LogLevel level, EventId id, string message) = Assert.Single(logger.Entries);
        Assert.Equal(LogLevel.Warning, level);
        Assert.Equal(4000, id.Id);
        Assert.Contains("AUTHENTICATION IS DISABLED", message, StringComparison.Ordinal);
        Assert.Contains("Auth:Mode=Jwt", message, StringComparison.Ordinal);

        var jwtLogger = new RecordingLogger();
        var jwt = new AuthOptions { Mode = AuthMode.Jwt, Issuers = [TokenFactory.Issuer], Audiences = [TokenFactory.Audience], SigningKey = TokenFactory.SecretText };
        using SecurityServices secured = SecurityServices.Create(jwt, new LimitsOptions(), new InProcessRevocationBus(), TimeProvider.System, jwtLogger);
        await secured.StartAsync(CancellationToken.None);
        Assert.DoesNotContain(jwtLogger.Entries, e => e.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task ConnectionAttemptsPerAddressAreAnswered429WithRetryAfter()
    {
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>
        {
            ["Limits:ConnectionAttemptsPerIpPerMinute"] = "2",
            ["Limits:ExemptLoopback"] = "false", // the test client is on loopback
        });
        await using RawWebSocketClient first = await RawWebSocketClient.ConnectAsync(server.Port);
        await using RawWebSocketClient second = await RawWebSocketClient.ConnectAsync(server.Port);
        RawHttpResponse third = await RawWebSocketClient.SendHttpAsync(server.Port,
            $"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Convert.ToBase64String(RandomNumberGenerator.GetBytes(16))}\r\nSec-WebSocket-Version: 13\r\n\r\n");
        Assert.Equal(429, third.StatusCode);
        Assert.True(third.HasHeader("Retry-After: 30"), third.Head);

        // Probes are not connection attempts.
        Assert.Equal(200, (await RawWebSocketClient.SendHttpAsync(server.Port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).StatusCode);
    }

    [Fact]
    public async Task PendingHandshakesAreBoundedServerWide()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions { MaxPendingHandshakes = 2 });

        // Two connections that never finish their request head hold both slots.
        await using RawWebSocketClient slow1 = await RawWebSocketClient.ConnectTcpAsync(server.Port);
        await using RawWebSocketClient slow2 = await RawWebSocketClient.ConnectTcpAsync(server.Port);
        await slow1.SendRawAsync("GET /ws HTTP/1.1\r\n"u8.ToArray());
        await slow2.SendRawAsync("GET /ws HTTP/1.1\r\n"u8.ToArray());
        await WaitForAsync(() => PendingHandshakes(server) == 2);

        await using (RawWebSocketClient refused = await RawWebSocketClient.ConnectTcpAsync(server.Port))
        {
            string head = await refused.ReadHttpHeadAsync();
            Assert.StartsWith("HTTP/1.1 503 ", head, StringComparison.Ordinal);
            Assert.Contains("Retry-After: 1\r\n", head, StringComparison.Ordinal);
        }

        // A finished handshake frees its slot: the upgraded connection no longer counts.
        await slow1.DisposeAsync();
        await WaitForAsync(() => PendingHandshakes(server) == 1);
        await using RawWebSocketClient upgraded = await RawWebSocketClient.ConnectAsync(server.Port);
        await WaitForAsync(() => PendingHandshakes(server) == 1);
        await using RawWebSocketClient another = await RawWebSocketClient.ConnectAsync(server.Port);
    }

    [Fact]
    public async Task RejectionsCarryRetryAfterAndChallengeHeadersButNeverInjectedLines()
    {
        var app = new TestApplication();
        await using TestTransportServer server = await TestTransportServer.StartAsync(app);
        string upgrade = $"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Convert.ToBase64String(RandomNumberGenerator.GetBytes(16))}\r\nSec-WebSocket-Version: 13\r\n\r\n";

        app.Handshake = _ => HandshakeDecision.Reject(429, "slow down", retryAfterSeconds: 7);
        RawHttpResponse limited = await RawWebSocketClient.SendHttpAsync(server.Port, upgrade);
        Assert.Equal(429, limited.StatusCode);
        Assert.True(limited.HasHeader("Retry-After: 7"), limited.Head);

        app.Handshake = _ => HandshakeDecision.Reject(401, "no", challenge: "Bearer realm=\"x\"");
        RawHttpResponse unauthorized = await RawWebSocketClient.SendHttpAsync(server.Port, upgrade);
        Assert.Equal(401, unauthorized.StatusCode);
        Assert.True(unauthorized.HasHeader("WWW-Authenticate: Bearer realm=\"x\""), unauthorized.Head);

        app.Handshake = _ => HandshakeDecision.Reject(401, "no", challenge: "Bearer\r\nSet-Cookie: pwned=1");
        RawHttpResponse injected = await RawWebSocketClient.SendHttpAsync(server.Port, upgrade);
        Assert.Equal(500, injected.StatusCode);
        Assert.DoesNotContain("Set-Cookie", injected.Head, StringComparison.OrdinalIgnoreCase);
    }

    private static int PendingHandshakes(TestTransportServer server) =>
        ((ConnectionRegistry)server.Services.GetService(typeof(ConnectionRegistry))!).PendingHandshakes;

    private static async Task WaitForAsync(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!condition())
        {
            await Task.Delay(10, cts.Token);
        }
    }
}
