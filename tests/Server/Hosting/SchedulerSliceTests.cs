using System.Globalization;
using Collab.Integration.Tests.Infrastructure;
using Collab.Server.Hosting;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Server.Tests.Hosting;

/// <summary>
/// <see cref="SchedulerSlice"/>: what it does on kernels and processes that cannot take a slice (told apart by what the
/// kernel reports back, played by <see cref="FakeKernel"/>), that it reaches threads started while it runs, and, on this
/// machine's real kernel, that a thread started by a thread with the slice inherits it (what makes setting it once at
/// start-up enough). The whole server process is checked in the integration test <c>SchedulerSliceTests</c>.
/// </summary>
public sealed class SchedulerSliceTests
{
    private static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(0.3);

    [Fact]
    public void Every_thread_gets_the_slice_and_keeps_its_nice_value_and_policy()
    {
        var kernel = new FakeKernel([101, 102, 103]);
        var logger = new RecordingLogger();

        SchedulerSliceResult result = SchedulerSlice.Apply(Slice, kernel, logger);

        Assert.Equal(new SchedulerSliceResult(SchedulerSliceOutcome.Applied, 3, null), result);
        Assert.All(kernel.Threads(), tid => Assert.Equal(300_000UL, kernel.Attributes[tid].Runtime));
        Assert.All(kernel.Threads(), tid => Assert.Equal(-20, kernel.Attributes[tid].Nice));
        Assert.All(kernel.Threads(), tid => Assert.Equal(0U, kernel.Attributes[tid].Policy));
        (_, Microsoft.Extensions.Logging.EventId id, string message) = Assert.Single(logger.Entries);
        Assert.Equal(5190, id.Id);
        Assert.Equal("Scheduler slice of 300 µs applied to 3 threads (threads started later inherit it)", message);
    }

    [Fact]
    public void A_thread_started_while_it_runs_is_reached_by_another_pass()
    {
        var kernel = new FakeKernel([101, 102]) { StartDuringFirstSet = 104 };

        SchedulerSliceResult result = SchedulerSlice.Apply(Slice, kernel, new RecordingLogger());

        Assert.Equal(3, result.Threads);
        Assert.Equal(300_000UL, kernel.Attributes[104].Runtime);
    }

    [Fact]
    public void A_thread_that_ended_during_the_pass_is_skipped()
    {
        var kernel = new FakeKernel([101, 102, 103]) { Ended = 102 };

        SchedulerSliceResult result = SchedulerSlice.Apply(Slice, kernel, new RecordingLogger());

        Assert.Equal(new SchedulerSliceResult(SchedulerSliceOutcome.Applied, 2, null), result);
    }

