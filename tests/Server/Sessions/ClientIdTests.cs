using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Server.Tests.Sessions;

/// <summary>
/// Issue 13 §2b, decision P4: client ids are issued by the server and recognised by it (an HMAC with a key kept in the op
/// store), a made-up id is not resumed, and one client id has one live connection: a second Hello with it takes the
/// session over and the first connection is closed with 4009.
/// </summary>
public sealed class ClientIdTests : IAsyncLifetime
{
    private SessionHarness _harness = null!;

    public async Task InitializeAsync() => _harness = await SessionHarness.StartAsync(auth: a => a.Mode = AuthMode.Anonymous);

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    [Theory]
    [InlineData("my-own-id")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] // the issued length and alphabet, but not signed by this server
    public async Task A_client_id_the_server_did_not_issue_is_not_resumed_and_a_fresh_one_is_issued(string madeUp)
    {
        double refusedBefore = SecurityMetrics.ClientIdRebound.Value;
        FakeConnection client = await _harness.OpenAsync(SessionPrincipal.Anonymous, resumeClientId: madeUp);

        Welcome welcome = client.Received.Single(m => m.Welcome is not null).Welcome;
        Assert.False(welcome.Resumed);
        Assert.NotEqual(madeUp, welcome.ClientId);
        Assert.Equal(ClientIdIssuer.Length, welcome.ClientId.Length);
        Assert.True(_harness.Services.ClientIds.IsIssued(welcome.ClientId, userId: null));
        Assert.Equal(1, SecurityMetrics.ClientIdRebound.Value - refusedBefore);
    }

    [Fact]
    public async Task An_issued_id_is_resumed_and_recognised_by_another_issuer_over_the_same_store_as_after_a_restart()
    {
        FakeConnection first = await _harness.OpenAsync(SessionPrincipal.Anonymous);
        first.Drop();

        FakeConnection again = await _harness.OpenAsync(SessionPrincipal.Anonymous, resumeClientId: first.ClientId);
        Assert.True(again.Received.Single(m => m.Welcome is not null).Welcome.Resumed);
        Assert.Equal(first.ClientId, again.ClientId);

        // A restarted node (or another node of the cluster) reads the same key from the op store.
        var restarted = new ClientIdIssuer(_harness.Documents.Store);
        await restarted.EnsureReadyAsync(CancellationToken.None);
        Assert.True(restarted.IsIssued(first.ClientId, userId: null));
        Assert.False(restarted.IsIssued(first.ClientId, userId: "alice"));

        // Flipping one character of the signature (or of the random part) makes it unrecognised.
        char[] tampered = first.ClientId.ToCharArray();
        tampered[^1] = tampered[^1] == 'A' ? 'B' : 'A';
        Assert.False(restarted.IsIssued(new string(tampered), userId: null));
        tampered = first.ClientId.ToCharArray();
        tampered[0] = tampered[0] == 'A' ? 'B' : 'A';
        Assert.False(restarted.IsIssued(new string(tampered), userId: null));
    }

    [Fact]
    public async Task A_second_live_connection_under_one_id_takes_the_session_over_and_the_first_is_closed_with_4009()
    {
        double replacedBefore = SessionMetrics.SessionsReplaced.WithLabels("local").Value;
        FakeConnection first = await _harness.OpenAsync(SessionPrincipal.Anonymous);
        await first.SubscribeAndWaitAsync("takeover/1");
        await first.SubmitAsync("takeover/1", 1, 0, SessionHarness.Insert(0, "a"));
        await first.NextAsync(m => m.Ack is not null);

        FakeConnection second = await _harness.OpenAsync(SessionPrincipal.Anonymous, resumeClientId: first.ClientId);

        Assert.True(second.Received.Single(m => m.Welcome is not null).Welcome.Resumed);
        Assert.Equal((ushort)CloseCode.SessionReplaced, first.CloseCode);
        Assert.Null(second.CloseCode);
        Assert.Equal(1, SessionMetrics.SessionsReplaced.WithLabels("local").Value - replacedBefore);

        // The new connection carries on under the id: its resend of seq 1 is recognised, seq 2 is sequenced.
        await second.SubscribeAndWaitAsync("takeover/1");
        await second.SubmitAsync("takeover/1", 1, 0, SessionHarness.Insert(0, "a"));
        Assert.Equal((1L, true), Ack(await second.NextAsync(m => m.Ack is not null)));
        await second.SubmitAsync("takeover/1", 2, 1, SessionHarness.Insert(1, "b"));
        Assert.Equal((2L, false), Ack(await second.NextAsync(m => m.Ack is not null)));

        // A third takes it from the second; the first, closed already, is not touched again.
        FakeConnection third = await _harness.OpenAsync(SessionPrincipal.Anonymous, resumeClientId: first.ClientId);
        Assert.Equal((ushort)CloseCode.SessionReplaced, second.CloseCode);
        Assert.Null(third.CloseCode);
    }

    [Fact]
    public async Task A_fresh_id_takes_nothing_over_and_a_closed_session_frees_its_id()
    {
        FakeConnection first = await _harness.OpenAsync(SessionPrincipal.Anonymous);
        FakeConnection other = await _harness.OpenAsync(SessionPrincipal.Anonymous);
        Assert.NotEqual(first.ClientId, other.ClientId);
        Assert.Null(first.CloseCode);

        first.Drop();
        int live = _harness.Services.LiveClients.Count;
        FakeConnection back = await _harness.OpenAsync(SessionPrincipal.Anonymous, resumeClientId: first.ClientId);
        Assert.True(back.Received.Single(m => m.Welcome is not null).Welcome.Resumed);
        Assert.Equal(live + 1, _harness.Services.LiveClients.Count);
        Assert.Null(other.CloseCode);
    }

    private static (long, bool) Ack(ServerMessage message) => (message.Ack.Version, message.Ack.Duplicate);
}
