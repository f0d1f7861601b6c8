using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Server.Tests.Security;

/// <summary>
/// Token expiry over an open connection: AuthExpiring before exp, Reauthenticate with a fresh token for the
/// same user, close 4001 without one. The session clock is manual; token lifetimes are real (the JWT library
/// checks them against the system clock), so every token here is valid for minutes.
/// </summary>
public sealed class SessionExpiryTests : IAsyncLifetime
{
    private SessionHarness _harness = null!;

    public async Task InitializeAsync() => _harness = await SessionHarness.StartAsync(auth: a =>
    {
        a.ClockSkew = TimeSpan.FromSeconds(30);
        a.ExpiryWarning = TimeSpan.FromSeconds(60);
    });

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    private TokenFactory Tokens => _harness.Tokens;

    [Fact]
    public async Task TheServerWarnsBeforeExpiryAndClosesWith4001WithoutAFreshToken()
    {
        DateTimeOffset exp = _harness.Time.GetUtcNow().AddMinutes(5);
        FakeConnection client = await _harness.ConnectAsync(Tokens.Create("alice", expires: exp));
        DateTimeOffset deadline = DateTimeOffset.FromUnixTimeSeconds(exp.ToUnixTimeSeconds()) + TimeSpan.FromSeconds(30); // exp has whole seconds
        double expiredBefore = SecurityCloseCount();

        // Nothing until the warning is due (deadline - 60 s).
        Advance(TimeSpan.FromMinutes(4));
        Assert.DoesNotContain(client.Received, m => m.AuthExpiring is not null);
        Advance(TimeSpan.FromSeconds(40));
        ServerMessage warning = Assert.Single(client.Received, m => m.AuthExpiring is not null);
        Assert.Equal(deadline.ToUnixTimeMilliseconds(), warning.AuthExpiring.ExpiresAtMs);
        Assert.Equal(0UL, warning.RequestId);
        Assert.Null(client.CloseCode);

        // The warning is sent once; the close comes at the deadline.
        Advance(TimeSpan.FromSeconds(40));
        Assert.Single(client.Received, m => m.AuthExpiring is not null);
        Assert.Null(client.CloseCode);
        Advance(TimeSpan.FromSeconds(15));
        Assert.Equal(SecurityCloseCodes.AuthExpired, client.CloseCode);
        Assert.True(SecurityCloseCount() - expiredBefore >= 1);
    }

    [Fact]
    public async Task AFreshTokenForTheSameUserMovesTheDeadline()
    {
        DateTimeOffset exp = _harness.Time.GetUtcNow().AddMinutes(2);
        FakeConnection client = await _harness.ConnectAsync(Tokens.Create("alice", expires: exp));
        await client.SubscribeAndWaitAsync("reauth/1");
        Advance(TimeSpan.FromSeconds(95));
        Assert.Single(client.Received, m => m.AuthExpiring is not null);

        await client.SendAsync(new ClientMessage { RequestId = 77, Reauth = new Reauthenticate { Token = Tokens.Create("alice", expires: exp.AddMinutes(10)) } });
        Assert.DoesNotContain(client.Received, m => m.Error is not null);

        // Past the old deadline the connection is still open and working.
        Advance(TimeSpan.FromMinutes(2));
        Assert.Null(client.CloseCode);
        await client.SubmitAsync("reauth/1", 1, 0, SessionHarness.Insert(0, "still here"));
        Assert.NotNull((await client.NextAsync(m => m.Ack is not null || m.Error is not null)).Ack);

        // The new token gets its own warning and deadline.
        Advance(TimeSpan.FromMinutes(8));
        Assert.Equal(2, client.Received.Count(m => m.AuthExpiring is not null));
        Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(SecurityCloseCodes.AuthExpired, client.CloseCode);
    }

    [Fact]
    public async Task ResendingTheSameTokenNeitherMovesTheDeadlineNorRepeatsTheWarning()
    {
        string token = Tokens.Create("alice", expires: _harness.Time.GetUtcNow().AddMinutes(2));
        FakeConnection client = await _harness.ConnectAsync(token);
        Advance(TimeSpan.FromSeconds(95));
        Assert.Single(client.Received, m => m.AuthExpiring is not null);

        await client.SendAsync(new ClientMessage { Reauth = new Reauthenticate { Token = token } });
        Advance(TimeSpan.FromSeconds(20));
        Assert.Single(client.Received, m => m.AuthExpiring is not null);
        Assert.DoesNotContain(client.Received, m => m.Error is not null);
        Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(SecurityCloseCodes.AuthExpired, client.CloseCode);
    }