    [Fact]
    public void A_kernel_that_ignores_the_slice_is_reported_and_nothing_is_claimed()
    {
        // Before 6.12 sched_setattr accepts sched_runtime for SCHED_OTHER and drops it; sched_getattr reports 0.
        var kernel = new FakeKernel([101, 102]) { IgnoresSlice = true };
        var logger = new RecordingLogger();

        SchedulerSliceResult result = SchedulerSlice.Apply(Slice, kernel, logger);

        Assert.Equal(SchedulerSliceOutcome.Unsupported, result.Outcome);
        Assert.Equal(0, result.Threads);
        (_, Microsoft.Extensions.Logging.EventId id, string message) = Assert.Single(logger.Entries);
        Assert.Equal(5191, id.Id);
        Assert.StartsWith("Scheduler slice of 300 µs not applied: the kernel ignores the slice of a SCHED_OTHER thread (it reported 0 ns back", message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_refused_call_is_reported_with_its_errno()
    {
        var kernel = new FakeKernel([101]) { SetError = 1 }; // EPERM, e.g. a seccomp profile that forbids it

        SchedulerSliceResult result = SchedulerSlice.Apply(Slice, kernel, new RecordingLogger());

        Assert.Equal(SchedulerSliceOutcome.Unsupported, result.Outcome);
        Assert.Contains("(errno 1)", result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_the_system_call_nothing_is_attempted()
    {
        var kernel = new FakeKernel([101]) { IsAvailable = false };
        var logger = new RecordingLogger();

        SchedulerSliceResult result = SchedulerSlice.Apply(Slice, kernel, logger);

        Assert.Equal(SchedulerSliceOutcome.Unsupported, result.Outcome);
        Assert.Equal(0, kernel.Calls);
        Assert.Equal(5191, Assert.Single(logger.Entries).Id.Id);
    }

    [Fact]
    public void Threads_in_a_real_time_class_are_left_alone()
    {
        var kernel = new FakeKernel([101, 102]) { Policy = 1 }; // SCHED_FIFO, e.g. under chrt -f
        var logger = new RecordingLogger();

        SchedulerSliceResult result = SchedulerSlice.Apply(Slice, kernel, logger);

        Assert.Equal(SchedulerSliceOutcome.RealTime, result.Outcome);
        Assert.Equal(0UL, kernel.Attributes[101].Runtime);
        Assert.Equal(5192, Assert.Single(logger.Entries).Id.Id);
    }

    [Fact]
    public void Zero_leaves_the_kernels_default_without_a_call_or_a_log_line()
    {
        var kernel = new FakeKernel([101]);
        var logger = new RecordingLogger();

        Assert.Equal(SchedulerSliceOutcome.Disabled, SchedulerSlice.Apply(TimeSpan.Zero, kernel, logger).Outcome);
        Assert.Equal(0, kernel.Calls);
        Assert.Empty(logger.Entries);
    }

    [Theory]
    [InlineData("00:00:00.00005")]
    [InlineData("00:00:00.1000001")]
    [InlineData("-00:00:00.001")]
    public void A_slice_the_kernel_would_clamp_is_refused(string value)
    {
        var options = new SchedulingOptions { SchedulerSlice = TimeSpan.Parse(value, CultureInfo.InvariantCulture) };

        var invalid = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(options.Validate);

        Assert.StartsWith("Server:SchedulerSlice: must be zero (the kernel's default) or between", Assert.Single(invalid.Failures), StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => SchedulerSlice.Apply(options.SchedulerSlice, new FakeKernel([101]), new RecordingLogger()));
    }

    [Fact]
    public void The_default_is_the_kernels_minimum() =>
        Assert.Equal(TimeSpan.FromMilliseconds(0.1), new SchedulingOptions().SchedulerSlice);

    [Theory]
    [InlineData("00:00:00")]
    [InlineData("00:00:00.0001")]
    [InlineData("00:00:00.1")]
    public void The_kernels_range_and_zero_are_accepted(string value) =>
        new SchedulingOptions { SchedulerSlice = TimeSpan.Parse(value, CultureInfo.InvariantCulture) }.Validate();

    /// <summary>
    /// The real kernel, on two threads of this test process only (the rest keep theirs): a thread that set its slice
    /// starts another, which runs with the same slice. On a kernel before 6.12 the call is ignored, and both say so.
    /// </summary>
    [Fact]
    public void On_this_kernel_a_thread_started_by_a_thread_with_the_slice_inherits_it()
    {
        Assert.True(OperatingSystem.IsLinux(), "the server's scheduling step is Linux-only; this suite runs on Linux");
        ThreadSliceResult set = default;
        long parentSlice = 0;
        long childSlice = 0;
        var parent = new Thread(() =>
        {
            set = ThreadSlice.Set(LinuxSchedulerCalls.Instance, 0, 300_000);
            parentSlice = KernelSlice.OfCurrentThread();
            var child = new Thread(() => childSlice = KernelSlice.OfCurrentThread());
            child.Start();
            child.Join();
        });
        parent.Start();
        parent.Join();

        if (set.Outcome == ThreadSliceOutcome.Set)
        {
            Assert.Equal(300_000, parentSlice);
            Assert.Equal(300_000, childSlice);
        }
        else
        {
            Assert.Equal(ThreadSliceOutcome.Ignored, set.Outcome);
            Assert.NotEqual(300_000, childSlice);
        }
    }

    /// <summary>A kernel as <see cref="SchedulerSlice"/> sees it: threads with attributes, and the ways it can say no.</summary>
    private sealed class FakeKernel(int[] threads) : ISchedulerCalls
    {
        private readonly List<int> _threads = [.. threads];

        public Dictionary<int, SchedAttr> Attributes { get; } = threads.ToDictionary(t => t, _ => new SchedAttr { Size = 56, Nice = -20 });

        public bool IsAvailable { get; init; } = true;

        public bool IgnoresSlice { get; init; }

        public int SetError { get; init; }

        public uint Policy
        {
            init
            {
                foreach (int t in threads)
                {
                    Attributes[t] = Attributes[t] with { Policy = value };
                }
            }
        }

        public int? StartDuringFirstSet { get; init; }

        public int? Ended { get; init; }

        public int Calls { get; private set; }

        public bool Available => IsAvailable;

        public IReadOnlyList<int> Threads() => [.. _threads];

        public int GetAttributes(int threadId, out SchedAttr attributes)
        {
            Calls++;
            if (threadId == Ended)
            {
                attributes = default;
                return 3; // ESRCH
            }

            attributes = Attributes[threadId];
            return 0;
        }

        public int SetAttributes(int threadId, in SchedAttr attributes)
        {
            Calls++;
            if (SetError != 0)
            {
                return SetError;
            }

            if (StartDuringFirstSet is int started && !_threads.Contains(started))
            {
                _threads.Add(started);
                Attributes[started] = new SchedAttr { Size = 56, Nice = -20 };
            }

            Attributes[threadId] = IgnoresSlice ? attributes with { Runtime = 0 } : attributes;
            return 0;
        }
    }
}
