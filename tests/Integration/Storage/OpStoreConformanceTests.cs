using Collab.Engine.Sequencing;
using Collab.Server.Storage;
using static Collab.Integration.Tests.Storage.StorageTestData;

namespace Collab.Integration.Tests.Storage;

/// <summary>
/// The behaviour every <see cref="IOpStore"/> must have. Each concrete class runs it against one implementation with
/// its own fresh backing store per test.
/// </summary>
public abstract class OpStoreConformanceTests : IAsyncLifetime
{
    private IOpStore? _store;

    /// <summary>The store under test, opened and initialised before each test.</summary>
    protected IOpStore Store => _store ?? throw new InvalidOperationException("Not initialised.");

    /// <summary>Options of the store under test (snapshot retention of 2 so trimming is observable).</summary>
    protected virtual StorageOptions Options { get; } = new() { SnapshotsToKeep = 2 };

    /// <summary>Opens (and initialises) a store on this test's backing location; called again to reopen it.</summary>
    protected abstract Task<IOpStore> OpenStoreAsync();

    /// <summary>Rows in the snapshots table for the document, read around the store.</summary>
    protected abstract Task<long> CountSnapshotsAsync(string docId);

    /// <summary>Prepares this test's backing location (a directory, a database).</summary>
    protected virtual Task PrepareAsync() => Task.CompletedTask;

    /// <summary>Removes this test's backing location.</summary>
    protected virtual Task CleanupAsync() => Task.CompletedTask;

    public async Task InitializeAsync()
    {
        await PrepareAsync();
        _store = await OpenStoreAsync();
    }

    public async Task DisposeAsync()
    {
        if (_store is not null)
        {
            await _store.DisposeAsync();
        }

        await CleanupAsync();
    }

    [Fact]
    public async Task Load_of_a_document_never_written_is_null()
    {
        Assert.Null(await Store.LoadAsync("nobody", default));
        Assert.Empty(await Store.ReadOpsAsync("nobody", 0, 100, 100, default));
    }

    [Fact]
    public async Task Appended_ops_of_interleaved_documents_load_in_version_order()
    {
        var a = Ops("doc-a", 1, 5);
        var b = Ops("doc-b", 1, 3);
        var interleaved = new List<OpRecord> { a[0], b[0], a[1], a[2], b[1], a[3], b[2], a[4] };

        var result = await Store.AppendAsync(interleaved, default);

        Assert.Empty(result.ConflictedDocs);
        var loadA = await Store.LoadAsync("doc-a", default);
        Assert.NotNull(loadA);
        Assert.Null(loadA.Snapshot);
        AssertSame(a, loadA.Ops);
        AssertSame(b, (await Store.LoadAsync("doc-b", default))!.Ops);

        Assert.Empty((await Store.AppendAsync(Ops("doc-a", 6, 7), default)).ConflictedDocs);
        Assert.Equal([1L, 2, 3, 4, 5, 6, 7], (await Store.LoadAsync("doc-a", default))!.Ops.Select(o => o.Version));
    }

    [Fact]
    public async Task ReadOps_returns_the_half_open_range_up_to_the_limit()
    {
        var ops = Ops("doc", 1, 20);
        await Store.AppendAsync(ops, default);

        AssertSame(ops.GetRange(5, 10), await Store.ReadOpsAsync("doc", 5, 15, 100, default));
        AssertSame(ops.GetRange(5, 3), await Store.ReadOpsAsync("doc", 5, 15, 3, default));
        AssertSame(ops.GetRange(18, 2), await Store.ReadOpsAsync("doc", 18, 1000, 100, default));
        Assert.Empty(await Store.ReadOpsAsync("doc", 20, 30, 100, default));
        Assert.Empty(await Store.ReadOpsAsync("doc", 10, 10, 100, default));
        Assert.Empty(await Store.ReadOpsAsync("doc", 12, 3, 100, default));
        Assert.Empty(await Store.ReadOpsAsync("doc", 0, 20, 0, default));
        Assert.Empty(await Store.ReadOpsAsync("other", 0, 20, 100, default));
    }

