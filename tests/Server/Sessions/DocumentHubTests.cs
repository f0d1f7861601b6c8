using Collab.Engine.Sequencing;
using Collab.Engine.Text;
using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Server.Tests.Sessions;

/// <summary>The document hub over the real session layer (sessions, sequencer, SQLite op log), driven without sockets.</summary>
public sealed class DocumentHubTests : IAsyncLifetime
{
    private SessionHarness _harness = null!;

    public async Task InitializeAsync() => _harness = await SessionHarness.StartAsync();

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    /// <summary>
    /// Regression (issue 13 §1): SendDueDuplicateAcks compacted its list inside a foreach, so a committed batch while a
    /// duplicate ack still had to wait for a later version threw "Collection was modified" from the listener and the
    /// document stopped sequencing (on cluster replicas after reconnects). A replica's hub queues such an ack when the
    /// owner reports a duplicate the replica has not received yet; here the hub is asked for it directly.
    /// </summary>
    [Fact]
    public async Task A_duplicate_ack_waiting_for_a_later_version_does_not_stop_the_document_and_is_sent_once_it_is_reached()
    {
        FakeConnection author = await _harness.OpenAsync(SessionPrincipal.Anonymous);
        FakeConnection other = await _harness.OpenAsync(SessionPrincipal.Anonymous);
        await author.SubscribeAndWaitAsync("dup/1");
        await other.SubscribeAndWaitAsync("dup/1");
        DocumentHub hub = await _harness.Documents.AcquireAsync("dup/1", CancellationToken.None);
        try
        {
            var subscription = new Subscription(author.Session, hub);
            await hub.SubscribeAsync(subscription, fromVersion: 0, snapshot: false, requestId: 0, CancellationToken.None);

            // Due at version 2; the document is at 0.
            await hub.SendDuplicateAckAsync(subscription, clientSeq: 7, version: 2, requestId: 99);
            await other.SubmitAsync("dup/1", 1, 0, SessionHarness.Insert(0, "a"));
            await other.NextAsync(m => m.Ack is { Version: 1 });
            await ((DocumentHub<Rope, TextOp>)hub).Sequencer.RunExclusiveAsync(_ => true);
            Assert.Equal(SequencerState.Active, ((DocumentHub<Rope, TextOp>)hub).Sequencer.State);
            Assert.DoesNotContain(author.Received, m => m.Ack is not null);

            await other.SubmitAsync("dup/1", 2, 1, SessionHarness.Insert(1, "b"));
            ServerMessage ack = await author.NextAsync(m => m.Ack is not null);
            Assert.Equal((7ul, 2L, true, 99ul), (ack.Ack.ClientSeq, ack.Ack.Version, ack.Ack.Duplicate, ack.RequestId));
            Assert.Equal(SequencerState.Active, ((DocumentHub<Rope, TextOp>)hub).Sequencer.State);
            Assert.Null(author.CloseCode);
            Assert.Null(other.CloseCode);
        }
        finally
        {
            hub.ReleaseRef();
        }
    }
}
