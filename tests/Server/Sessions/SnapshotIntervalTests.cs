using Collab.Server.Sessions;

namespace Collab.Server.Tests.Sessions;

public sealed class SnapshotIntervalTests
{
    [Fact]
    public void Each_document_snapshots_between_the_interval_and_one_and_a_half_times_it_and_documents_spread_out()
    {
        var intervals = new HashSet<int>();
        for (var i = 0; i < 200; i++)
        {
            var interval = DocumentHub.SnapshotInterval($"doc-{i}", 1000);
            Assert.InRange(interval, 1000, 1499);
            Assert.Equal(interval, DocumentHub.SnapshotInterval($"doc-{i}", 1000)); // fixed per document
            intervals.Add(interval);
        }

        // 200 documents over 500 possible values: a burst at one instant would show up as a handful of values.
        Assert.True(intervals.Count > 100, $"only {intervals.Count} distinct intervals");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(int.MaxValue, int.MaxValue)]
    public void Tiny_and_huge_intervals_stay_in_range(int configured, int atLeast)
    {
        var interval = DocumentHub.SnapshotInterval("doc", configured);
        Assert.InRange(interval, atLeast, int.MaxValue);
        Assert.True(configured > 1 || interval == 1);
    }
}