    [Fact]
    public async Task Load_returns_the_latest_snapshot_and_only_the_ops_after_it()
    {
        var ops = Ops("doc", 1, 12);
        await Store.AppendAsync(ops, default);
        var snapshot = Snapshot("doc", 8, "hello");
        await Store.WriteSnapshotAsync(snapshot, default);

        var load = await Store.LoadAsync("doc", default);

        Assert.NotNull(load);
        Assert.NotNull(load.Snapshot);
        Assert.Equal(8, load.Snapshot.Version);
        Assert.Equal("hello", load.Snapshot.Text);
        Assert.Equal(snapshot.Meta.ToArray(), load.Snapshot.Meta.ToArray());
        Assert.Equal(snapshot.TimestampMs, load.Snapshot.TimestampMs);
        AssertSame(ops.GetRange(8, 4), load.Ops);
    }

    [Fact]
    public async Task A_snapshot_alone_loads_with_no_ops()
    {
        await Store.WriteSnapshotAsync(Snapshot("imported", 40, "imported text"), default);

        var load = await Store.LoadAsync("imported", default);

        Assert.NotNull(load);
        Assert.Equal(40, load.Snapshot!.Version);
        Assert.Empty(load.Ops);
    }

    [Fact]
    public async Task The_latest_snapshot_wins_and_an_older_or_equal_one_is_ignored()
    {
        await Store.AppendAsync(Ops("doc", 1, 30), default);
        await Store.WriteSnapshotAsync(Snapshot("doc", 10, "ten"), default);
        await Store.WriteSnapshotAsync(Snapshot("doc", 20, "twenty"), default);
        await Store.WriteSnapshotAsync(Snapshot("doc", 15, "fifteen"), default);
        await Store.WriteSnapshotAsync(Snapshot("doc", 20, "twenty again"), default);

        var load = await Store.LoadAsync("doc", default);

        Assert.Equal(20, load!.Snapshot!.Version);
        Assert.Equal("twenty", load.Snapshot.Text);
        Assert.Equal([21L, 22, 23, 24, 25, 26, 27, 28, 29, 30], load.Ops.Select(o => o.Version));
    }

    [Fact]
    public async Task Only_the_newest_snapshots_are_kept()
    {
        for (var v = 1; v <= 5; v++)
        {
            await Store.WriteSnapshotAsync(Snapshot("doc", v * 10), default);
        }

        await Store.WriteSnapshotAsync(Snapshot("other", 7), default);

        Assert.Equal(Options.SnapshotsToKeep, await CountSnapshotsAsync("doc"));
        Assert.Equal(1, await CountSnapshotsAsync("other"));
        Assert.Equal(50, (await Store.LoadAsync("doc", default))!.Snapshot!.Version);
    }

    [Fact]
    public async Task A_conflict_fences_only_the_clashing_document_and_the_others_commit()
    {
        // Another sequencer already wrote versions 1..2 of doc-a.
        var rival = Ops("doc-a", 1, 2, clientId: "rival");
        await Store.AppendAsync(rival, default);

        var ours = new List<OpRecord>
        {
            Op("doc-b", 1),
            Op("doc-a", 2, clientId: "ours"),
            Op("doc-c", 1),
            Op("doc-a", 3, clientId: "ours"),
            Op("doc-b", 2),
        };
        var result = await Store.AppendAsync(ours, default);

        Assert.Equal(["doc-a"], result.ConflictedDocs);
        AssertSame(rival, (await Store.LoadAsync("doc-a", default))!.Ops);
        AssertSame([ours[0], ours[4]], (await Store.LoadAsync("doc-b", default))!.Ops);
        AssertSame([ours[2]], (await Store.LoadAsync("doc-c", default))!.Ops);
    }

    [Fact]
    public async Task A_unique_violation_in_the_middle_of_a_large_batch_fences_that_document_only()
    {
        await Store.AppendAsync([Op("doc-07", 50, clientId: "rival")], default);
        var batch = new List<OpRecord>();
        for (var v = 1; v <= 100; v++)
        {
            for (var d = 0; d < 10; d++)
            {
                batch.Add(Op($"doc-{d:D2}", v));
            }
        }

        var result = await Store.AppendAsync(batch, default);

        Assert.Equal(["doc-07"], result.ConflictedDocs);
        for (var d = 0; d < 10; d++)
        {
            var ops = await Store.ReadOpsAsync($"doc-{d:D2}", 0, 1000, 1000, default);
            if (d == 7)
            {
                Assert.Equal([50L], ops.Select(o => o.Version));
                Assert.Equal("rival", ops[0].ClientId);
            }
            else
            {
                Assert.Equal(Enumerable.Range(1, 100).Select(v => (long)v), ops.Select(o => o.Version));
            }
        }
    }

