using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Server.Tests.Sessions;

/// <summary>
/// Decision P3 (docs/PROTOCOL.md §5.3): a client's own ops from earlier connections reach it as ops (in the catch-up, and
/// live when they were still in the pipeline); <c>Ack</c> is only for submits made on the current connection.
/// </summary>
public sealed class OwnOpsTests
{
    [Fact]
    public async Task An_op_of_an_earlier_connection_committed_after_the_resume_arrives_as_an_op_and_its_resend_as_a_duplicate_ack()
    {
        GatedStore gated = null!;
        await using SessionHarness harness = await SessionHarness.StartAsync(auth: a => a.Mode = AuthMode.Anonymous, wrapStore: inner => gated = new GatedStore(inner));
        FakeConnection first = await harness.OpenAsync(SessionPrincipal.Anonymous);
        await first.SubscribeAndWaitAsync("own/1");
        try
        {
            // Sequenced, then the connection dies while the commit waits.
            gated.Close();
            await first.SubmitAsync("own/1", 1, 0, SessionHarness.Insert(0, "a"));
            first.Drop();

            FakeConnection second = await harness.OpenAsync(SessionPrincipal.Anonymous, resumeClientId: first.ClientId);
            await second.SendAsync(new ClientMessage { RequestId = 9, Subscribe = new Subscribe { DocId = "own/1", FromVersion = 0 } });
            await second.NextAsync(m => m.Subscribed is not null);
            gated.Open();

            ServerMessage live = await second.NextAsync(m => m.Ops is not null || m.Ack is not null);
            Assert.NotNull(live.Ops);
            Assert.Equal((1L, first.ClientId, 1ul), (live.Ops.Ops_[0].Version, live.Ops.Ops_[0].ClientId, live.Ops.Ops_[0].ClientSeq));

            // Submitted again here: now the answer is an ack, of the original version, marked duplicate.
            await second.SubmitAsync("own/1", 1, 0, SessionHarness.Insert(0, "a"));
            ServerMessage ack = await second.NextAsync(m => m.Ack is not null);
            Assert.Equal((1ul, 1L, true), (ack.Ack.ClientSeq, ack.Ack.Version, ack.Ack.Duplicate));
            Assert.Single(second.Received, m => m.Ack is not null);
        }
        finally
        {
            gated.Open();
        }
    }
}
