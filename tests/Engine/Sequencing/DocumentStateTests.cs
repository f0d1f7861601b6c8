using Collab.Engine.Sequencing;
using static Collab.Engine.Tests.Sequencing.DocumentSequencerTests;

namespace Collab.Engine.Tests.Sequencing;

public sealed class DocumentStateTests
{
    private static OpRecord Record(long version, ListOp op, string clientId = "c", long seq = 1) =>
        new("doc", version, clientId, seq, null, Encode(op), 0);

    private static byte[] Encode(ListOp op)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        TestListType.Instance.Encode(op, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    [Fact]
    public void Load_applies_the_ops_after_the_snapshot_and_keeps_the_newest_within_the_window()
    {
        var options = new SequencerOptions { HistoryMaxOps = 2 };
        var snapshot = new SnapshotRecord("doc", 3, "abc", ReadOnlyMemory<byte>.Empty, 0);
        OpRecord[] ops = [Record(4, Ins(3, 'd'), "x", 1), Record(5, Ins(4, 'e'), "", 0), Record(6, Del(0), "y", 2)];

        DocumentState<string, ListOp> state = DocumentState.Load(TestListType.Instance, snapshot, ops, options);

        Assert.Equal((6L, "bcde"), (state.Version, state.Snapshot));
        Assert.Equal([5L, 6L], state.RecentOps.Select(o => o.Record.Version));
        Assert.Equal(Del(0).ToString(), state.RecentOps[1].Op.ToString());

        // Server-written ops (no client id) are not tracked for dedupe.
        Assert.Equal(2, state.Dedupe.Count);
        Assert.True(state.Dedupe.TryGetClient("y", out long seq, out long version));
        Assert.Equal((2L, 6L), (seq, version));
    }

    [Fact]
    public void Load_without_snapshot_starts_from_the_empty_document()
    {
        DocumentState<string, ListOp> state = DocumentState.Load(TestListType.Instance, null, [Record(1, Ins(0, 'a'))], new SequencerOptions());

        Assert.Equal((1L, "a"), (state.Version, state.Snapshot));
        Assert.Single(state.RecentOps);
    }

    [Fact]
    public void Load_refuses_a_gap_or_a_corrupt_op()
    {
        var options = new SequencerOptions();
        Assert.Throws<ArgumentException>(() => DocumentState.Load(TestListType.Instance, null, [Record(2, Ins(0, 'a'))], options));
        Assert.Throws<ArgumentException>(() => DocumentState.Load(TestListType.Instance, null, [Record(1, Ins(0, 'a')), Record(3, Ins(0, 'b'))], options));

        OpRecord corrupt = Record(1, Ins(0, 'a')) with { Op = new byte[] { 7 } };
        Assert.Equal(OtErrorCode.Malformed, Assert.Throws<OtException>(() => DocumentState.Load(TestListType.Instance, null, [corrupt], options)).Code);
        Assert.Equal(OtErrorCode.OpTooLong, Assert.Throws<OtException>(() => DocumentState.Load(TestListType.Instance, null, [Record(1, Del(0))], options)).Code);
    }

    [Fact]
    public void State_and_sequencer_refuse_inconsistent_recent_ops()
    {
        var options = new SequencerOptions();
        var op = new SequencedOp<ListOp>(Record(2, Ins(0, 'a')), Ins(0, 'a'));
        Assert.Throws<ArgumentException>(() => new DocumentState<string, ListOp>("a", 3, new DedupeState(options), [op]));

        var foreign = new SequencedOp<ListOp>(Record(1, Ins(0, 'a')) with { DocId = "other" }, Ins(0, 'a'));
        var state = new DocumentState<string, ListOp>("a", 1, new DedupeState(options), [foreign]);
        Assert.Throws<ArgumentException>(() => Create(new NoopDurabilityStage(), new RecordingListener<string, ListOp>(), options, initial: state));
    }

    [Fact]
    public async Task Sequencer_started_from_a_loaded_state_transforms_against_its_seeded_window()
    {
        var options = new SequencerOptions();
        DocumentState<string, ListOp> state = DocumentState.Load(
            TestListType.Instance, null, [Record(1, Ins(0, 'a'), "x", 1), Record(2, Ins(1, 'b'), "x", 2)], options);
        var listener = new RecordingListener<string, ListOp>(startVersion: 2);
        await using var sequencer = Create(new NoopDurabilityStage(), listener, options, initial: state);

        // Made against version 1 ("a"): inserting at 1 goes before the 'b' of version 2 (Left side).
        SubmitResult result = await sequencer.SubmitAsync(Sub("y", 1, 1, Ins(1, 'Z'))).WithTimeout();

        Assert.Equal((SubmitStatus.Acked, 3L), (result.Status, result.Version));
        Assert.Equal("aZb", listener.Batches[^1].Snapshot);
        Assert.Equal(SubmitStatus.Duplicate, (await sequencer.SubmitAsync(Sub("x", 2, 1, Ins(1, 'b'))).WithTimeout()).Status);
    }
}