    [Fact]
    public async Task Every_conflicting_document_is_reported_and_none_of_their_records_commit()
    {
        await Store.AppendAsync([Op("x", 1, clientId: "rival"), Op("y", 3, clientId: "rival")], default);

        var result = await Store.AppendAsync([Op("x", 1), Op("x", 2), Op("y", 1), Op("y", 2), Op("y", 3), Op("z", 1)], default);

        Assert.Equal(["x", "y"], result.ConflictedDocs.Order(StringComparer.Ordinal));
        Assert.Equal([1L], (await Store.ReadOpsAsync("x", 0, 10, 10, default)).Select(o => o.Version));
        Assert.Equal([3L], (await Store.ReadOpsAsync("y", 0, 10, 10, default)).Select(o => o.Version));
        Assert.Equal([1L], (await Store.ReadOpsAsync("z", 0, 10, 10, default)).Select(o => o.Version));
    }

    [Fact]
    public async Task The_same_version_twice_in_one_batch_fences_that_document()
    {
        var result = await Store.AppendAsync([Op("twice", 1, clientId: "first"), Op("fine", 1), Op("twice", 1, clientId: "second")], default);

        Assert.Equal(["twice"], result.ConflictedDocs);
        Assert.Null(await Store.LoadAsync("twice", default));
        Assert.Single((await Store.LoadAsync("fine", default))!.Ops);
    }

    [Fact]
    public async Task Retrying_a_committed_batch_is_idempotent()
    {
        // A commit whose acknowledgement was lost is retried with the same records: they are ours, not a conflict.
        var batch = Ops("doc", 1, 10).Concat(Ops("other", 1, 3)).ToList();
        await Store.AppendAsync(batch, default);

        var retry = await Store.AppendAsync(batch, default);

        Assert.Empty(retry.ConflictedDocs);
        AssertSame(Ops("doc", 1, 10), (await Store.LoadAsync("doc", default))!.Ops);
        AssertSame(Ops("other", 1, 3), (await Store.LoadAsync("other", default))!.Ops);
    }

    [Fact]
    public async Task A_retry_whose_prefix_is_already_committed_writes_only_the_rest()
    {
        await Store.AppendAsync(Ops("doc", 1, 4), default);

        var result = await Store.AppendAsync(Ops("doc", 1, 8), default);

        Assert.Empty(result.ConflictedDocs);
        AssertSame(Ops("doc", 1, 8), (await Store.LoadAsync("doc", default))!.Ops);
    }

    [Fact]
    public async Task Prune_removes_old_ops_covered_by_the_latest_snapshot_only()
    {
        var old = NowMs - (long)TimeSpan.FromHours(2).TotalMilliseconds;
        await Store.AppendAsync(Ops("covered", 1, 10, timestampMs: old), default);
        await Store.AppendAsync(Ops("no-snapshot", 1, 5, timestampMs: old), default);
        await Store.AppendAsync(Ops("recent", 1, 5), default);
        await Store.WriteSnapshotAsync(Snapshot("covered", 4), default);
        await Store.WriteSnapshotAsync(Snapshot("covered", 6), default);
        await Store.WriteSnapshotAsync(Snapshot("recent", 5), default);

        var removed = await Store.PruneAsync(TimeSpan.FromHours(1), default);

        Assert.Equal(6, removed);
        Assert.Equal([7L, 8, 9, 10], (await Store.ReadOpsAsync("covered", 0, 100, 100, default)).Select(o => o.Version));
        var load = await Store.LoadAsync("covered", default);
        Assert.Equal(6, load!.Snapshot!.Version);
        Assert.Equal([7L, 8, 9, 10], load.Ops.Select(o => o.Version));
        Assert.Equal(5, (await Store.ReadOpsAsync("no-snapshot", 0, 100, 100, default)).Count);
        Assert.Equal(5, (await Store.ReadOpsAsync("recent", 0, 100, 100, default)).Count);
        Assert.Equal(0, await Store.PruneAsync(TimeSpan.FromHours(1), default));
    }

