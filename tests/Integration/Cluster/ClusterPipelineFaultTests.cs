using Collab.Integration.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Cluster;

/// <summary>
/// Issue 13 §2: pipelining writers (several submits in flight per connection, through the round-robin balancer, so some
/// on the owner and some forwarding from replicas) under a SIGTERM drain of the owner, a nats-server restart, and a
/// SIGKILL of the owner. Before: ops that were committed and acknowledged got non-retryable SEQ_ALREADY_USED when their
/// resend came behind a later seq, and UNAVAILABLE arrived for ops the owner did sequence. Now: zero refusals of any op,
/// every op acknowledged, every acknowledged op in the log exactly once at its acknowledged version, every node serving
/// the log's text.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterPipelineFaultTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private static readonly string[] Documents = ["pipe/1", "pipe/2", "pipe/3"];

    [Theory]
    [InlineData("drain")]
    [InlineData("nats")]
    [InlineData("kill")]
    public async Task Pipelining_writers_lose_nothing_and_get_no_refusal_through_a_fault(string fault)
    {
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output);
        var writers = new List<PipelineWriter>();
        for (int i = 0; i < 6; i++)
        {
            writers.Add(new PipelineWriter(() => cluster.Balancer.WebSocketUri, Documents[i % Documents.Length], $"{fault[0]}{i}", window: 4));
        }

        try
        {
            using var stopSubmitting = new CancellationTokenSource();
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            Task running = Task.WhenAll(writers.Select(w => Task.Run(() => w.RunAsync(stopSubmitting.Token, deadline.Token))));
            await Task.Delay(2000);
            int before = writers.Sum(w => w.Acked.Count);

            (_, string owner, string[] owned) = await cluster.BusiestOwnerAsync();
            switch (fault)
            {
                case "drain":
                    Assert.Equal(0, await cluster.Node(owner).StopAsync());
                    break;
                case "nats":
                    await cluster.Nats.StopAsync();
                    await Task.Delay(1500);
                    await cluster.Nats.StartAgainAsync();
                    break;
                default:
                    await cluster.Node(owner).KillAsync();
                    break;
            }

            output.WriteLine($"{fault} (owner {owner} of {string.Join(", ", owned)}) after {before} acks");
            await Task.Delay(TimeSpan.FromSeconds(5));
            int afterFault = writers.Sum(w => w.Acked.Count);
            await stopSubmitting.CancelAsync();
            await running;

            foreach (PipelineWriter writer in writers)
            {
                output.WriteLine($"{writer.ClientId} on {writer.DocId}: {writer.Submitted} submitted, {writer.Acked.Count} acked, {writer.Unresolved} unresolved, {writer.Refused.Count} refused, {writer.RetryableErrors} retryable errors, {writer.Connections} connections");
            }

            Assert.All(writers, w => Assert.Empty(w.Refused));
            Assert.All(writers, w => Assert.Empty(w.Anomalies));
            Assert.All(writers, w => Assert.Equal(0, w.Unresolved));
            Assert.All(writers, w => Assert.Equal(w.Submitted, w.Acked.Count));
            Assert.True(afterFault > before + 50, $"only {afterFault - before} ops were acknowledged after the {fault}");
            if (fault != "nats")
            {
                Assert.Contains(writers, w => w.Connections > 1); // the fault did reach the writers
            }

            foreach (string docId in Documents)
            {
                var acked = writers.Where(w => w.DocId == docId)
                    .SelectMany(w => w.Acked.Where(a => a.Version > 0).Select(a => new Acked(docId, w.ClientId, (long)a.Seq, a.Version)));
                IReadOnlyList<LoggedOp> log = await cluster.VerifyLogAsync(docId, acked);
                var logged = log.Select(op => (op.ClientId, (ulong)op.ClientSeq)).ToHashSet();
                Assert.All(writers.Where(w => w.DocId == docId).SelectMany(w => w.Acked.Select(a => (w.ClientId, a.Seq))), key => Assert.Contains(key, logged));
                Assert.Equal(writers.Where(w => w.DocId == docId).Sum(w => w.Submitted), log.Count);
                await cluster.AssertEveryNodeServesAsync(docId, ClusterHarness.Replay(log), TimeSpan.FromSeconds(20));
            }
        }
        catch
        {
            cluster.DumpLogs();
            throw;
        }
        finally
        {
            foreach (PipelineWriter writer in writers)
            {
                await writer.DisposeAsync();
            }
        }
    }
}