    [Fact]
    public async Task AnInvalidReauthenticateIsAnErrorAndTheOldDeadlineStands()
    {
        DateTimeOffset exp = _harness.Time.GetUtcNow().AddMinutes(2);
        FakeConnection client = await _harness.ConnectAsync(Tokens.Create("alice", expires: exp));
        foreach (string bad in new[] { "garbage", Tokens.Create("alice", expires: DateTimeOffset.UtcNow.AddMinutes(-5)), Tokens.Create("alice", audience: "elsewhere") })
        {
            await client.SendAsync(new ClientMessage { RequestId = 5, Reauth = new Reauthenticate { Token = bad } });
            ServerMessage error = await client.NextErrorAsync();
            Assert.Equal(ErrorCode.Unauthorized, error.Error.Code);
            Assert.Equal(5UL, error.RequestId);
            Assert.False(error.Error.Retryable);
        }

        Assert.Null(client.CloseCode);
        Advance(TimeSpan.FromMinutes(3));
        Assert.Equal(SecurityCloseCodes.AuthExpired, client.CloseCode);
    }

    [Fact]
    public async Task AConnectionCannotChangeItsUser()
    {
        FakeConnection client = await _harness.ConnectAsync(Tokens.Create("alice"));
        await client.SendAsync(new ClientMessage { RequestId = 3, Reauth = new Reauthenticate { Token = Tokens.Create("mallory") } });
        Assert.Equal(ErrorCode.Forbidden, (await client.NextErrorAsync()).Error.Code);
        Assert.Equal(SecurityCloseCodes.Forbidden, client.CloseCode);
    }

    [Fact]
    public async Task AuthorizationIsRecheckedOnReauthenticate()
    {
        FakeConnection client = await _harness.ConnectAsync(Tokens.Create("alice", """{"write":["a/*","b/*"]}"""));
        await client.SubscribeAndWaitAsync("a/1", requestId: 10);
        await client.SubscribeAndWaitAsync("b/1", requestId: 11);

        // The fresh token no longer grants b/*, and a/* only for reading.
        await client.SendAsync(new ClientMessage { RequestId = 12, Reauth = new Reauthenticate { Token = Tokens.Create("alice", """{"read":["a/*"]}""") } });
        ServerMessage dropped = await client.NextErrorAsync();
        Assert.Equal(ErrorCode.Forbidden, dropped.Error.Code);
        Assert.Equal("b/1", dropped.Error.DocId);
        Assert.Equal(0UL, dropped.RequestId);
        Assert.Null(client.CloseCode);

        await client.SubmitAsync("b/1", 1, 0, SessionHarness.Insert(0, "x"));
        Assert.Equal(ErrorCode.NotSubscribed, (await client.NextErrorAsync()).Error.Code);
        await client.SubmitAsync("a/1", 2, 0, SessionHarness.Insert(0, "x"));
        Assert.Equal(ErrorCode.Forbidden, (await client.NextErrorAsync()).Error.Code);
        await client.SubscribeAsync("b/1", requestId: 13);
        Assert.Equal(ErrorCode.Forbidden, (await client.NextErrorAsync()).Error.Code);
    }

    [Fact]
    public async Task ATokenAboutToExpireIsWarnedRightAfterWelcomeNotBefore()
    {
        DateTimeOffset exp = _harness.Time.GetUtcNow().AddSeconds(20);
        AuthResult result = await _harness.Security.Validator!.ValidateAsync(Tokens.Create("alice", expires: exp), default);
        FakeConnection client = await _harness.OpenAsync(result.Principal!, hello: false);
        Advance(TimeSpan.FromSeconds(2));
        Assert.Empty(client.Received);

        await client.SendAsync(new ClientMessage { RequestId = 1, Hello = new Hello { ProtocolVersion = 1 } });
        Assert.Equal(2, client.Received.Count);
        Assert.NotNull(client.Received[0].Welcome);
        Assert.NotNull(client.Received[1].AuthExpiring);
    }

    [Fact]
    public async Task AnonymousSessionsNeverExpireAndIgnoreReauthenticate()
    {
        await using SessionHarness anonymous = await SessionHarness.StartAsync(auth: a => a.Mode = AuthMode.Anonymous);
        FakeConnection client = await anonymous.OpenAsync(SessionPrincipal.Anonymous);
        Assert.True(anonymous.Services.ClientIds.IsIssued(client.ClientId, userId: null));
        await client.SendAsync(new ClientMessage { Reauth = new Reauthenticate { Token = "anything" } });
        anonymous.Time.Advance(TimeSpan.FromDays(2));
        Assert.Null(client.CloseCode);
        Assert.DoesNotContain(client.Received, m => m.Error is not null || m.AuthExpiring is not null);
        await client.SubscribeAndWaitAsync("any/doc");
    }

    private void Advance(TimeSpan delta) => _harness.Time.Advance(delta);

    private static double SecurityCloseCount() => SecurityMetrics.ExpiredCloses.Value;
}