    [Fact]
    public async Task FindOp_finds_a_client_op_in_the_half_open_range_and_counts_what_the_log_holds()
    {
        var ops = new List<OpRecord>();
        for (var v = 1; v <= 10; v++)
        {
            // Two clients taking turns; "b" uses the same seqs as "a" does.
            ops.Add(Op("doc", v, clientId: v % 2 == 0 ? "a" : "b", clientSeq: (v + 1) / 2));
        }

        await Store.AppendAsync(ops, default);
        await Store.AppendAsync([Op("other", 1, clientId: "a", clientSeq: 3)], default);

        Assert.Equal(new OpLookup(6, 10), await Store.FindOpAsync("doc", "a", 3, 0, 10, default));
        Assert.Equal(new OpLookup(5, 10), await Store.FindOpAsync("doc", "b", 3, 0, 10, default));
        Assert.Equal(new OpLookup(6, 1), await Store.FindOpAsync("doc", "a", 3, 5, 6, default)); // upper bound included
        Assert.Equal(new OpLookup(0, 4), await Store.FindOpAsync("doc", "a", 3, 6, 10, default)); // lower bound excluded
        Assert.Equal(new OpLookup(0, 10), await Store.FindOpAsync("doc", "a", 99, 0, 10, default));
        Assert.Equal(new OpLookup(0, 10), await Store.FindOpAsync("doc", "c", 3, 0, 10, default));
        Assert.Equal(new OpLookup(0, 2), await Store.FindOpAsync("doc", "a", 3, 8, 20, default)); // past the head: what exists
        Assert.Equal(new OpLookup(1, 1), await Store.FindOpAsync("other", "a", 3, 0, 5, default));
        Assert.Equal(default, await Store.FindOpAsync("nobody", "a", 1, 0, 5, default));
        Assert.Equal(default, await Store.FindOpAsync("doc", "a", 3, 5, 5, default));
    }

    [Fact]
    public async Task FindOp_over_a_pruned_range_counts_fewer_ops_than_the_range_holds()
    {
        var old = NowMs - (long)TimeSpan.FromHours(2).TotalMilliseconds;
        await Store.AppendAsync(Ops("doc", 1, 8, timestampMs: old), default);
        await Store.WriteSnapshotAsync(Snapshot("doc", 5), default);
        await Store.PruneAsync(TimeSpan.FromHours(1), default);

        Assert.Equal(new OpLookup(0, 3), await Store.FindOpAsync("doc", "client-1", 2, 0, 8, default));
        Assert.Equal(new OpLookup(7, 3), await Store.FindOpAsync("doc", "client-1", 7, 0, 8, default));
    }

