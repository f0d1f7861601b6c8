using CsCheck;

namespace Collab.Client.Tests;

public sealed class ReconnectPolicyTests
{
    private static readonly ReconnectPolicy Policy = new() { MinDelay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(10) };

    [Fact]
    public void Delay_StaysWithinFloorAndExponentialCeiling()
    {
        Gen.Select(Gen.Int[1, 200], Gen.Double[0.0, 0.999999]).Sample((attempt, unit) =>
        {
            TimeSpan delay = Policy.GetDelay(attempt, unit);
            double ceiling = Math.Min(Policy.MaxDelay.Ticks, Policy.MinDelay.Ticks * Math.Pow(2, Math.Min(attempt, 62)));
            return delay >= Policy.MinDelay && delay.Ticks <= ceiling && delay <= Policy.MaxDelay;
        }, iter: 5000);
    }

    [Fact]
    public void Ceiling_DoublesPerAttemptAndSaturatesAtMaxDelay()
    {
        double top = 1.0 - 1e-12;
        Assert.Equal(200, Policy.GetDelay(1, top).TotalMilliseconds, 1);
        Assert.Equal(400, Policy.GetDelay(2, top).TotalMilliseconds, 1);
        Assert.Equal(800, Policy.GetDelay(3, top).TotalMilliseconds, 1);
        Assert.Equal(10_000, Policy.GetDelay(7, top).TotalMilliseconds, 1);
        Assert.Equal(10_000, Policy.GetDelay(1_000_000, top).TotalMilliseconds, 1);
        Assert.Equal(Policy.MinDelay, Policy.GetDelay(50, 0.0));
    }

    [Fact]
    public void Jitter_SpreadsDelaysOverTheWindow()
    {
        var delays = Enumerable.Range(0, 500).Select(_ => Policy.GetDelay(6)).ToList();
        Assert.All(delays, d => Assert.InRange(d, Policy.MinDelay, TimeSpan.FromMilliseconds(6400)));
        Assert.True(delays.Distinct().Count() > 400, "full jitter must not collapse onto a few values");
        // Uniform over [100, 6400] ms: both halves of the window are hit.
        Assert.Contains(delays, d => d < TimeSpan.FromMilliseconds(3250));
        Assert.Contains(delays, d => d > TimeSpan.FromMilliseconds(3250));
    }

    [Fact]
    public void AllowsAttempt_HonoursMaxAttempts()
    {
        Assert.True(ReconnectPolicy.Default.AllowsAttempt(1_000_000));
        Assert.False(ReconnectPolicy.None.AllowsAttempt(1));
        var three = new ReconnectPolicy { MaxAttempts = 3 };
        Assert.True(three.AllowsAttempt(3));
        Assert.False(three.AllowsAttempt(4));
    }

    [Fact]
    public void Validate_RejectsInconsistentPolicies()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReconnectPolicy { MinDelay = TimeSpan.Zero }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReconnectPolicy { MinDelay = TimeSpan.FromSeconds(2), MaxDelay = TimeSpan.FromSeconds(1) }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReconnectPolicy { MaxAttempts = -1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => Policy.GetDelay(0, 0.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => Policy.GetDelay(1, 1.0));
    }
}
