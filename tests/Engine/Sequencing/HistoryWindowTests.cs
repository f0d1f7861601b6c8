using Collab.Engine.Sequencing;

namespace Collab.Engine.Tests.Sequencing;

/// <summary>
/// The window's ring on its own: none until the first op (an open document nobody edits holds no history), then
/// powers of two from 4, with every held version readable in order across growth and trimming.
/// </summary>
public sealed class HistoryWindowTests
{
    [Fact]
    public void The_ring_is_allocated_on_the_first_op_and_grows_in_powers_of_two_keeping_order()
    {
        var window = new HistoryWindow<string>(version: 100);
        Assert.Equal(0, window.Capacity);
        Assert.Equal(0, window.Count);
        Assert.True(window.Covers(100));
        Assert.False(window.Covers(99));

        Append(window, 101);
        Assert.Equal(4, window.Capacity);

        for (long v = 102; v <= 105; v++)
        {
            Append(window, v);
        }

        Assert.Equal(8, window.Capacity);
        Assert.Equal(5, window.Count);
        Assert.Equal((101, 105), (window.FirstVersion, window.LastVersion));
        for (long v = 101; v <= 105; v++)
        {
            Assert.Equal("op" + v, window[v].Op);
            Assert.Equal(v, window[v].Record.Version);
        }

        // Trimmed to 3, then grown past the ring's wrap point: the ring keeps its size and the order holds.
        window.Trim(committedVersion: 105, maxOps: 3, maxBytes: long.MaxValue);
        Assert.Equal((103, 105), (window.FirstVersion, window.LastVersion));
        for (long v = 106; v <= 110; v++)
        {
            Append(window, v);
        }

        Assert.Equal(8, window.Capacity);
        Assert.Equal((103, 110), (window.FirstVersion, window.LastVersion));
        for (long v = 103; v <= 110; v++)
        {
            Assert.Equal("op" + v, window[v].Op);
        }

        Assert.Equal(8 * 10, window.Bytes);
    }

    private static void Append(HistoryWindow<string> window, long version) =>
        window.Append(new OpRecord("doc", version, "client", version, null, ReadOnlyMemory<byte>.Empty, 0), "op" + version, size: 10);
}
