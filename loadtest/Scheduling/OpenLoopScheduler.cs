using Collab.LoadTest.Hosting;
using Collab.LoadTest.Metrics;

namespace Collab.LoadTest.Scheduling;

/// <summary>Something the schedule drives: a simulated writer.</summary>
internal interface IScheduleTarget
{
    /// <summary>An op is due; <paramref name="scheduled"/> is its scheduled timestamp (latency counts from it).</summary>
    void OnScheduled(long scheduled);
}

/// <summary>
/// The open-loop schedule: writer k submits at start + phase_k + n·interval for n = 0, 1, ... whatever the server
/// does, each op stamped with that scheduled time (so a slow server shows up as latency, never as fewer ops: no
/// coordinated omission). One dedicated thread serves every writer from a priority queue keyed by due time and
/// sleeps until the next due time on an absolute CLOCK_MONOTONIC deadline, so ops leave on time at low rates too.
/// </summary>
internal sealed class OpenLoopScheduler
{
    private readonly IReadOnlyList<IScheduleTarget> _writers;
    private readonly long _interval;
    private readonly long _start;
    private readonly long _end;
    private readonly LatencyMetric _lag;
    private readonly MeasurementWindow _window;
    private readonly Random _random;
    private readonly ulong _sliceNanoseconds;
    private volatile bool _stop;
    private Thread? _thread;

    /// <param name="writers">Clients that submit.</param>
    /// <param name="ratePerClient">Ops per second per writer.</param>
    /// <param name="start">Timestamp of the first possible op.</param>
    /// <param name="end">No op is scheduled at or after this timestamp.</param>
    /// <param name="lag">Records how late the thread handed each op over (the generator's own delay).</param>
    /// <param name="window">Decides which lag values belong to the step.</param>
    /// <param name="seed">Seeds the random phases.</param>
    /// <param name="sliceNanoseconds">The EEVDF slice the thread asks for (<c>--generator-slice</c>; 0: the kernel's default).</param>
    public OpenLoopScheduler(IReadOnlyList<IScheduleTarget> writers, double ratePerClient, long start, long end, LatencyMetric lag, MeasurementWindow window, int seed, ulong sliceNanoseconds = 0)
    {
        if (ratePerClient <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ratePerClient), "The rate must be positive.");
        }

        _writers = writers;
        _interval = Math.Max(1, Clock.FromSeconds(1.0 / ratePerClient));
        _start = start;
        _end = end;
        _lag = lag;
        _window = window;
        _random = new Random(seed);
        _sliceNanoseconds = sliceNanoseconds;
    }

    /// <summary>Whether the scheduler thread runs at nice -20 (see <see cref="Native.RaiseThreadPriority"/>); known once it started.</summary>
    public bool PriorityRaised { get; private set; }

    /// <summary>Whether the scheduler thread runs with the shorter slice asked for; known once it started.</summary>
    public bool SliceApplied { get; private set; }

    /// <summary>Ops handed to clients so far.</summary>
    public long Scheduled { get; private set; }

    public void Start()
    {
        _thread = new Thread(Run) { Name = "open-loop scheduler", IsBackground = true, Priority = ThreadPriority.AboveNormal };
        _thread.Start();
    }

    /// <summary>Stops early (cancellation) and waits for the thread.</summary>
    public void Stop()
    {
        _stop = true;
        _thread?.Join();
    }

    /// <summary>Waits until the schedule ran out.</summary>
    public void Join() => _thread?.Join();

    private void Run()
    {
        Native.SetTightTimerSlack();
        PriorityRaised = Native.RaiseThreadPriority();
        SliceApplied = GeneratorSlice.ApplyToCurrentThread(_sliceNanoseconds);
        var queue = new PriorityQueue<IScheduleTarget, long>(_writers.Count);
        foreach (IScheduleTarget writer in _writers)
        {
            // A random phase in [0, interval) spreads the writers evenly, as independent users would be.
            queue.Enqueue(writer, _start + (long)(_random.NextDouble() * _interval));
        }

        long scheduled = 0;
        while (!_stop)
        {
            // Stop only once no slot before the end is left: a thread that wakes up late (after the end) still
            // serves every slot that fell due before it, so a lagging generator is measured, not hidden.
            if (!queue.TryPeek(out _, out long earliest) || earliest >= _end)
            {
                break;
            }

            long now = Clock.Now;

            int handled = 0;
            while (queue.TryPeek(out IScheduleTarget? writer, out long due) && due <= now)
            {
                queue.Dequeue();
                if (due < _end)
                {
                    writer.OnScheduled(due);
                    _lag.Record(Clock.ToMicros(Clock.Now - due), _window.Contains(due));
                    scheduled++;
                    queue.Enqueue(writer, due + _interval);
                }

                if (++handled % 64 == 0)
                {
                    now = Clock.Now;
                }
            }

            long next = queue.TryPeek(out _, out long nextDue) ? Math.Min(nextDue, _end) : _end;
            // Wake at least every 100 ms to notice Stop().
            Native.SleepUntil(Math.Min(next, Clock.Now + Clock.FromSeconds(0.1)));
        }

        Scheduled = scheduled;
    }
}
