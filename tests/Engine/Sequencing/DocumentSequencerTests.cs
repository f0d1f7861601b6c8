using Collab.Engine.Sequencing;

namespace Collab.Engine.Tests.Sequencing;

public sealed class DocumentSequencerTests
{
    internal static ListOp Ins(int position, char value) => new(ListEdit.Insert(position, value));

    internal static ListOp Del(int position) => new(ListEdit.Delete(position));

    internal static Submission<ListOp> Sub(string client, long seq, long baseVersion, ListOp op) => new(client, seq, baseVersion, op, "author-" + client);

    internal static DocumentSequencer<string, ListOp> Create(
        IDurabilityStage stage,
        ISequencerListener<string, ListOp> listener,
        SequencerOptions? options = null,
        IHistorySource? history = null,
        DocumentState<string, ListOp>? initial = null,
        string docId = "doc",
        IOtType<string, ListOp>? type = null)
    {
        options ??= new SequencerOptions();
        type ??= TestListType.Instance;
        return new DocumentSequencer<string, ListOp>(docId, type, initial ?? DocumentState.Empty(type, options), stage, history, listener, options);
    }

    [Fact]
    public async Task Op_is_acknowledged_and_published_only_after_its_commit()
    {
        var stage = new ControllableDurabilityStage();
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(stage, listener);

        Task<SubmitResult> submit = sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'x'))).AsTask();
        await sequencer.BarrierAsync();

        Assert.Equal(1, stage.CallCount);
        Assert.False(submit.IsCompleted);
        Assert.Empty(listener.Records);
        Assert.Equal(1, sequencer.Version);
        Assert.Equal(0, sequencer.CommittedVersion);

        OpRecord record = stage[0].Op;
        Assert.Equal(("doc", 1L, "a", 1L, "author-a"), (record.DocId, record.Version, record.ClientId, record.ClientSeq, record.Author));
        Assert.Equal(Ins(0, 'x').ToString(), TestListType.Instance.Decode(record.Op.Span).ToString());

        stage[0].Complete();
        SubmitResult result = await submit.WithTimeout();

        Assert.Equal(SubmitStatus.Acked, result.Status);
        Assert.Equal(1, result.Version);
        Assert.True(result.IsSuccess);
        Assert.Equal(1, sequencer.CommittedVersion);
        OpRecord published = Assert.Single(listener.Records);
        Assert.Equal(record.Op, published.Op);
        Assert.Equal("x", listener.Batches[^1].Snapshot);
        Assert.Equal(0, sequencer.PendingCount);
        Assert.Empty(listener.Violations);
    }

    [Fact]
    public async Task Pipelined_commits_completing_out_of_order_publish_in_version_order()
    {
        var stage = new ControllableDurabilityStage();
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(stage, listener);

        Task<SubmitResult>[] submits =
        [
            sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).AsTask(),
            sequencer.SubmitAsync(Sub("b", 1, 0, Ins(0, 'b'))).AsTask(),
            sequencer.SubmitAsync(Sub("c", 1, 0, Ins(0, 'c'))).AsTask(),
        ];
        await sequencer.BarrierAsync();

        // All three were handed to the stage before any commit finished.
        Assert.Equal(3, stage.CallCount);
        Assert.Equal(3, sequencer.Version);

        stage[2].Complete();
        stage[1].Complete();
        await sequencer.BarrierAsync();
        Assert.All(submits, s => Assert.False(s.IsCompleted));
        Assert.Empty(listener.Records);
        Assert.Equal(0, sequencer.CommittedVersion);

        stage[0].Complete();
        SubmitResult[] results = await Task.WhenAll(submits).WithTimeout();

        Assert.Equal([1L, 2L, 3L], results.Select(r => r.Version));
        Assert.All(results, r => Assert.Equal(SubmitStatus.Acked, r.Status));
        Assert.Equal([1L, 2L, 3L], listener.Records.Select(r => r.Version));
        (long version, string snapshot, int count) = Assert.Single(listener.Batches);
        Assert.Equal((3L, 3), (version, count));

        // Each later op was transformed Left against the earlier inserts at the same position: it lands before them.
        Assert.Equal("cba", snapshot);
        Assert.Empty(listener.Violations);
    }

    [Fact]
    public async Task Documents_sharing_a_stage_publish_independently_when_commits_complete_out_of_order_across_documents()
    {
        var stage = new ControllableDurabilityStage();
        var listenerA = new RecordingListener<string, ListOp>();
        var listenerB = new RecordingListener<string, ListOp>();
        await using var a = Create(stage, listenerA, docId: "A");
        await using var b = Create(stage, listenerB, docId: "B");

        Task<SubmitResult> a1 = a.SubmitAsync(Sub("x", 1, 0, Ins(0, '1'))).AsTask();
        Task<SubmitResult> a2 = a.SubmitAsync(Sub("x", 2, 1, Ins(1, '2'))).AsTask();
        Task<SubmitResult> b1 = b.SubmitAsync(Sub("y", 1, 0, Ins(0, '1'))).AsTask();
        Task<SubmitResult> b2 = b.SubmitAsync(Sub("y", 2, 1, Ins(1, '2'))).AsTask();
        await a.BarrierAsync();
        await b.BarrierAsync();

        // B completes first and fully, then A's second op before its first.
        stage.For("B", 2).Complete();
        stage.For("B", 1).Complete();
        await Task.WhenAll(b1, b2).WithTimeout();
        stage.For("A", 2).Complete();
        await a.BarrierAsync();
        Assert.False(a2.IsCompleted);
        Assert.Empty(listenerA.Records);

        stage.For("A", 1).Complete();
        await Task.WhenAll(a1, a2).WithTimeout();

        Assert.Equal([1L, 2L], listenerA.Records.Select(r => r.Version));
        Assert.Equal([1L, 2L], listenerB.Records.Select(r => r.Version));
        Assert.Equal("12", listenerA.Batches[^1].Snapshot);
        Assert.Empty(listenerA.Violations);
        Assert.Empty(listenerB.Violations);
    }

    [Fact]
    public async Task Submission_is_transformed_against_each_later_op_one_by_one_with_the_left_side()
    {
        var type = new RecordingType();
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(new NoopDurabilityStage(), listener, type: type);

        Assert.Equal(1, (await sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout()).Version);
        Assert.Equal(2, (await sequencer.SubmitAsync(Sub("a", 2, 1, Ins(1, 'b'))).WithTimeout()).Version);
        Assert.Equal(3, (await sequencer.SubmitAsync(Sub("a", 3, 2, Del(0))).WithTimeout()).Version);
        type.Transforms.Clear();

        // Made against the empty document: it must pass through ops 1, 2 and 3 in order, each separately.
        SubmitResult result = await sequencer.SubmitAsync(Sub("b", 1, 0, Ins(0, 'z'))).WithTimeout();

        Assert.Equal(SubmitStatus.Acked, result.Status);
        Assert.Equal(
            [Ins(0, 'a').ToString(), Ins(1, 'b').ToString(), Del(0).ToString()],
            type.Transforms.Select(t => t.Other));
        Assert.All(type.Transforms, t => Assert.Equal(TransformSide.Left, t.Side));
        Assert.Equal(0, type.Composes);
        Assert.Equal("zb", listener.Batches[^1].Snapshot);
    }

    [Fact]
    public async Task Base_version_from_the_future_is_refused()
    {
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(new NoopDurabilityStage(), listener);
        await sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout();

        SubmitResult result = await sequencer.SubmitAsync(Sub("b", 1, 2, Ins(0, 'b'))).WithTimeout();

        Assert.Equal(SubmitStatus.VersionFromFuture, result.Status);
        Assert.False(result.IsRetryable);
        Assert.Equal(1, sequencer.Version);
        Assert.Single(listener.Records);
    }

    [Fact]
    public async Task Invalid_and_misfitting_ops_leave_the_document_untouched()
    {
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(new NoopDurabilityStage(), listener);
        await sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).WithTimeout();

        SubmitResult negative = await sequencer.SubmitAsync(Sub("a", 2, 1, Ins(-1, 'b'))).WithTimeout();
        SubmitResult pastEnd = await sequencer.SubmitAsync(Sub("a", 3, 1, Del(5))).WithTimeout();
        SubmitResult noClient = await sequencer.SubmitAsync(Sub("", 1, 1, Ins(0, 'b'))).WithTimeout();
        SubmitResult zeroSeq = await sequencer.SubmitAsync(Sub("b", 0, 1, Ins(0, 'b'))).WithTimeout();
        SubmitResult negativeBase = await sequencer.SubmitAsync(Sub("b", 1, -1, Ins(0, 'b'))).WithTimeout();

        Assert.Equal(SubmitStatus.InvalidOp, negative.Status);
        Assert.Equal(SubmitStatus.OpDoesNotFit, pastEnd.Status);
        Assert.Equal(SubmitStatus.InvalidOp, noClient.Status);
        Assert.Equal(SubmitStatus.InvalidOp, zeroSeq.Status);
        Assert.Equal(SubmitStatus.InvalidOp, negativeBase.Status);
        Assert.All([negative, pastEnd, noClient, zeroSeq, negativeBase], r => Assert.False(r.IsRetryable));
        Assert.All([negative, pastEnd], r => Assert.NotNull(r.Message));
        Assert.Equal(1, sequencer.Version);
        Assert.Single(listener.Records);

        // The refused seqs were not consumed: the client's next op is accepted.
        Assert.Equal(SubmitStatus.Acked, (await sequencer.SubmitAsync(Sub("a", 2, 1, Ins(1, 'b'))).WithTimeout()).Status);
        Assert.Equal("ab", listener.Batches[^1].Snapshot);
    }

    [Fact]
    public async Task Op_growing_the_document_past_the_limit_is_refused_but_shrinking_is_allowed()
    {
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(new NoopDurabilityStage(), listener, new SequencerOptions { MaxDocumentLength = 2 });
        await sequencer.SubmitAsync(Sub("a", 1, 0, new ListOp(ListEdit.Insert(0, 'a'), ListEdit.Insert(1, 'b')))).WithTimeout();

        SubmitResult tooLarge = await sequencer.SubmitAsync(Sub("a", 2, 1, Ins(0, 'c'))).WithTimeout();
        SubmitResult replace = await sequencer.SubmitAsync(Sub("a", 3, 1, new ListOp(ListEdit.Delete(0), ListEdit.Insert(0, 'c')))).WithTimeout();

        Assert.Equal(SubmitStatus.DocTooLarge, tooLarge.Status);
        Assert.Equal(SubmitStatus.Acked, replace.Status);
        Assert.Equal("cb", listener.Batches[^1].Snapshot);
    }

    [Fact]
    public async Task Past_the_pending_limit_submissions_are_refused_at_once_as_retryable()
    {
        var stage = new ControllableDurabilityStage();
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(stage, listener, new SequencerOptions { MaxPendingSubmissions = 2 });

        Task<SubmitResult> first = sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a'))).AsTask();
        Task<SubmitResult> second = sequencer.SubmitAsync(Sub("b", 1, 0, Ins(0, 'b'))).AsTask();
        ValueTask<SubmitResult> third = sequencer.SubmitAsync(Sub("c", 1, 0, Ins(0, 'c')));

        Assert.True(third.IsCompletedSuccessfully);
        SubmitResult overloaded = await third;
        Assert.Equal(SubmitStatus.Overloaded, overloaded.Status);
        Assert.True(overloaded.IsRetryable);
        Assert.Equal(2, sequencer.PendingCount);

        await sequencer.BarrierAsync();
        stage[0].Complete();
        stage[1].Complete();
        await Task.WhenAll(first, second).WithTimeout();
        Assert.Equal(0, sequencer.PendingCount);

        // Room again once the earlier ones completed.
        Task<SubmitResult> fourth = sequencer.SubmitAsync(Sub("c", 1, 2, Ins(0, 'c'))).AsTask();
        await sequencer.BarrierAsync();
        stage[2].Complete();
        Assert.Equal(SubmitStatus.Acked, (await fourth.WithTimeout()).Status);
    }

    [Fact]
    public async Task Cancelled_submissions_are_not_sequenced()
    {
        var listener = new RecordingListener<string, ListOp>();
        await using var sequencer = Create(new NoopDurabilityStage(), listener);

        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sequencer.SubmitAsync(Sub("a", 1, 0, Ins(0, 'a')), cancelled.Token).AsTask());
        await sequencer.BarrierAsync();

        Assert.Equal(0, sequencer.Version);
        Assert.Equal(0, sequencer.PendingCount);
    }

    [Fact]
    public void Options_are_validated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new SequencerOptions { MaxPendingSubmissions = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new SequencerOptions { HistoryMaxOps = -1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new SequencerOptions { HistoryMaxBytes = -1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new SequencerOptions { MaxHistoryReadOps = -1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new SequencerOptions { MaxDocumentLength = -1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new SequencerOptions { DedupeMaxClients = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new SequencerOptions { DedupeRetentionVersions = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new SequencerOptions { MaxItemsPerTurn = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => Create(new NoopDurabilityStage(), new RecordingListener<string, ListOp>(), new SequencerOptions { MaxPendingSubmissions = 0 }));
        new SequencerOptions().Validate();
    }

    /// <summary>Wraps the test type and records every transform; composing is never expected of the sequencer.</summary>
    private sealed class RecordingType : IOtType<string, ListOp>
    {
        private readonly TestListType _inner = TestListType.Instance;

        public List<(string Op, string Other, TransformSide Side)> Transforms { get; } = [];

        public int Composes { get; private set; }

        public string Name => _inner.Name;

        public string Empty => _inner.Empty;

        public void Validate(ListOp op, string snapshot) => _inner.Validate(op, snapshot);

        public string Apply(string snapshot, ListOp op) => _inner.Apply(snapshot, op);

        public ListOp Transform(ListOp op, ListOp other, TransformSide side)
        {
            Transforms.Add((op.ToString(), other.ToString(), side));
            return _inner.Transform(op, other, side);
        }

        public ListOp Compose(ListOp first, ListOp second)
        {
            Composes++;
            return _inner.Compose(first, second);
        }

        public bool IsNoop(ListOp op) => _inner.IsNoop(op);

        public int TransformCursor(int cursor, ListOp op, bool isOwnOp) => _inner.TransformCursor(cursor, op, isOwnOp);

        public int SizeOf(ListOp op) => _inner.SizeOf(op);

        public long LengthOf(string snapshot) => _inner.LengthOf(snapshot);

        public void Encode(ListOp op, System.Buffers.IBufferWriter<byte> output) => _inner.Encode(op, output);

        public ListOp Decode(ReadOnlySpan<byte> input) => _inner.Decode(input);

        public string ToText(string snapshot) => snapshot;

        public string FromText(string text) => text;
    }
}
