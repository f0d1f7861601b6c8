using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Server.Tests.Security;

/// <summary>A revoked token or user is refused at once on every node, open sessions included.</summary>
public sealed class RevocationTests
{
    [Fact]
    public async Task RevokingATokenClosesItsSessionsWith4001AndNoOthers()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync();
        FakeConnection first = await harness.ConnectAsync(harness.Tokens.Create("alice", jti: "j-1"));
        FakeConnection sameToken = await harness.ConnectAsync(harness.Tokens.Create("alice", jti: "j-1"));
        FakeConnection otherToken = await harness.ConnectAsync(harness.Tokens.Create("alice", jti: "j-2"));
        FakeConnection bob = await harness.ConnectAsync(harness.Tokens.Create("bob", jti: "j-3"));

        await harness.Security.Revocations.RevokeAsync(new RevocationEntry(RevocationKind.TokenId, "j-1", harness.Time.GetUtcNow().AddHours(1)), default);

        Assert.Equal((ushort)CloseCode.AuthExpired, first.CloseCode);
        Assert.Equal((ushort)CloseCode.AuthExpired, sameToken.CloseCode);
        Assert.Null(otherToken.CloseCode);
        Assert.Null(bob.CloseCode);
        await Assert.ThrowsAsync<InvalidOperationException>(() => harness.ConnectAsync(harness.Tokens.Create("alice", jti: "j-1")));
    }

    [Fact]
    public async Task RevokingAUserClosesAllTheirSessionsWith4003()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync();
        FakeConnection[] alice = [await harness.ConnectAsync(harness.Tokens.Create("alice")), await harness.ConnectAsync(harness.Tokens.Create("alice", jti: "x"))];
        FakeConnection bob = await harness.ConnectAsync(harness.Tokens.Create("bob"));

        await harness.Security.Revocations.RevokeAsync(new RevocationEntry(RevocationKind.User, "alice", harness.Time.GetUtcNow().AddHours(1)), default);

        Assert.All(alice, c => Assert.Equal((ushort)CloseCode.Forbidden, c.CloseCode));
        Assert.Null(bob.CloseCode);
        Assert.Equal(1, harness.Security.Sessions.UserCount);
    }

    [Fact]
    public async Task ARevocationReachesEveryNodeThroughTheBus()
    {
        var bus = new InProcessRevocationBus();
        await using SessionHarness nodeA = await SessionHarness.StartAsync(bus: bus);
        await using SessionHarness nodeB = await SessionHarness.StartAsync(bus: bus);
        FakeConnection onB = await nodeB.ConnectAsync(nodeB.Tokens.Create("alice", jti: "shared"));

        await nodeA.Security.Revocations.RevokeAsync(new RevocationEntry(RevocationKind.TokenId, "shared", DateTimeOffset.UtcNow.AddHours(1)), default);

        Assert.Equal((ushort)CloseCode.AuthExpired, onB.CloseCode);
        Assert.False((await nodeB.Security.Validator!.ValidateAsync(nodeB.Tokens.Create("alice", jti: "shared"), default)).Succeeded);
    }

    [Fact]
    public async Task ARevocationArrivingDuringTheHandshakeClosesTheNewSession()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync();
        AuthResult validated = await harness.Security.Validator!.ValidateAsync(harness.Tokens.Create("alice", jti: "racy"), default);
        Assert.True(validated.Succeeded);

        // The token was checked, then revoked before the session registered.
        await harness.Security.Revocations.RevokeAsync(new RevocationEntry(RevocationKind.TokenId, "racy", harness.Time.GetUtcNow().AddHours(1)), default);
        FakeConnection late = await harness.OpenAsync(validated.Principal!, hello: false);
        Assert.Equal((ushort)CloseCode.AuthExpired, late.CloseCode);
        Assert.Equal(0, harness.Security.Sessions.UserCount);
    }

    [Fact]
    public async Task RepeatedAndExpiredEntriesAreHarmless()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync();
        RevocationList list = harness.Security.Revocations;
        int events = 0;
        list.Revoked += _ => events++;
        DateTimeOffset now = harness.Time.GetUtcNow();
        list.Apply(new RevocationEntry(RevocationKind.User, "u", now.AddMinutes(10)));
        list.Apply(new RevocationEntry(RevocationKind.User, "u", now.AddMinutes(10))); // the same entry again (its own echo from the bus)
        list.Apply(new RevocationEntry(RevocationKind.User, "u", now.AddMinutes(1))); // an older duplicate does not shorten it
        list.Apply(new RevocationEntry(RevocationKind.User, "gone", now.AddMinutes(-1))); // already expired: ignored
        Assert.Equal(1, list.Count);
        Assert.Equal(1, events);
        harness.Time.Advance(TimeSpan.FromMinutes(5));
        Assert.True(list.IsRevoked(SessionPrincipal.ForUser("u", null, now.AddHours(1), DocumentRights.All), out RevocationKind kind));
        Assert.Equal(RevocationKind.User, kind);
        harness.Time.Advance(TimeSpan.FromMinutes(6));
        Assert.False(list.IsRevoked(SessionPrincipal.ForUser("u", null, now.AddHours(1), DocumentRights.All), out _));
    }
}
