using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Server.Tests.Security;

/// <summary>Per-document rights on subscribe and submit, and the binding of client ids to users.</summary>
public sealed class SessionAuthorizationTests : IAsyncLifetime
{
    private SessionHarness _harness = null!;

    private TokenFactory Tokens => _harness.Tokens;

    public async Task InitializeAsync() => _harness = await SessionHarness.StartAsync();

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    [Fact]
    public async Task AReadOnlyClientsSubmitIsRefusedAndChangesNothing()
    {
        FakeConnection writer = await _harness.ConnectAsync(Tokens.Create("writer", """{"write":["docs/*"]}"""));
        FakeConnection reader = await _harness.ConnectAsync(Tokens.Create("reader", """{"read":["docs/*"]}"""));
        await writer.SubscribeAndWaitAsync("docs/a");
        await writer.SubmitAsync("docs/a", 1, 0, SessionHarness.Insert(0, "hello"));
        Assert.Equal(1, (await writer.NextAsync(m => m.Ack is not null)).Ack.Version);

        Snapshot before = await reader.SubscribeAndWaitAsync("docs/a");
        Assert.Equal("hello", before.Text);
        await reader.SubmitAsync("docs/a", 1, 1, SessionHarness.Insert(0, "evil "), requestId: 42);
        ServerMessage refused = await reader.NextErrorAsync();
        Assert.Equal(ErrorCode.Forbidden, refused.Error.Code);
        Assert.False(refused.Error.Retryable);
        Assert.Equal(42UL, refused.RequestId);
        Assert.Equal(1UL, refused.Error.ClientSeq);
        Assert.Equal("docs/a", refused.Error.DocId);
        Assert.Null(reader.CloseCode);

        // The writer's next op becomes version 2: the refused op never took a version.
        await writer.SubmitAsync("docs/a", 2, 1, SessionHarness.Insert(5, " world"));
        Assert.Equal(2, (await writer.NextAsync(m => m.Ack is not null)).Ack.Version);
        FakeConnection observer = await _harness.ConnectAsync(Tokens.Create("observer", """{"read":["docs/a"]}"""));
        Snapshot after = await observer.SubscribeAndWaitAsync("docs/a");
        Assert.Equal(2, after.Version);
        Assert.Equal("hello world", after.Text);
    }

    [Fact]
    public async Task SubscribingWithoutTheReadRightIsForbiddenAndOpensNothing()
    {
        FakeConnection client = await _harness.ConnectAsync(Tokens.Create("alice", """{"read":["org1/*"],"write":["org1/mine"]}"""));
        int open = _harness.Documents.OpenCount;
        await client.SubscribeAsync("org2/secret", requestId: 5);
        ServerMessage refused = await client.NextErrorAsync();
        Assert.Equal(ErrorCode.Forbidden, refused.Error.Code);
        Assert.Equal(5UL, refused.RequestId);
        Assert.Equal("org2/secret", refused.Error.DocId);
        Assert.Equal(open, _harness.Documents.OpenCount);

        // Rights by prefix and exact id; write implies read.
        await client.SubscribeAndWaitAsync("org1/any/doc", requestId: 6);
        await client.SubscribeAndWaitAsync("org1/mine", requestId: 8);
        await client.SubmitAsync("org1/mine", 1, 0, SessionHarness.Insert(0, "x"));
        Assert.NotNull((await client.NextAsync(m => m.Ack is not null || m.Error is not null)).Ack);
        await client.SubmitAsync("org1/any/doc", 2, 0, SessionHarness.Insert(0, "x"));
        Assert.Equal(ErrorCode.Forbidden, (await client.NextErrorAsync()).Error.Code);
    }

    [Fact]
    public async Task OpsCarryTheTokenSubjectAsAuthor()
    {
        FakeConnection alice = await _harness.ConnectAsync(Tokens.Create("alice"));
        FakeConnection bob = await _harness.ConnectAsync(Tokens.Create("bob"));
        await alice.SubscribeAndWaitAsync("authors/1");
        await bob.SubscribeAndWaitAsync("authors/1");
        await alice.SubmitAsync("authors/1", 1, 0, SessionHarness.Insert(0, "a"));
        ServerMessage ops = await bob.NextAsync(m => m.Ops is not null);
        Assert.Equal("alice", ops.Ops.Ops_[0].Author);
        Assert.Equal(alice.ClientId, ops.Ops.Ops_[0].ClientId);
    }

    [Fact]
    public async Task ClientIdsAreBoundToTheirUser()
    {
        FakeConnection alice = await _harness.ConnectAsync(Tokens.Create("alice"));
        SessionPrincipal alicePrincipal = (await _harness.Security.Validator!.ValidateAsync(Tokens.Create("alice"), default)).Principal!;
        Assert.True(_harness.Services.ClientIds.IsIssued(alice.ClientId, "alice"));

        // Alice resumes her own id.
        FakeConnection again = await _harness.OpenAsync(alicePrincipal, resumeClientId: alice.ClientId);
        ServerMessage welcome = again.Received.First(m => m.Welcome is not null);
        Assert.True(welcome.Welcome.Resumed);
        Assert.Equal(alice.ClientId, again.ClientId);

        // Bob cannot take over Alice's id (and with it her dedupe state): he gets a fresh one of his own.
        SessionPrincipal bob = (await _harness.Security.Validator!.ValidateAsync(Tokens.Create("bob"), default)).Principal!;
        FakeConnection thief = await _harness.OpenAsync(bob, resumeClientId: alice.ClientId);
        ServerMessage bobsWelcome = thief.Received.First(m => m.Welcome is not null);
        Assert.False(bobsWelcome.Welcome.Resumed);
        Assert.NotEqual(alice.ClientId, thief.ClientId);
        Assert.True(_harness.Services.ClientIds.IsIssued(thief.ClientId, "bob"));
        Assert.False(_harness.Services.ClientIds.IsIssued(alice.ClientId, "bob"));

        // An id from before authentication (or one made up) is not resumed either.
        FakeConnection legacy = await _harness.OpenAsync(bob, resumeClientId: "AAAAAAAAAAAAAAAAAAAAAA");
        Assert.False(legacy.Received.First(m => m.Welcome is not null).Welcome.Resumed);
    }

    [Fact]
    public async Task TheOwnerOfAClientIdKeepsItsDedupeState()
    {
        FakeConnection alice = await _harness.ConnectAsync(Tokens.Create("alice"));
        await alice.SubscribeAndWaitAsync("dedupe/1");
        await alice.SubmitAsync("dedupe/1", 1, 0, SessionHarness.Insert(0, "a"));
        await alice.NextAsync(m => m.Ack is not null);

        // Bob tries to resume Alice's id and submit high seqs with it: they land under his own id.
        SessionPrincipal bob = (await _harness.Security.Validator!.ValidateAsync(Tokens.Create("bob"), default)).Principal!;
        FakeConnection thief = await _harness.OpenAsync(bob, resumeClientId: alice.ClientId);
        await thief.SubscribeAndWaitAsync("dedupe/1");
        await thief.SubmitAsync("dedupe/1", 1000, 1, SessionHarness.Insert(0, "b"));
        await thief.NextAsync(m => m.Ack is not null);

        // Alice's next seq is still accepted.
        await alice.SubmitAsync("dedupe/1", 2, 2, SessionHarness.Insert(0, "c"));
        ServerMessage answer = await alice.NextAsync(m => m.Ack is not null || m.Error is not null);
        Assert.NotNull(answer.Ack);
        Assert.False(answer.Ack.Duplicate);
    }
}