    [Fact]
    public async Task A_secret_is_created_once_and_the_same_bytes_come_back_after_reopening_and_to_concurrent_callers()
    {
        var concurrent = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Store.GetOrCreateSecretAsync("client-ids", 32, default).AsTask()));
        var other = await Store.GetOrCreateSecretAsync("other", 16, default);

        Assert.Equal(32, concurrent[0].Length);
        Assert.All(concurrent, secret => Assert.Equal(concurrent[0], secret));
        Assert.NotEqual(new byte[32], concurrent[0]);
        Assert.Equal(16, other.Length);

        await Store.DisposeAsync();
        await using var reopened = await OpenStoreAsync();
        Assert.Equal(concurrent[0], await reopened.GetOrCreateSecretAsync("client-ids", 32, default));
    }

    [Fact]
    public async Task Unicode_ids_text_and_binary_ops_round_trip_exactly()
    {
        const string docId = "文档/📄 ñ-ü  שלום";
        const string text = "Hello 👋🏽 world — 中文, العربية, emoji 🧑‍🤝‍🧑, combining é, nul \0 inside, tab\t, crlf\r\n, end";
        var allBytes = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        var ops = new List<OpRecord>
        {
            Op(docId, 1, clientId: "клиент-1", author: "作者 ☃", op: allBytes),
            Op(docId, 2, clientId: "клиент-1", author: null, op: []),
            Op(docId, 3, clientId: "c", author: "", op: [0]),
        };

        await Store.AppendAsync(ops, default);
        await Store.WriteSnapshotAsync(new SnapshotRecord(docId, 2, text, allBytes, NowMs), default);

        var load = await Store.LoadAsync(docId, default);
        Assert.Equal(text, load!.Snapshot!.Text);
        Assert.Equal(allBytes, load.Snapshot.Meta.ToArray());
        AssertSame([ops[2]], load.Ops);
        AssertSame(ops, await Store.ReadOpsAsync(docId, 0, 10, 10, default));
    }

    [Fact]
    public async Task A_large_batch_commits_and_reads_back_completely()
    {
        var batch = new List<OpRecord>(20_000);
        for (var v = 1; v <= 200; v++)
        {
            for (var d = 0; d < 100; d++)
            {
                batch.Add(Op($"big-{d}", v, clientId: $"client-{d}", op: new byte[v % 64]));
            }
        }

        Assert.Empty((await Store.AppendAsync(batch, default)).ConflictedDocs);

        for (var d = 0; d < 100; d += 33)
        {
            var ops = await Store.ReadOpsAsync($"big-{d}", 0, 1000, 1000, default);
            AssertSame(batch.Where(o => o.DocId == $"big-{d}").ToList(), ops);
        }
    }

    [Fact]
    public async Task Ops_of_every_size_round_trip_including_ones_larger_than_any_write_buffer()
    {
        var sizes = new[] { 0, 1, 9_000, 65_000, 65_536, 200_000, 9_000, 70_000, 3, 1_000_000 };
        var random = new Random(17);
        var batch = new List<OpRecord>();
        for (var i = 0; i < sizes.Length; i++)
        {
            var bytes = new byte[sizes[i]];
            random.NextBytes(bytes);
            batch.Add(Op("sizes", i + 1, op: bytes));
        }

        for (var v = 1; v <= 40; v++)
        {
            batch.Add(Op("filler", v, op: new byte[9_999]));
        }

        Assert.Empty((await Store.AppendAsync(batch, default)).ConflictedDocs);

        AssertSame(batch.Take(sizes.Length).ToList(), await Store.ReadOpsAsync("sizes", 0, 100, 100, default));
        Assert.Equal(40, (await Store.ReadOpsAsync("filler", 0, 100, 100, default)).Count);
    }

    [Fact]
    public async Task An_empty_batch_is_a_no_op()
    {
        Assert.Same(AppendResult.Ok, await Store.AppendAsync([], default));
    }

    [Fact]
    public async Task Data_survives_dispose_and_reopen()
    {
        await Store.AppendAsync(Ops("doc", 1, 5), default);
        await Store.WriteSnapshotAsync(Snapshot("doc", 3), default);
        await Store.DisposeAsync();

        await using var reopened = await OpenStoreAsync();

        var load = await reopened.LoadAsync("doc", default);
        Assert.Equal(3, load!.Snapshot!.Version);
        AssertSame(Ops("doc", 4, 5), load.Ops);
        Assert.Equal(["doc"], (await reopened.AppendAsync(Ops("doc", 5, 5, clientId: "rival"), default)).ConflictedDocs);
        Assert.Empty((await reopened.AppendAsync(Ops("doc", 6, 6), default)).ConflictedDocs);
    }

    [Fact]
    public async Task Initialization_is_idempotent()
    {
        await Store.AppendAsync(Ops("doc", 1, 2), default);
        await Store.InitializeAsync(default);

        await using var second = await OpenStoreAsync();

        AssertSame(Ops("doc", 1, 2), (await second.LoadAsync("doc", default))!.Ops);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Records_that_can_never_be_stored_are_rejected_and_nothing_is_written(int which)
    {
        // Built here rather than passed as theory data: an unpaired surrogate does not survive test discovery.
        var badDocId = which switch
        {
            0 => string.Empty,
            1 => "nul\0inside",
            2 => "\ud800unpaired",
            _ => new string('x', StorageValidation.MaxIdLength + 1),
        };
        var batch = new List<OpRecord> { Op("good", 1), Op(badDocId, 1) };

        await Assert.ThrowsAsync<ArgumentException>(() => Store.AppendAsync(batch, default).AsTask());

        Assert.Null(await Store.LoadAsync("good", default));
    }

    [Fact]
    public async Task Invalid_versions_timestamps_and_snapshot_text_are_rejected()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => Store.AppendAsync([Op("doc", 0)], default).AsTask());
        await Assert.ThrowsAsync<ArgumentException>(() => Store.AppendAsync([Op("doc", 1, timestampMs: -1)], default).AsTask());
        await Assert.ThrowsAsync<ArgumentException>(() => Store.AppendAsync([Op("doc", 1, clientId: "")], default).AsTask());
        await Assert.ThrowsAsync<ArgumentException>(() => Store.WriteSnapshotAsync(Snapshot("doc", 1, "bad \udc00 text"), default).AsTask());
        Assert.Null(await Store.LoadAsync("doc", default));
    }
}
