using Collab.Protocol.V1;
using Collab.Server.Sessions;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Server.Tests.Sessions;

/// <summary>
/// Documents:MaxSubmitsInFlightPerConnection: a connection with that many submits waiting for their outcome is not
/// read until one completes (the transport awaits the session's task before reading the next frame). Nothing is
/// refused or lost: the pipelining client is only slowed down.
/// </summary>
public sealed class SubmitBackpressureTests
{
    [Fact]
    public async Task AtTheLimitTheConnectionIsNotReadUntilAnOpCommitsAndEveryOpIsAckedInOrder()
    {
        (SessionHarness harness, GatedStore gated, FakeConnection client) = await StartGatedAsync(limit: 3, "pipe/1");
        await using SessionHarness _ = harness;
        double waitsBefore = SessionMetrics.SubmitSlotWaits.Value;
        try
        {
            await PipelineAsync(client, gated, waitsBefore);
        }
        finally
        {
            gated.Open(); // a failed assertion must not leave the harness's commit loop stuck at the gate
        }
    }

    private static async Task PipelineAsync(FakeConnection client, GatedStore gated, double waitsBefore)
    {

        // Pipelined: every op on base version 0 (the server transforms each against the ones sequenced before it).
        Task[] reads = new Task[5];
        for (int i = 0; i < 3; i++)
        {
            reads[i] = client.SubmitAsync("pipe/1", (ulong)i + 1, 0, SessionHarness.Insert(0, "abc"[i].ToString())).AsTask();
        }

        Assert.True(reads[0].IsCompleted);
        Assert.True(reads[1].IsCompleted);
        Assert.True(!reads[2].IsCompleted, string.Join("\n", client.Received)); // the third in flight: the read loop waits before the next frame
        await Task.Delay(100);
        Assert.True(!reads[2].IsCompleted, string.Join("\n", client.Received));
        Assert.True(SessionMetrics.SubmitSlotWaits.Value - waitsBefore >= 1);
        Assert.DoesNotContain(client.Received, m => m.Ack is not null || m.Error is not null);

        gated.Open();
        await reads[2].WaitAsync(TimeSpan.FromSeconds(10));
        for (int i = 3; i < 5; i++)
        {
            await client.SubmitAsync("pipe/1", (ulong)i + 1, 0, SessionHarness.Insert(0, "de"[i - 3].ToString())).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        }

        for (ulong seq = 1; seq <= 5; seq++)
        {
            ServerMessage ack = await client.NextAsync(m => m.Ack is not null);
            Assert.Equal(seq, ack.Ack.ClientSeq);
            Assert.Equal((long)seq, ack.Ack.Version);
        }

        Assert.DoesNotContain(client.Received, m => m.Error is not null);
        Assert.Null(client.CloseCode);
    }

    [Fact]
    public async Task AReadLoopWaitingForASlotEndsWhenTheConnectionCloses()
    {
        (SessionHarness harness, GatedStore gated, FakeConnection client) = await StartGatedAsync(limit: 1, "pipe/2");
        await using SessionHarness _ = harness;

        try
        {
            Task read = client.SubmitAsync("pipe/2", 1, 0, SessionHarness.Insert(0, "x")).AsTask();
            await Task.Delay(50);
            Assert.False(read.IsCompleted);

            client.Drop();
            await read.WaitAsync(TimeSpan.FromSeconds(10));
        }
        finally
        {
            // The op still commits once the store accepts it (it was sequenced), and nothing waits for the gone client.
            gated.Open();
        }

        FakeConnection other = await harness.ConnectAsync(harness.Tokens.Create("reader"));
        Snapshot snapshot = await other.SubscribeAndWaitAsync("pipe/2");
        if (snapshot.Version == 0)
        {
            // Subscribed between the gate opening and the commit: the op arrives as a broadcast instead.
            ServerMessage ops = await other.NextAsync(m => m.Ops is not null);
            Assert.Equal(1, ops.Ops.Ops_[0].Version);
        }
        else
        {
            Assert.Equal(1, snapshot.Version);
            Assert.Equal("x", snapshot.Text);
        }
    }

    [Fact]
    public void TheLimitMustBePositive()
    {
        var options = new DocumentOptions { MaxSubmitsInFlightPerConnection = 0 };
        Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(options.Validate);
    }

    /// <summary>A harness over a gated store, one client subscribed to <paramref name="docId"/>, and the gate closed.</summary>
    private static async Task<(SessionHarness Harness, GatedStore Gated, FakeConnection Client)> StartGatedAsync(int limit, string docId)
    {
        GatedStore gated = null!;
        SessionHarness harness = await SessionHarness.StartAsync(
            documents: d => d.MaxSubmitsInFlightPerConnection = limit,
            wrapStore: inner => gated = new GatedStore(inner));
        FakeConnection client = await harness.ConnectAsync(harness.Tokens.Create("writer"));
        await client.SubscribeAndWaitAsync(docId);
        gated.Close();
        return (harness, gated, client);
    }
}
