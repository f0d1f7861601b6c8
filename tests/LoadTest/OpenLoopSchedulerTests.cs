using Collab.LoadTest.Metrics;
using Collab.LoadTest.Scheduling;

namespace Collab.LoadTest.Tests;

public sealed class OpenLoopSchedulerTests
{
    [Fact]
    public void Every_writer_gets_a_fixed_interval_schedule_from_a_random_phase_and_nothing_after_the_end()
    {
        var writers = Enumerable.Range(0, 20).Select(static _ => new RecordingTarget()).ToArray();
        long start = Clock.Now + Clock.FromSeconds(0.02);
        long end = start + Clock.FromSeconds(0.3);
        long interval = Clock.FromSeconds(1.0 / 50);
        var lag = new LatencyMetric();
        var scheduler = new OpenLoopScheduler(writers, 50, start, end, lag, new MeasurementWindow(), seed: 7);
        scheduler.Start();
        scheduler.Join();

        foreach (RecordingTarget writer in writers)
        {
            Assert.NotEmpty(writer.Due);
            long phase = writer.Due[0] - start;
            Assert.InRange(phase, 0, interval - 1);
            for (int i = 1; i < writer.Due.Count; i++)
            {
                Assert.Equal(interval, writer.Due[i] - writer.Due[i - 1]);
            }

            // Every slot in [start + phase, end) is served exactly once, however late the thread woke up.
            Assert.Equal((int)Math.Ceiling((double)(end - start - phase) / interval), writer.Due.Count);
            Assert.True(writer.Due[^1] < end);
        }

        Assert.Equal(writers.Sum(static w => w.Due.Count), scheduler.Scheduled);
        Assert.Equal(scheduler.Scheduled, lag.TakeInterval().Count);
        Assert.True(writers.Select(static w => w.Due[0]).Distinct().Count() > 1, "phases are random");
    }

    [Fact]
    public void A_thread_that_wakes_after_the_end_still_serves_every_slot_that_fell_due_before_it()
    {
        // Regression: the loop used to stop as soon as the clock passed the end, dropping the slots a late
        // (descheduled) generator thread still owed, so offered load was under-reported exactly when it lagged.
        var writers = Enumerable.Range(0, 4).Select(static _ => new RecordingTarget()).ToArray();
        long end = Clock.Now - Clock.FromSeconds(0.05);
        long start = end - Clock.FromSeconds(0.2);
        long interval = Clock.FromSeconds(1.0 / 50);
        var scheduler = new OpenLoopScheduler(writers, 50, start, end, new LatencyMetric(), new MeasurementWindow(), seed: 11);
        scheduler.Start();
        scheduler.Join();

        foreach (RecordingTarget writer in writers)
        {
            long phase = writer.Due[0] - start;
            Assert.Equal((int)Math.Ceiling((double)(end - start - phase) / interval), writer.Due.Count);
        }
    }

    [Fact]
    public void A_rate_must_be_positive()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new OpenLoopScheduler([], 0, 0, 1, new LatencyMetric(), new MeasurementWindow(), 1));
    }

    [Fact]
    public void Stop_ends_the_schedule_early()
    {
        var writer = new RecordingTarget();
        long start = Clock.Now;
        var scheduler = new OpenLoopScheduler([writer], 1000, start, start + Clock.FromSeconds(600), new LatencyMetric(), new MeasurementWindow(), 1);
        scheduler.Start();
        scheduler.Stop();
        Assert.True(writer.Due.Count < 600_000);
    }

    [Fact]
    public void The_scheduler_thread_runs_at_nice_minus_20_exactly_when_it_says_so()
    {
        var writer = new NiceRecordingTarget();
        long start = Clock.Now;
        var scheduler = new OpenLoopScheduler([writer], 100, start, start + Clock.FromSeconds(0.05), new LatencyMetric(), new MeasurementWindow(), seed: 3);
        scheduler.Start();
        scheduler.Join();

        // The nice value of the thread that handed over the slots, from the kernel (/proc/thread-self/stat field 19).
        Assert.NotNull(writer.Nice);
        Assert.Equal(scheduler.PriorityRaised, writer.Nice == -20);
    }

    private sealed class NiceRecordingTarget : IScheduleTarget
    {
        public int? Nice { get; private set; }

        public void OnScheduled(long scheduled)
        {
            string stat = File.ReadAllText("/proc/thread-self/stat");
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' '); // after "pid (comm) ": field 3 is fields[0]
            Nice ??= int.Parse(fields[19 - 3], System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    private sealed class RecordingTarget : IScheduleTarget
    {
        public List<long> Due { get; } = [];

        public void OnScheduled(long scheduled) => Due.Add(scheduled);
    }
}
