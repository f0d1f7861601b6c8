using System.Diagnostics;
using Collab.Integration.Tests.Infrastructure;
using Npgsql;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Cluster;

/// <summary>Owners die (SIGKILL) or freeze past their lease (SIGSTOP) while their documents are busy.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterFailoverTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private static readonly string[] Documents = ["busy/1", "busy/2", "busy/3", "busy/4", "busy/5"];

    [Fact]
    public async Task Killing_the_owner_of_busy_documents_moves_them_and_loses_or_duplicates_nothing()
    {
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output);
        var editors = new List<Editor>();
        try
        {
            await Editor.OpenManyAsync(cluster, editors, "k", seedBase: 2000, Documents);

            using var run = new CancellationTokenSource();
            Task editing = Task.WhenAll(editors.Select(e => e.RunAsync(TimeSpan.FromMilliseconds(20), run.Token)));
            await Task.Delay(1500);

            // Kill the node that owns the most documents, mid-edit.
            (IReadOnlyDictionary<string, (string Owner, long Epoch)> before, string victim, string[] orphans) = await cluster.BusiestOwnerAsync();
            int editorsOnVictim = editors.Count(e => e.Client.ServerId == victim);
            await cluster.Node(victim).KillAsync();
            var killed = Stopwatch.StartNew();

            // Every orphan gets a new owner under a newer epoch, within the failover bound.
            TimeSpan takeover = await WaitForTakeoverAsync(cluster, orphans, before, victim, TimeSpan.FromSeconds(10));
            output.WriteLine($"Killed {victim} (owner of {string.Join(", ", orphans)}, {editorsOnVictim} clients); taken over after {takeover.TotalMilliseconds:F0} ms.");
            Assert.True(takeover < TimeSpan.FromSeconds(5), $"Takeover took {takeover}.");

            await Task.Delay(TimeSpan.FromSeconds(3) - killed.Elapsed > TimeSpan.Zero ? TimeSpan.FromSeconds(3) - killed.Elapsed : TimeSpan.Zero);
            await run.CancelAsync();
            await editing;
            await Task.WhenAll(editors.Select(e => e.WhenSyncedAsync(TimeSpan.FromSeconds(30))));

            // The victim's clients reconnected elsewhere and resent what was in flight.
            Assert.DoesNotContain(editors, e => e.Client.ServerId == victim);
            await AssertIntactAsync(cluster, editors, Documents);
        }
        catch
        {
            cluster.DumpLogs();
            throw;
        }
        finally
        {
            foreach (Editor editor in editors)
            {
                await editor.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_node_frozen_past_its_lease_writes_nothing_under_the_stale_lease_and_its_clients_recover()
    {
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output);
        var editors = new List<Editor>();
        try
        {
            await Editor.OpenManyAsync(cluster, editors, "s", seedBase: 3000, Documents);

            using var run = new CancellationTokenSource();
            Task editing = Task.WhenAll(editors.Select(e => e.RunAsync(TimeSpan.FromMilliseconds(20), run.Token)));
            await Task.Delay(1500);

            (IReadOnlyDictionary<string, (string Owner, long Epoch)> before, string frozen, _) = await cluster.BusiestOwnerAsync();
            Dictionary<string, long> staleEpochs = before.Where(l => l.Value.Owner == frozen).ToDictionary(l => l.Key, l => l.Value.Epoch);
            ServerProcess node = cluster.Node(frozen);
            node.Pause();

            // Frozen for twice the lease: the others take its documents over meanwhile.
            TimeSpan takeover = await WaitForTakeoverAsync(cluster, [.. staleEpochs.Keys], before, frozen, TimeSpan.FromSeconds(10));
            await Task.Delay(ClusterHarness.LeaseDuration * 2 - takeover > TimeSpan.Zero ? ClusterHarness.LeaseDuration * 2 - takeover : TimeSpan.Zero);
            long writtenBeforeWaking = await CountOpsUnderAsync(cluster, staleEpochs);
            node.Resume();
            output.WriteLine($"Froze {frozen} (owner of {string.Join(", ", staleEpochs.Keys)}); taken over after {takeover.TotalMilliseconds:F0} ms; {writtenBeforeWaking} ops under its epochs before it woke.");

            // It wakes up with ops in flight and a stale view; it must find its leases gone before writing anything.
            await Task.Delay(TimeSpan.FromSeconds(3));
            await run.CancelAsync();
            await editing;
            await Task.WhenAll(editors.Select(e => e.WhenSyncedAsync(TimeSpan.FromSeconds(30))));

            Assert.Equal(writtenBeforeWaking, await CountOpsUnderAsync(cluster, staleEpochs));
            await cluster.WaitForMembershipAsync(3, TimeSpan.FromSeconds(10));
            await AssertIntactAsync(cluster, editors, Documents);
        }
        catch
        {
            cluster.DumpLogs();
            throw;
        }
        finally
        {
            foreach (Editor editor in editors)
            {
                await editor.DisposeAsync();
            }
        }
    }

    /// <summary>Waits until each of <paramref name="docIds"/> is leased to another node under a newer epoch; returns how long that took.</summary>
    internal static async Task<TimeSpan> WaitForTakeoverAsync(
        ClusterHarness cluster, IReadOnlyCollection<string> docIds, IReadOnlyDictionary<string, (string Owner, long Epoch)> before, string lost, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            IReadOnlyDictionary<string, (string Owner, long Epoch)> now = await cluster.ReadLeasesAsync();
            if (docIds.All(d => now.TryGetValue(d, out var lease) && lease.Owner != lost && lease.Epoch > before[d].Epoch))
            {
                return clock.Elapsed;
            }

            if (clock.Elapsed > timeout)
            {
                Assert.Fail($"Not all of {string.Join(", ", docIds)} were taken over from {lost} within {timeout}.\n{cluster.Logs()}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Logs whole and exact, every client converged on them, and every live node serving the same text.</summary>
    internal static async Task AssertIntactAsync(ClusterHarness cluster, IReadOnlyList<Editor> editors, IEnumerable<string> docIds)
    {
        var acked = editors.SelectMany(e => e.Acked).ToList();
        foreach (string docId in docIds)
        {
            IReadOnlyList<LoggedOp> ops = await cluster.VerifyLogAsync(docId, acked);
            string expected = ClusterHarness.Replay(ops);
            await ClusterAssert.ConvergedAsync(editors, docId, expected, TimeSpan.FromSeconds(20), cluster);
            await cluster.AssertEveryNodeServesAsync(docId, expected, TimeSpan.FromSeconds(10));

            // Owners follow each other: epochs never go back along the versions.
            for (int i = 1; i < ops.Count; i++)
            {
                Assert.True(ops[i].Epoch >= ops[i - 1].Epoch, $"{docId}: version {ops[i].Version} written under epoch {ops[i].Epoch} after epoch {ops[i - 1].Epoch}.");
            }
        }
    }

    private static async Task<long> CountOpsUnderAsync(ClusterHarness cluster, Dictionary<string, long> epochs)
    {
        await using var connection = new NpgsqlConnection(cluster.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT count(*) FROM ops o JOIN unnest($1::text[], $2::bigint[]) AS s(doc_id, epoch) ON o.doc_id = s.doc_id AND o.epoch = s.epoch", connection);
        command.Parameters.AddWithValue(epochs.Keys.ToArray());
        command.Parameters.AddWithValue(epochs.Values.ToArray());
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
