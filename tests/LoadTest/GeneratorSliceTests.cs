using System.Diagnostics;
using Collab.Integration.Tests.Infrastructure;
using Collab.LoadTest.Hosting;

namespace Collab.LoadTest.Tests;

/// <summary>
/// <c>--generator-slice</c> on this machine's kernel: the option's range, a generator thread that takes the slice, and
/// a process spawned while generator threads have it, which must start with the kernel's default (a child inherits the
/// slice of the thread that forks it, and a spawned server must be measured as it would run alone).
/// </summary>
public sealed class GeneratorSliceTests
{
    [Theory]
    [InlineData("0", 0)]
    [InlineData("100", 100)]
    [InlineData("100000", 100_000)]
    public void The_option_takes_zero_or_the_kernels_range(string value, int micros) =>
        Assert.Equal(micros, LoadTestOptions.Parse(["small", "--generator-slice", value]).GeneratorSliceMicros);

    [Theory]
    [InlineData("50")]
    [InlineData("100001")]
    [InlineData("-1")]
    [InlineData("fast")]
    public void A_value_the_kernel_would_clamp_is_refused(string value) =>
        Assert.Contains("--generator-slice takes 0", Assert.Throws<OptionsException>(() => LoadTestOptions.Parse(["small", "--generator-slice", value])).Message, StringComparison.Ordinal);

    [Fact]
    public void A_generator_thread_takes_the_slice_and_a_process_spawned_meanwhile_starts_with_the_default()
    {
        Assert.True(OperatingSystem.IsLinux(), "the generator's scheduling calls are Linux-only; this suite runs on Linux");
        bool applied = false;
        long own = 0;
        long spawned = 0;
        var generator = new Thread(() =>
        {
            applied = GeneratorSlice.ApplyToCurrentThread(300_000);
            own = KernelSlice.OfCurrentThread();
            spawned = GeneratorSlice.WithDefaultSlice(() =>
            {
                using Process child = Process.Start(new ProcessStartInfo("cat", "/proc/self/sched") { RedirectStandardOutput = true })!;
                string output = child.StandardOutput.ReadToEnd();
                child.WaitForExit();
                return KernelSlice.Parse(output);
            });
        });
        generator.Start();
        generator.Join();

        if (applied)
        {
            Assert.Equal(300_000, own);
            Assert.NotEqual(300_000, spawned);
            Assert.True(spawned > 0, "the spawned process shows no se.slice");
        }
        else
        {
            // A kernel before 6.12 ignores the slice: nothing to inherit, and the report says it was not applied.
            Assert.NotEqual(300_000, own);
        }
    }
}
