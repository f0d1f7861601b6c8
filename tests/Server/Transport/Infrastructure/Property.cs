using CsCheck;

namespace Collab.Server.Tests.Transport.Infrastructure;

/// <summary>
/// Property-test runner: a fixed set of seeds (stable regressions) then one fresh random run. CsCheck
/// prints the failing seed ("Set seed: ... or -e CsCheck_Seed=...") so any failure can be replayed.
/// </summary>
internal static class Property
{
    private static readonly string[] FixedSeeds = { "0000000001C1", "00000004JrX8", "00000009qSgf", "0000000e8gBm" };

    public static void Check<T>(Gen<T> gen, Action<T> assert, long iterations = 2_000)
    {
        foreach (string seed in FixedSeeds)
        {
            gen.Sample(assert, seed: seed, iter: 1, threads: 1);
        }

        gen.Sample(assert, iter: iterations);
    }
}
