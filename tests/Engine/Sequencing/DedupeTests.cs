using Collab.Engine.Sequencing;
using static Collab.Engine.Tests.Sequencing.DocumentSequencerTests;

namespace Collab.Engine.Tests.Sequencing;

public sealed class DedupeTests
{
    [Fact]
    public async Task Resubmission_returns_the_original_version_and_is_not_applied_again()
    {
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(new NoopDurabilityStage(), listener);

        SubmitResult first = await sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout();
        await sequencer.SubmitAsync(Sub("b", 1, 1, Ins(1, 'b'))).WithTimeout();
        SubmitResult again = await sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout();

        Assert.Equal(SubmitStatus.Acked, first.Status);
        Assert.Equal(SubmitStatus.Duplicate, again.Status);
        Assert.Equal(1, again.Version);
        Assert.True(again.IsSuccess);
        Assert.Equal(2, sequencer.Version);
        Assert.Equal("ab", listener.Batches[^1].Snapshot);
    }

    [Fact]
    public async Task Client_seqs_may_skip_and_an_older_seq_is_answered_from_the_history()
    {
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(new NoopDurabilityStage(), listener);

        await sequencer.SubmitAsync(Sub("a", 5, 0, Ins(0, 'a'))).WithTimeout();
        SubmitResult skipped = await sequencer.SubmitAsync(Sub("a", 9, 1, Ins(1, 'b'))).WithTimeout();
        SubmitResult older = await sequencer.SubmitAsync(Sub("a", 5, 0, Ins(0, 'a'))).WithTimeout();
        SubmitResult neverSent = await sequencer.SubmitAsync(Sub("a", 7, 2, Ins(0, 'c'))).WithTimeout();
        SubmitResult latestAgain = await sequencer.SubmitAsync(Sub("a", 9, 1, Ins(1, 'b'))).WithTimeout();

        // Seq 5 was sequenced at version 1: a resend of it behind seq 9 is that op, not a refusal. Seq 7 never was:
        // it is sequenced now, and seq 9 stays the client's latest.
        Assert.Equal((SubmitStatus.Acked, 2L), (skipped.Status, skipped.Version));
        Assert.Equal((SubmitStatus.Duplicate, 1L), Result(older));
        Assert.Equal((SubmitStatus.Acked, 3L), Result(neverSent));
        Assert.Equal((SubmitStatus.Duplicate, 2L), Result(latestAgain));
        Assert.Equal("cab", listener.Batches[^1].Snapshot);
    }

