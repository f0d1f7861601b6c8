using Collab.Engine.Sequencing;
using static Collab.Engine.Tests.Sequencing.DocumentSequencerTests;

namespace Collab.Engine.Tests.Sequencing;

public sealed class CommittedViewTests
{
    /// <summary>A subscriber as the session layer would keep one: its starting point plus every op delivered after it.</summary>
    private sealed class Subscriber(string text, long version)
    {
        public string StartText { get; } = text;

        public long StartVersion { get; } = version;

        public string Text { get; set; } = text;

        public List<long> Versions { get; } = [];
    }

    [Fact]
    public async Task Subscribers_attached_during_concurrent_submits_see_every_later_op_exactly_once()
    {
        // Only touched on the worker (listener calls and exclusive actions), so a plain list is enough.
        var subscribers = new List<Subscriber>();
        var listener = new RecordingListener<string, ListOp>
        {
            OnOp = (record, op) =>
            {
                foreach (Subscriber s in subscribers)
                {
                    s.Text = TestListType.Instance.Apply(s.Text, op);
                    s.Versions.Add(record.Version);
                }
            },
        };
        await using var sequencer = Create(new NoopDurabilityStage(), listener, new SequencerOptions { HistoryMaxOps = 4096, MaxItemsPerTurn = 7 });

        const int Writers = 4;
        const int OpsPerWriter = 300;

        // The writers wait for the first subscriber: on a loaded machine they could otherwise finish all their ops before
        // the loop below attaches anyone, and the test would check nothing.
        var firstAttached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task[] writers = [.. Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            await firstAttached.Task;
            for (int i = 1; i <= OpsPerWriter; i++)
            {
                SubmitResult r = await sequencer.SubmitAsync(Sub("w" + w, i, sequencer.CommittedVersion, Ins(0, (char)('A' + w))));
                Assert.Equal(SubmitStatus.Acked, r.Status);
            }
        }))];

        var attached = new List<Subscriber>();
        var resumed = new List<Subscriber>();
        do
        {
            attached.Add(await sequencer.RunExclusiveAsync(view =>
            {
                var s = new Subscriber(view.Snapshot, view.Version);
                subscribers.Add(s);
                return s;
            }).WithTimeout());
            firstAttached.TrySetResult();

            // Resume from an older subscriber's starting point with the ops after it (a reconnecting client).
            Subscriber from = attached[attached.Count / 2];
            Subscriber? resume = await sequencer.RunExclusiveAsync(view =>
            {
                if (!view.TryGetOpsAfter(from.StartVersion, out IReadOnlyList<OpRecord> ops))
                {
                    return null;
                }

                string text = from.StartText;
                foreach (OpRecord op in ops)
                {
                    text = TestListType.Instance.Apply(text, TestListType.Instance.Decode(op.Op.Span));
                }

                Assert.Equal(view.Snapshot, text);
                var s = new Subscriber(text, view.Version);
                subscribers.Add(s);
                return s;
            }).WithTimeout();
            Assert.NotNull(resume);
            resumed.Add(resume);
            await Task.Yield();
        }
        while (!writers.All(w => w.IsCompleted) && attached.Count < 200);

        await Task.WhenAll(writers).WithTimeout();
        (string finalText, long finalVersion) = await sequencer.RunExclusiveAsync(view => (view.Snapshot, view.Version)).WithTimeout();

        Assert.Equal(Writers * OpsPerWriter, finalVersion);
        Assert.Equal(Writers * OpsPerWriter, finalText.Length);
        Assert.NotEmpty(attached);
        foreach (Subscriber s in attached.Concat(resumed))
        {
            Assert.Equal(finalText, s.Text);
            Assert.Equal(Enumerable.Range((int)s.StartVersion + 1, (int)(finalVersion - s.StartVersion)).Select(v => (long)v), s.Versions);
        }

        Assert.Empty(listener.Violations);
    }

    [Fact]
    public async Task Cursors_and_selections_move_through_the_committed_ops()
    {
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(new NoopDurabilityStage(), listener, new SequencerOptions { HistoryMaxOps = 4 });
        await sequencer.SubmitAsync(Sub("me", 1, 0, new ListOp(ListEdit.Insert(0, 'a'), ListEdit.Insert(1, 'b')))).WithTimeout(); // v1 "ab"
        await sequencer.SubmitAsync(Sub("me", 2, 1, Ins(1, 'X'))).WithTimeout();   // v2 "aXb" (mine, at the cursor)
        await sequencer.SubmitAsync(Sub("other", 1, 2, Ins(0, 'Y'))).WithTimeout(); // v3 "YaXb"
        await sequencer.SubmitAsync(Sub("other", 2, 3, Del(3))).WithTimeout();     // v4 "YaX"
        await sequencer.SubmitAsync(Sub("other", 3, 4, Ins(3, 'Z'))).WithTimeout(); // v5 "YaXZ"

        var results = await sequencer.RunExclusiveAsync(view =>
        {
            bool mine = view.TryTransformCursor(1, 1, "me", out int mineCursor);
            bool theirs = view.TryTransformCursor(1, 1, "someone", out int theirCursor);
            bool selection = view.TryTransformSelection(2, 0, 3, null, out int anchor, out int head);
            bool tooOld = view.TryTransformCursor(0, 0, null, out _);
            bool future = view.TryTransformCursor(6, 0, null, out _);
            bool current = view.TryTransformCursor(5, 2, null, out int unchanged);
            return (mine, mineCursor, theirs, theirCursor, selection, anchor, head, tooOld, future, current, unchanged);
        }).WithTimeout();

        // Cursor after 'a' at v1: my own insert there pushes it past 'X'; someone else's does not. Y before it shifts it by one.
        Assert.Equal((true, 3), (results.mine, results.mineCursor));
        Assert.Equal((true, 2), (results.theirs, results.theirCursor));

        // Selection over all of "aXb" at v2: someone else's Y at the anchor stays outside it (inserts at a cursor go after
        // it unless they are the owner's); deleting 'b' shrinks the end; Z at the end stays outside.
        Assert.Equal((true, 0, 3), (results.selection, results.anchor, results.head));
        Assert.False(results.tooOld);
        Assert.False(results.future);
        Assert.Equal((true, 2), (results.current, results.unchanged));
    }

    [Fact]
    public async Task Ops_after_a_version_are_served_only_while_the_window_holds_them()
    {
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(new NoopDurabilityStage(), listener, new SequencerOptions { HistoryMaxOps = 2 });
        for (int i = 0; i < 4; i++)
        {
            await sequencer.SubmitAsync(Sub("a", i + 1, i, Ins(i, 'x'))).WithTimeout();
        }

        var (ok, ops, upToDate, empty, gone, future, oldest) = await sequencer.RunExclusiveAsync(view =>
        {
            bool ok = view.TryGetOpsAfter(2, out IReadOnlyList<OpRecord> ops);
            bool upToDate = view.TryGetOpsAfter(4, out IReadOnlyList<OpRecord> empty);
            bool gone = view.TryGetOpsAfter(1, out _);
            bool future = view.TryGetOpsAfter(5, out _);
            return (ok, ops, upToDate, empty, gone, future, view.OldestAvailableVersion);
        }).WithTimeout();

        Assert.True(ok);
        Assert.Equal([3L, 4L], ops.Select(o => o.Version));
        Assert.Equal(listener.Records[2].Op, ops[0].Op);
        Assert.True(upToDate);
        Assert.Empty(empty);
        Assert.False(gone);
        Assert.False(future);
        Assert.Equal(2, oldest);
    }

    [Fact]
    public async Task Snapshot_record_holds_the_committed_text_version_and_dedupe_state()
    {
        var time = TimeProvider.System;
        var options = new SequencerOptions();
        await using var sequencer = Create(new NoopDurabilityStage(), new RecordingListener<string, ListOp>(), options);
        await sequencer.SubmitAsync(Sub("a", 4, 0, Ins(0, 'h'))).WithTimeout();
        await sequencer.SubmitAsync(Sub("b", 1, 1, Ins(1, 'i'))).WithTimeout();

        long before = time.GetUtcNow().ToUnixTimeMilliseconds();
        SnapshotRecord record = await sequencer.RunExclusiveAsync(view => view.CreateSnapshotRecord()).WithTimeout();

        Assert.Equal(("doc", 2L, "hi"), (record.DocId, record.Version, record.Text));
        Assert.InRange(record.TimestampMs, before - 1000, before + 60_000);
        DedupeState dedupe = DedupeState.Decode(record.Meta.Span, options);
        Assert.True(dedupe.TryGetClient("a", out long seq, out long version));
        Assert.Equal((4L, 1L), (seq, version));
        Assert.Equal(2, dedupe.Count);
    }
}
