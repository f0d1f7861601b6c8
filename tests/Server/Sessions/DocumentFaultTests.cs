using Collab.Engine.Text;
using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Tests.Security.Infrastructure;
using Microsoft.Extensions.Logging;

namespace Collab.Server.Tests.Sessions;

/// <summary>
/// Issue 13 §1: one unexpected exception must not leave a document dead. A fault injected into the delivery of a
/// committed batch (the test seam <see cref="DocumentRegistry.FaultInjection"/>, where the SendDueDuplicateAcks bug threw)
/// is counted and logged at Error with the document id; the document is reloaded from the op log and its subscribers are
/// resumed on the same connections, each from the version it had been sent everything up to.
/// </summary>
public sealed class DocumentFaultTests
{
    [Fact]
    public async Task A_fault_in_delivery_reloads_the_document_and_resumes_its_subscribers_in_place_without_losing_an_ack()
    {
        var logger = new RecordingLogger();
        await using SessionHarness harness = await SessionHarness.StartAsync(logger: logger);
        FakeConnection author = await harness.OpenAsync(SessionPrincipal.Anonymous);
        FakeConnection reader = await harness.OpenAsync(SessionPrincipal.Anonymous);
        await author.SubscribeAndWaitAsync("f/1");
        await reader.SubscribeAndWaitAsync("f/1");
        await reader.SendAsync(new ClientMessage { Presence = new PresenceUpdate { DocId = "f/1", BaseVersion = 0, Selection = new Selection { Anchor = 0, Head = 0 } } });
        await author.NextAsync(m => m.Presence is { Selection: not null });

        await author.SubmitAsync("f/1", 1, 0, SessionHarness.Insert(0, "a"));
        await author.NextAsync(m => m.Ack is { ClientSeq: 1 });
        await reader.NextAsync(m => m.Ops is not null);
        DocumentHub before = await AcquireAsync(harness, "f/1");
        double faultsBefore = SessionMetrics.DocumentFaults.WithLabels("sequencer").Value;
        long loadsBefore = harness.Documents.LoadCount;

        // The batch of version 2 is durable, then its delivery throws: no ack, no op went out for it.
        int injected = 0;
        harness.Documents.FaultInjection = (docId, version) =>
        {
            if (docId == "f/1" && version == 2 && Interlocked.Exchange(ref injected, 1) == 0)
            {
                throw new InvalidOperationException("injected fault");
            }
        };
        await author.SubmitAsync("f/1", 2, 1, SessionHarness.Insert(1, "b"));

        // Resumed: the author gets the ack it missed, the reader the op, on their open connections.
        ServerMessage ack = await author.NextAsync(m => m.Ack is not null);
        Assert.Equal((2ul, 2L, false), (ack.Ack.ClientSeq, ack.Ack.Version, ack.Ack.Duplicate));
        ServerMessage ops = await reader.NextAsync(m => m.Ops is not null);
        Assert.Equal([2L], ops.Ops.Ops_.Select(o => o.Version));
        Assert.Equal(1, SessionMetrics.DocumentFaults.WithLabels("sequencer").Value - faultsBefore);
        Assert.Equal(loadsBefore + 1, harness.Documents.LoadCount);
        Assert.Contains(logger.Entries, e => e.Level == LogLevel.Error && e.Message.Contains("f/1", StringComparison.Ordinal) && e.Message.Contains("unexpected fault", StringComparison.Ordinal));

        // The reloaded document sequences on, and the reader's presence came back with it.
        DocumentHub after = await AcquireAsync(harness, "f/1");
        Assert.NotSame(before, after);
        Assert.IsType<InvalidOperationException>(((DocumentHub<Rope, TextOp>)before).Sequencer.Fault);
        await author.NextAsync(m => m.Presence is { Selection: not null });
        await author.SubmitAsync("f/1", 3, 2, SessionHarness.Insert(2, "c"));
        Assert.Equal(3L, (await author.NextAsync(m => m.Ack is not null)).Ack.Version);
        Assert.Equal([3L], (await reader.NextAsync(m => m.Ops is not null)).Ops.Ops_.Select(o => o.Version));
        Assert.Equal("abc", await ((DocumentHub<Rope, TextOp>)after).Sequencer.RunExclusiveAsync(view => view.Snapshot.ToString()));

        // Nothing was closed, nothing refused: one continuous stream per subscriber.
        Assert.Null(author.CloseCode);
        Assert.Null(reader.CloseCode);
        Assert.DoesNotContain(author.Received.Concat(reader.Received), m => m.Error is not null || m.Redirect is not null);
        Assert.Equal([1L, 2, 3], author.Received.Where(m => m.Ack is not null).Select(m => m.Ack.Version));
        Assert.Equal([1L, 2, 3], reader.Received.Where(m => m.Ops is not null).SelectMany(m => m.Ops.Ops_).Select(o => o.Version));
    }

    [Fact]
    public async Task A_submit_caught_by_the_fault_is_answered_retryably_and_its_resend_is_deduplicated_by_the_reload()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync();
        FakeConnection author = await harness.OpenAsync(SessionPrincipal.Anonymous);
        await author.SubscribeAndWaitAsync("f/2");
        harness.Documents.FaultInjection = (docId, version) =>
        {
            if (docId == "f/2" && version == 1)
            {
                throw new InvalidOperationException("injected fault");
            }
        };

        // Version 1 commits, its delivery throws; the resumed subscription brings its ack (the submit itself was
        // acknowledged by the sequencer, as durable).
        await author.SubmitAsync("f/2", 1, 0, SessionHarness.Insert(0, "x"));
        Assert.Equal(1L, (await author.NextAsync(m => m.Ack is not null)).Ack.Version);
        harness.Documents.FaultInjection = null;

        // A resend of it (as after an UNAVAILABLE) is a duplicate on the reloaded document.
        await author.SubmitAsync("f/2", 1, 0, SessionHarness.Insert(0, "x"));
        ServerMessage duplicate = await author.NextAsync(m => m.Ack is not null);
        Assert.Equal((1L, true), (duplicate.Ack.Version, duplicate.Ack.Duplicate));
        Assert.Null(author.CloseCode);
    }

    private static async Task<DocumentHub> AcquireAsync(SessionHarness harness, string docId)
    {
        DocumentHub hub = await harness.Documents.AcquireAsync(docId, CancellationToken.None);
        hub.ReleaseRef();
        return hub;
    }
}