    [Fact]
    public async Task Resubmission_while_the_original_commit_is_pending_completes_with_it()
    {
        var stage = new ControllableDurabilityStage();
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(stage, listener);

        Task<SubmitResult> original = sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).AsTask();
        Task<SubmitResult> resend = sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).AsTask();
        await sequencer.BarrierAsync();

        // A duplicate must not be acknowledged before the op it duplicates is durable.
        Assert.False(resend.IsCompleted);
        Assert.Equal(1, stage.CallCount);

        stage[0].Complete();
        Assert.Equal((SubmitStatus.Acked, 1L), (await original.WithTimeout()).StatusAndVersion());
        Assert.Equal((SubmitStatus.Duplicate, 1L), (await resend.WithTimeout()).StatusAndVersion());
        Assert.Equal(0, sequencer.PendingCount);
    }

    [Fact]
    public async Task Dedupe_survives_a_reload_from_snapshot_and_later_ops()
    {
        var options = new SequencerOptions();
        var stage = new RecordingDurabilityStage();
        SnapshotRecord snapshot;
        await using (var sequencer = Create(stage, new RecordingListener<string, ListOp>(), options))
        {
            await sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout();
            await sequencer.SubmitAsync(Sub("b", 3, 1, Ins(1, 'b'))).WithTimeout();
            snapshot = await sequencer.RunExclusiveAsync(view => view.CreateSnapshotRecord()).WithTimeout();
            await sequencer.SubmitAsync(Sub("c", 1, 2, Ins(2, 'c'))).WithTimeout();
            await sequencer.SubmitAsync(Sub("a", 2, 3, Ins(3, 'd'))).WithTimeout();
        }

        Assert.Equal((2L, "ab"), (snapshot.Version, snapshot.Text));
        DocumentState<string, ListOp> state = DocumentState.Load(TestListType.Instance, snapshot, stage.OpsAfter("doc", 2), options);
        Assert.Equal((4L, "abcd"), (state.Version, state.Snapshot));

        var listener = new RecordingListener<string, ListOp>(startVersion: 4);
        await using var reloaded = Create(stage, listener, options, history: new MemoryHistorySource((after, to) => stage.OpsAfter("doc", after, to)), initial: state);

        // b's last op is known from the snapshot's metadata, c's and a's latest from the replayed ops; a's older seq from the log.
        Assert.Equal((SubmitStatus.Duplicate, 2L), Result(await reloaded.SubmitAsync(Sub("b", 3, 1, Ins(1, 'b'))).WithTimeout()));
        Assert.Equal((SubmitStatus.Duplicate, 3L), Result(await reloaded.SubmitAsync(Sub("c", 1, 2, Ins(2, 'c'))).WithTimeout()));
        Assert.Equal((SubmitStatus.Duplicate, 4L), Result(await reloaded.SubmitAsync(Sub("a", 2, 3, Ins(3, 'd'))).WithTimeout()));
        Assert.Equal((SubmitStatus.Duplicate, 1L), Result(await reloaded.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout()));
        Assert.Equal((SubmitStatus.Acked, 5L), Result(await reloaded.SubmitAsync(Sub("b", 4, 4, Ins(4, 'e'))).WithTimeout()));
        Assert.Equal("abcde", listener.Batches[^1].Snapshot);
    }

    [Fact]
    public async Task Snapshot_metadata_leaves_out_ops_that_are_not_committed_yet()
    {
        var stage = new ControllableDurabilityStage();
        var options = new SequencerOptions();
        await using var sequencer = Create(stage, new RecordingListener<string, ListOp>(), options);

        Task<SubmitResult> first = sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).AsTask();
        await sequencer.BarrierAsync();
        stage[0].Complete();
        await first.WithTimeout();
        Task<SubmitResult> second = sequencer.SubmitAsync(Sub("a", 2, 1, Ins(1, 'b'))).AsTask();
        Task<SubmitResult> third = sequencer.SubmitAsync(Sub("b", 1, 1, Ins(1, 'c'))).AsTask();
        await sequencer.BarrierAsync();

        SnapshotRecord snapshot = await sequencer.RunExclusiveAsync(view => view.CreateSnapshotRecord()).WithTimeout();
        DedupeState decoded = DedupeState.Decode(snapshot.Meta.Span, options);

        Assert.Equal((1L, "a"), (snapshot.Version, snapshot.Text));
        Assert.True(decoded.TryGetClient("a", out long seq, out long version));
        Assert.Equal((1L, 1L), (seq, version));
        Assert.False(decoded.TryGetClient("b", out _, out _));

        stage[1].Complete();
        stage[2].Complete();
        await Task.WhenAll(second, third).WithTimeout();
    }

    [Fact]
    public async Task Forgotten_client_with_an_old_base_is_looked_up_in_the_window()
    {
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(new NoopDurabilityStage(), listener, new SequencerOptions { DedupeMaxClients = 2 });

        await sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout();
        await sequencer.SubmitAsync(Sub("b", 1, 1, Ins(0, 'b'))).WithTimeout();
        await sequencer.SubmitAsync(Sub("c", 1, 2, Ins(0, 'c'))).WithTimeout();

        // "a" (last op at version 1) was evicted: its op (base 0) might be a resend of version 1, and the window says it is.
        // "d" was never sequenced: the window holds every op after its base, none is its.
        SubmitResult resend = await sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout();
        SubmitResult stale = await sequencer.SubmitAsync(Sub("d", 1, 0, Ins(0, 'd'))).WithTimeout();
        SubmitResult fresh = await sequencer.SubmitAsync(Sub("e", 1, 1, Ins(0, 'e'))).WithTimeout();

        Assert.Equal((SubmitStatus.Duplicate, 1L), Result(resend));
        Assert.Equal((SubmitStatus.Acked, 4L), Result(stale));
        Assert.Equal((SubmitStatus.Acked, 5L), Result(fresh));
        Assert.Equal("edcba", listener.Batches[^1].Snapshot);
    }

    [Fact]
    public void Clients_are_forgotten_after_the_retention_window()
    {
        var state = new DedupeState(maxClients: 100, retentionVersions: 3);
        state.Record("a", 1, 1);
        state.Record("b", 1, 2);
        state.Record("b", 2, 4);
        Assert.True(state.TryGetClient("a", out _, out _));

        state.Record("b", 3, 5);

        Assert.False(state.TryGetClient("a", out _, out _));
        Assert.Equal(1, state.Horizon);
        Assert.Equal(DedupeDecision.Expired, state.Check("a", 1, 0, out _));
        Assert.Equal(DedupeDecision.New, state.Check("a", 1, 1, out _));
        Assert.Equal(DedupeDecision.Duplicate, state.Check("b", 3, 4, out long version));
        Assert.Equal(5, version);
        Assert.Throws<ArgumentOutOfRangeException>(() => state.Record("c", 1, 5));
    }

    [Fact]
    public void Encoded_state_round_trips()
    {
        var options = new SequencerOptions();
        var state = new DedupeState(options);
        state.Record("alpha", 3, 10);
        state.Record("βeta", 1, 11);
        state.Record("alpha", 7, 12);

        byte[] bytes = state.Encode();
        DedupeState decoded = DedupeState.Decode(bytes, options);

        Assert.Equal(bytes.Length, state.GetEncodedLength());
        Assert.Equal(2, decoded.Count);
        Assert.True(decoded.TryGetClient("alpha", out long seq, out long version));
        Assert.Equal((7L, 12L), (seq, version));
        Assert.True(decoded.TryGetClient("βeta", out seq, out version));
        Assert.Equal((1L, 11L), (seq, version));
        Assert.Equal(bytes, decoded.Encode());
        Assert.Equal(0, DedupeState.Decode([], options).Count);
    }

    [Fact]
    public void Decoding_into_a_smaller_bound_evicts_the_oldest_and_raises_the_horizon()
    {
        var state = new DedupeState(new SequencerOptions());
        state.Record("a", 1, 1);
        state.Record("b", 1, 2);
        state.Record("c", 1, 3);

        DedupeState decoded = DedupeState.Decode(state.Encode(), new SequencerOptions { DedupeMaxClients = 2 });

        Assert.Equal(2, decoded.Count);
        Assert.False(decoded.TryGetClient("a", out _, out _));
        Assert.Equal(1, decoded.Horizon);
    }

    [Theory]
    [InlineData(new byte[] { 2, 0, 0 })]                  // unknown format
    [InlineData(new byte[] { 1, 0 })]                     // truncated header
    [InlineData(new byte[] { 1, 0, 1, 1, 0x61, 1 })]      // truncated entry
    [InlineData(new byte[] { 1, 0, 1, 1, 0x61, 0, 1 })]   // seq 0
    [InlineData(new byte[] { 1, 0, 1, 1, 0xFF, 1, 1 })]   // client id not UTF-8
    [InlineData(new byte[] { 1, 0, 1, 0, 1, 1, 1 })]      // empty client id
    [InlineData(new byte[] { 1, 0, 200, 1, 0x61, 1, 1 })] // count larger than the bytes can hold
    [InlineData(new byte[] { 1, 0, 1, 1, 0x61, 1, 1, 9 })] // trailing bytes
    [InlineData(new byte[] { 1, 0, 2, 1, 0x61, 1, 5, 1, 0x62, 1, 5 })] // versions not increasing
    [InlineData(new byte[] { 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0 })] // varint overflow
    public void Corrupt_metadata_is_rejected(byte[] bytes)
    {
        OtException error = Assert.Throws<OtException>(() => DedupeState.Decode(bytes, new SequencerOptions()));
        Assert.Equal(OtErrorCode.Malformed, error.Code);
    }

    private static (SubmitStatus, long) Result(SubmitResult result) => (result.Status, result.Version);
}
