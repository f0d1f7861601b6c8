using Collab.Engine.Text;
using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Tests.Security.Infrastructure;
using Collab.Server.Tests.Transport.Infrastructure;
using CsCheck;

namespace Collab.Server.Tests.Sessions;

/// <summary>
/// A session's subscriptions live inline while there is one and in a dictionary from the second on
/// (<see cref="SubscriptionSet"/>): every transition between the two forms keeps answering like a dictionary,
/// and a session moving between one and several documents is served for exactly the ones it holds.
/// </summary>
public sealed class SubscriptionSetTests
{
    private static readonly string[] DocIds = ["set/a", "set/b", "set/c", "set/d"];

    private enum Step
    {
        Set,
        Remove,
    }

    [Fact]
    public async Task AnswersLikeADictionaryThroughEverySequenceOfSetsAndRemoves()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync(auth: a => a.Mode = AuthMode.Anonymous);
        FakeConnection connection = await harness.OpenAsync(SessionPrincipal.Anonymous);

        // Two subscription objects per document, so a Set of the same document replacing the other is visible.
        Subscription[][] pool = [.. DocIds.Select(id =>
        {
            var hub = new DocumentHub<Rope, TextOp>(harness.Documents, TextDocumentKind.Instance, id, 0);
            return new[] { new Subscription(connection.Session, hub), new Subscription(connection.Session, hub) };
        })];
        Gen<(Step Step, int Doc, int Variant)[]> steps = Gen.Select(Gen.Enum<Step>(), Gen.Int[0, DocIds.Length - 1], Gen.Int[0, 1]).Array[0, 40];

        Property.Check(steps, sequence =>
        {
            var set = default(SubscriptionSet);
            var model = new Dictionary<string, Subscription>(StringComparer.Ordinal);
            foreach ((Step step, int doc, int variant) in sequence)
            {
                string id = DocIds[doc];
                if (step == Step.Set)
                {
                    set.Set(pool[doc][variant]);
                    model[id] = pool[doc][variant];
                }
                else
                {
                    bool removed = set.Remove(id, out Subscription? gone);
                    Assert.Equal(model.Remove(id, out Subscription? expected), removed);
                    Assert.Same(expected, gone);
                }

                Assert.Equal(model.Count, set.Count);
                foreach (string probe in DocIds)
                {
                    Assert.Equal(model.TryGetValue(probe, out Subscription? expected), set.TryGetValue(probe, out Subscription? actual));
                    Assert.Same(expected, actual);
                }

                var all = new List<Subscription>();
                set.CopyTo(all);
                Assert.Equal(model.Values.OrderBy(s => s.DocId, StringComparer.Ordinal), all.OrderBy(s => s.DocId, StringComparer.Ordinal));
            }

            set.Clear();
            Assert.Equal(0, set.Count);
            Assert.False(set.TryGetValue(DocIds[0], out _));
        });
    }

    [Fact]
    public async Task ASessionGoingFromOneDocumentToSeveralAndBackIsServedForExactlyTheOnesItHolds()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync(auth: a => a.Mode = AuthMode.Anonymous);
        FakeConnection reader = await harness.OpenAsync(SessionPrincipal.Anonymous);
        FakeConnection writer = await harness.OpenAsync(SessionPrincipal.Anonymous);
        foreach (string id in DocIds[..3])
        {
            await reader.SubscribeAndWaitAsync(id);
            await writer.SubscribeAndWaitAsync(id);
        }

        // Three subscriptions (the dictionary form), then back to one (the inline form).
        foreach (string id in DocIds[1..3])
        {
            await reader.SendAsync(new ClientMessage { RequestId = 20, Unsubscribe = new Unsubscribe { DocId = id } });
            await reader.NextAsync(m => m.Unsubscribed is not null && m.Unsubscribed.DocId == id);
        }

        ulong seq = 1;
        foreach (string id in DocIds[..3])
        {
            await writer.SubmitAsync(id, seq++, 0, SessionHarness.Insert(0, id));
            await writer.NextAsync(m => m.Ack is not null && m.Ack.DocId == id);
        }

        // Each broadcast is queued before its writer's ack, so by now the reader has all it will ever get of these ops.
        ServerMessage ops = await reader.NextAsync(m => m.Ops is not null);
        Assert.Equal(DocIds[0], ops.Ops.DocId);
        Assert.Single(reader.Received, m => m.Ops is not null);

        // The unsubscribed documents are refused; the kept one still takes the reader's own submits.
        await reader.SubmitAsync(DocIds[1], 1, 1, SessionHarness.Insert(0, "x"), requestId: 31);
        Assert.Equal(ErrorCode.NotSubscribed, (await reader.NextErrorAsync()).Error.Code);
        await reader.SubmitAsync(DocIds[0], 1, 1, SessionHarness.Insert(0, "y"), requestId: 32);
        ServerMessage ack = await reader.NextAsync(m => m.Ack is not null);
        Assert.Equal(DocIds[0], ack.Ack.DocId);
        Assert.Equal(1UL, ack.Ack.ClientSeq);

        // Up to two again, then the connection ends: both hubs are released.
        await reader.SubscribeAndWaitAsync(DocIds[3]);
        DocumentHub kept = await harness.Documents.AcquireAsync(DocIds[0], CancellationToken.None);
        DocumentHub added = await harness.Documents.AcquireAsync(DocIds[3], CancellationToken.None);
        int keptRefs = kept.References;
        int addedRefs = added.References;
        reader.Drop();
        await WaitForAsync(() => kept.References == keptRefs - 1 && added.References == addedRefs - 1);
        kept.ReleaseRef();
        added.ReleaseRef();
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!condition())
        {
            await Task.Delay(10, timeout.Token);
        }
    }
}
