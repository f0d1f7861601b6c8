using Collab.Engine.Sequencing;
using Collab.Server.Storage;
using CsCheck;
using Prometheus;

namespace Collab.Integration.Tests.Storage;

/// <summary>
/// Randomised runs of the group-commit stage over the in-memory store with injected faults: failures before the write,
/// lost acknowledgements after it, rival writers claiming versions mid-run, random batch limits and interleavings.
/// Whatever happens, every call ends as committed or fenced, a document's calls complete in call order, the committed
/// ones are exactly a prefix of its versions, each stored once, and nothing uncommitted is reported as committed.
/// </summary>
public sealed class GroupCommitStagePropertyTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 3, 25)]
    [InlineData(42, 6, 40)]
    [InlineData(1234, 2, 60)]
    [InlineData(99_991, 5, 12)]
    [InlineData(-5, 4, 33)]
    public Task Calls_end_committed_as_a_prefix_or_fenced_for_fixed_seeds(int seed, int docs, int opsPerDoc) =>
        Simulation.RunAsync(seed, docs, opsPerDoc);

    [Fact]
    public Task Calls_end_committed_as_a_prefix_or_fenced_for_random_seeds() =>
        // A fresh CsCheck seed each run; on failure CsCheck prints it and the shrunk (seed, docs, ops) to rerun.
        Gen.Select(Gen.Int, Gen.Int[1, 6], Gen.Int[1, 40])
            .SampleAsync((seed, docs, ops) => Simulation.RunAsync(seed, docs, ops), iter: 1000);

    private static class Simulation
    {
        public static async Task RunAsync(int seed, int docCount, int opsPerDoc)
        {
            var random = new Random(seed);
            var inner = new InMemoryOpStore();

            // Some documents get a rival writer claiming one version, either up front or during a random append attempt.
            var rivals = new Dictionary<string, (long Version, int AtAttempt)>();
            for (var d = 0; d < docCount; d++)
            {
                if (random.NextDouble() < 0.35)
                {
                    rivals[$"doc-{d}"] = (random.NextInt64(1, opsPerDoc + 1), random.Next(-1, 8));
                }
            }

            var rivalWrote = new Dictionary<string, bool>();
            foreach (var (docId, (version, at)) in rivals)
            {
                if (at < 0)
                {
                    rivalWrote[docId] = await WriteRivalAsync(inner, docId, version);
                }
            }

            var faults = new FaultyStore(inner, seed, async attempt =>
            {
                foreach (var (docId, (version, at)) in rivals)
                {
                    if (at == attempt)
                    {
                        rivalWrote[docId] = await WriteRivalAsync(inner, docId, version);
                    }
                }
            });
            var options = new StorageOptions
            {
                MaxBatchOps = random.Next(1, 24),
                MaxBatchDelay = random.Next(2) == 0 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(1),
                RetryInitialDelay = TimeSpan.FromTicks(10),
                RetryMaxDelay = TimeSpan.FromTicks(100),
            };

            var outcomes = new Dictionary<string, List<(long Version, Exception? Error)>>();
            var completionOrder = new Dictionary<string, List<long>>();
            var calls = new List<Task>();
            await using (var stage = new GroupCommitStage(faults, options, metrics: new StorageMetrics(Metrics.NewCustomRegistry())))
            {
                for (var d = 0; d < docCount; d++)
                {
                    completionOrder[$"doc-{d}"] = [];
                }

                // Runs on the single completion loop: no lock needed.
                stage.CompletionObserver = record => completionOrder[record.DocId].Add(record.Version);
                var next = new long[docCount];
                for (var d = 0; d < docCount; d++)
                {
                    outcomes[$"doc-{d}"] = [];
                }

                var remaining = docCount * opsPerDoc;
                while (remaining > 0)
                {
                    var d = random.Next(docCount);
                    if (next[d] == opsPerDoc)
                    {
                        continue;
                    }

                    var docId = $"doc-{d}";
                    var version = ++next[d];
                    remaining--;
                    calls.Add(ObserveAsync(stage.CommitAsync(new OpRecord(docId, version, "ours", version, null, new byte[] { (byte)version }, 1), default), outcomes[docId], version));
                    if (random.NextDouble() < 0.05)
                    {
                        await Task.Yield();
                    }
                }

                await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(20));
            }

            foreach (var (docId, unordered) in outcomes)
            {
                // Completion follows call order.
                Assert.Equal(Enumerable.Range(1, opsPerDoc).Select(v => (long)v), completionOrder[docId]);
                var results = unordered.OrderBy(r => r.Version).ToList();

                // Committed calls are a prefix; everything after is fenced, and only a document with a rival is fenced.
                var committed = results.TakeWhile(r => r.Error is null).Count();
                Assert.All(results.Skip(committed), r => Assert.IsType<VersionConflictException>(r.Error));
                var rivalVersion = rivalWrote.GetValueOrDefault(docId) ? rivals[docId].Version : (long?)null;
                if (rivalVersion is null)
                {
                    Assert.Equal(opsPerDoc, committed);
                }
                else
                {
                    Assert.True(committed < rivalVersion, $"{docId}: {committed} committed past the rival's version {rivalVersion}.");
                }

                // The store holds exactly our committed prefix (plus the rival's op), each once.
                var stored = await inner.ReadOpsAsync(docId, 0, long.MaxValue, int.MaxValue, default);
                Assert.Equal(Enumerable.Range(1, committed).Select(v => (long)v), stored.Where(o => o.ClientId == "ours").Select(o => o.Version));
                Assert.Equal(rivalVersion is null ? 0 : 1, stored.Count(o => o.ClientId == "rival"));
            }
        }

        private static async Task<bool> WriteRivalAsync(InMemoryOpStore store, string docId, long version)
        {
            var result = await store.AppendAsync([new OpRecord(docId, version, "rival", 1, null, new byte[] { 0xEE }, 1)], default);
            return result.ConflictedDocs.Count == 0;
        }

        private static async Task ObserveAsync(ValueTask commit, List<(long Version, Exception? Error)> results, long version)
        {
            Exception? error = null;
            try
            {
                await commit;
            }
            catch (VersionConflictException ex)
            {
                error = ex;
            }

            lock (results)
            {
                results.Add((version, error));
            }
        }
    }

    /// <summary>Fails appends at random (before writing, or after writing with the acknowledgement lost) and runs a hook per attempt.</summary>
    private sealed class FaultyStore(InMemoryOpStore inner, int seed, Func<int, Task> beforeAttempt) : IOpStore
    {
        private readonly Random _random = new(seed ^ 0x5EED);
        private int _attempts;

        public ValueTask InitializeAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public async ValueTask<AppendResult> AppendAsync(IReadOnlyList<OpRecord> batch, CancellationToken cancellationToken)
        {
            // Only the stage's single commit loop calls this, so the Random needs no lock.
            var attempt = _attempts++;
            await beforeAttempt(attempt);
            var roll = _random.NextDouble();
            if (roll < 0.5)
            {
                await Task.Yield();
            }

            if (roll < 0.15)
            {
                throw new IOException($"injected failure before attempt {attempt}");
            }

            var result = await inner.AppendAsync(batch, cancellationToken);
            if (roll > 0.9)
            {
                throw new IOException($"injected lost acknowledgement of attempt {attempt}");
            }

            return result;
        }

        public ValueTask<DocumentLoad?> LoadAsync(string docId, CancellationToken cancellationToken) => inner.LoadAsync(docId, cancellationToken);

        public ValueTask<IReadOnlyList<OpRecord>> ReadOpsAsync(string docId, long afterVersion, long toVersion, int limit, CancellationToken cancellationToken) =>
            inner.ReadOpsAsync(docId, afterVersion, toVersion, limit, cancellationToken);

        public ValueTask<OpLookup> FindOpAsync(string docId, string clientId, long clientSeq, long afterVersion, long toVersion, CancellationToken cancellationToken) =>
            inner.FindOpAsync(docId, clientId, clientSeq, afterVersion, toVersion, cancellationToken);

        public ValueTask<byte[]> GetOrCreateSecretAsync(string name, int length, CancellationToken cancellationToken) => inner.GetOrCreateSecretAsync(name, length, cancellationToken);

        public ValueTask WriteSnapshotAsync(SnapshotRecord snapshot, CancellationToken cancellationToken) => inner.WriteSnapshotAsync(snapshot, cancellationToken);

        public ValueTask<long> PruneAsync(TimeSpan retention, CancellationToken cancellationToken) => inner.PruneAsync(retention, cancellationToken);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
