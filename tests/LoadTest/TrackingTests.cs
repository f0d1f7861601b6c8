using System.Text;
using Collab.LoadTest.Client;
using Collab.LoadTest.Metrics;

namespace Collab.LoadTest.Tests;

public sealed class OpTrackTests
{
    [Fact]
    public void Delivery_returns_the_scheduled_time_once_per_expected_receiver()
    {
        var track = new OpTrack(16);
        Assert.True(track.Register(5, scheduled: 1234, receivers: 2));
        Assert.Equal(1234, track.Deliver(5, out bool extra));
        Assert.False(extra);
        Assert.Equal(1234, track.Deliver(5, out extra));
        Assert.False(extra);
        Assert.Equal(1234, track.Deliver(5, out extra));
        Assert.True(extra);
    }

    [Fact]
    public void Reused_slot_makes_late_deliveries_untracked_and_reports_the_overwrite()
    {
        var track = new OpTrack(16);
        Assert.Equal(16, track.Capacity);
        Assert.True(track.Register(1, 10, receivers: 1));
        Assert.False(track.Register(17, 20, receivers: 1)); // same slot, op 1 still undelivered
        Assert.Equal(-1, track.Deliver(1, out _));
        Assert.Equal(20, track.Deliver(17, out _));
        Assert.True(track.Register(33, 30, receivers: 1)); // op 17 was delivered: a clean reuse
    }

    [Fact]
    public void Outstanding_counts_missing_deliveries_of_the_ops_still_in_the_ring()
    {
        var track = new OpTrack(16);
        for (ulong seq = 1; seq <= 20; seq++)
        {
            track.Register(seq, (long)seq, receivers: 3);
        }

        track.Deliver(20, out _);
        track.Cancel(19);
        // Ops 5..20 are in the ring: 14 ops x 3 + op 20 x 2 + op 19 cancelled.
        Assert.Equal((14 * 3) + 2, track.Outstanding(20));
        Assert.Equal(0, new OpTrack(16).Outstanding(0));
    }

    [Fact]
    public void Capacity_rounds_up_to_a_power_of_two_of_at_least_16()
    {
        Assert.Equal(16, new OpTrack(1).Capacity);
        Assert.Equal(1024, new OpTrack(1000).Capacity);
    }
}

public sealed class DocStateTests
{
    [Fact]
    public void Op_hash_check_flags_a_different_op_at_the_same_version()
    {
        var doc = new DocState(0, "d");
        Assert.True(doc.VerifyOp(7, 111));
        Assert.True(doc.VerifyOp(7, 111));
        Assert.False(doc.VerifyOp(7, 222));
        Assert.True(doc.VerifyOp(7 + 4096, 333)); // the ring moved on
        Assert.True(doc.VerifyOp(7, 999)); // too old to check
    }
}

public sealed class LatencyMetricTests
{
    [Fact]
    public void Window_view_keeps_only_in_window_values_and_interval_view_everything_since_the_last_take()
    {
        var metric = new LatencyMetric();
        metric.Record(1_000, inWindow: true);
        metric.Record(2_000, inWindow: false);
        metric.Record(3_000, inWindow: true);

        LatencySummary interval = metric.TakeInterval();
        Assert.Equal(3, interval.Count);
        Assert.Equal(3.0, interval.Max, 2);
        Assert.Equal(0, metric.TakeInterval().Count);

        LatencySummary window = LatencySummary.From(metric.TakeWindow());
        Assert.Equal(2, window.Count);
        Assert.Equal(1.0, window.P50, 2);
        Assert.Equal(3.0, window.Max, 2);

        metric.Record(5_000, inWindow: true);
        metric.ResetWindow();
        Assert.Equal(0, metric.TakeWindow().TotalCount);
    }

    [Fact]
    public void Values_are_clamped_to_the_trackable_range()
    {
        var metric = new LatencyMetric();
        metric.Record(0, inWindow: true);
        metric.Record(long.MaxValue, inWindow: true);
        LatencySummary summary = LatencySummary.From(metric.TakeWindow());
        Assert.Equal(2, summary.Count);
        Assert.True(summary.Max >= LatencyMetric.HighestMicros / 1000.0 * 0.999);
    }

    [Fact]
    public void Window_contains_its_start_but_not_its_end()
    {
        var window = new MeasurementWindow();
        Assert.False(window.Contains(100));
        window.Set(100, 200);
        Assert.True(window.Contains(100));
        Assert.True(window.Contains(199));
        Assert.False(window.Contains(200));
        Assert.False(window.Contains(99));
        window.Clear();
        Assert.False(window.Contains(150));
    }
}

public sealed class ClientDirectoryTests
{
    [Fact]
    public void Hash_is_64_bit_fnv_1a()
    {
        Assert.Equal(0xcbf29ce484222325UL, ClientDirectory.Hash([]));
        Assert.Equal(0xaf63dc4c8601ec8cUL, ClientDirectory.Hash("a"u8));
        Assert.Equal(0x85944171f73967e8UL, ClientDirectory.Hash("foobar"u8));
    }

    [Fact]
    public void Empty_directory_finds_nothing()
    {
        Assert.False(ClientDirectory.Empty.TryFind(Encoding.UTF8.GetBytes("anyone"), out _));
    }
}
