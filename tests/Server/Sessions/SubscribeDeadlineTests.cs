using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Server.Tests.Sessions;

/// <summary>
/// A subscribe's wait for its document is bounded by <c>Documents:OpenTimeout</c> and ended by the connection's close,
/// without a registration on the connection's <c>Closed</c> token: on the transport that token's source, and the node a
/// registration leaves on it, would stay with every idle connection (docs/PERFORMANCE.md, "Idle memory per connection").
/// </summary>
public sealed class SubscribeDeadlineTests
{
    [Fact]
    public async Task A_subscribed_connection_never_asks_for_its_Closed_token()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync(auth: a => a.Mode = AuthMode.Anonymous);
        await (await harness.OpenAsync(SessionPrincipal.Anonymous)).SubscribeAndWaitAsync("deadline/0"); // the client id issuer is ready
        FakeConnection connection = await harness.OpenAsync(SessionPrincipal.Anonymous);
        await connection.SubscribeAndWaitAsync("deadline/1");
        await connection.SubscribeAndWaitAsync("deadline/0", requestId: 8);
        Assert.Equal(0, connection.ClosedReads);
    }

    [Fact]
    public async Task Closing_the_connection_ends_a_subscribe_waiting_for_its_document()
    {
        GatedStore gated = null!;
        await using SessionHarness harness = await SessionHarness.StartAsync(
            auth: a => a.Mode = AuthMode.Anonymous,
            documents: d => d.OpenTimeout = TimeSpan.FromMinutes(5),
            wrapStore: inner => gated = new GatedStore(inner));
        FakeConnection connection = await harness.OpenAsync(SessionPrincipal.Anonymous);
        gated.CloseLoads();
        try
        {
            Task subscribe = connection.SubscribeAsync("deadline/2");
            await Task.Delay(200);
            Assert.False(subscribe.IsCompleted); // waiting for the store

            connection.Drop();
            await subscribe.WaitAsync(TimeSpan.FromSeconds(30)); // long before the 5 min OpenTimeout
            Assert.DoesNotContain(connection.Received, m => m.RequestId == 7);
        }
        finally
        {
            gated.OpenLoads();
        }
    }

    [Fact]
    public async Task A_subscribe_the_store_does_not_answer_gets_unavailable_at_the_open_timeout()
    {
        GatedStore gated = null!;
        await using SessionHarness harness = await SessionHarness.StartAsync(
            auth: a => a.Mode = AuthMode.Anonymous,
            documents: d => d.OpenTimeout = TimeSpan.FromMilliseconds(300),
            wrapStore: inner => gated = new GatedStore(inner));
        FakeConnection connection = await harness.OpenAsync(SessionPrincipal.Anonymous);
        gated.CloseLoads();
        try
        {
            await connection.SubscribeAsync("deadline/3");
            ServerMessage error = await connection.NextErrorAsync();
            Assert.Equal((7ul, ErrorCode.Unavailable), (error.RequestId, error.Error.Code));
        }
        finally
        {
            gated.OpenLoads();
        }
    }
}
