using CsCheck;

namespace Collab.Server.Tests.Fuzz;

/// <summary>
/// Runs a fuzz property on fixed seeds (reproducible in CI) and one fresh seed per run; CsCheck prints the
/// failing seed and the shrunk input, which then belongs in Regressions/ (see its README). CI runs the
/// given iteration counts (seconds in total); <c>COLLAB_FUZZ_SCALE=100</c> multiplies them for a long local campaign.
/// </summary>
public static class FuzzCheck
{
    private static readonly int Scale = int.TryParse(Environment.GetEnvironmentVariable("COLLAB_FUZZ_SCALE"), out int scale) && scale > 0 ? scale : 1;

    private static readonly string[] FixedSeeds =
    [
        new PCG(11, 0x5EC0_0001).ToString(),
        new PCG(12, 0x5EC0_0002).ToString(),
    ];

    public static void Run<T>(Gen<T> gen, Action<T> assert, int iterations, Func<T, string>? print = null)
    {
        foreach (string seed in FixedSeeds)
        {
            gen.Sample(assert, seed: seed, iter: iterations, print: print);
        }

        gen.Sample(assert, iter: iterations * Scale, print: print);
    }

    public static async Task RunAsync<T>(Gen<T> gen, Func<T, Task> assert, int iterations, Func<T, string>? print = null, int threads = -1)
    {
        foreach (string seed in FixedSeeds)
        {
            await gen.SampleAsync(assert, seed: seed, iter: iterations, threads: threads, print: print);
        }

        await gen.SampleAsync(assert, iter: iterations * Scale, threads: threads, print: print);
    }

    /// <summary>Byte-level mutations of an input, as a fuzzer's mutator applies them.</summary>
    public static Gen<Mutation[]> Mutations(int max) =>
        Gen.Select(Gen.Int[0, 5], Gen.Int[0, int.MaxValue], Gen.Byte, Gen.Int[1, 16], (kind, position, value, length) => new Mutation((MutationKind)kind, position, value, length))
            .Array[0, max];

    public static byte[] Apply(byte[] input, Mutation[] mutations)
    {
        var bytes = new List<byte>(input);
        foreach (Mutation m in mutations)
        {
            if (bytes.Count == 0)
            {
                bytes.Add(m.Value);
                continue;
            }

            int at = m.Position % bytes.Count;
            switch (m.Kind)
            {
                case MutationKind.FlipBit:
                    bytes[at] ^= (byte)(1 << (m.Value & 7));
                    break;
                case MutationKind.SetByte:
                    bytes[at] = m.Value;
                    break;
                case MutationKind.Truncate:
                    bytes.RemoveRange(at, bytes.Count - at);
                    break;
                case MutationKind.Insert:
                    bytes.InsertRange(at, Enumerable.Range(0, m.Length).Select(i => (byte)(m.Value + (i * 31))));
                    break;
                case MutationKind.Delete:
                    bytes.RemoveRange(at, Math.Min(m.Length, bytes.Count - at));
                    break;
                default:
                    bytes.InsertRange(at, bytes.GetRange(at, Math.Min(m.Length, bytes.Count - at)));
                    break;
            }
        }

        return [.. bytes];
    }
}

public enum MutationKind
{
    FlipBit,
    SetByte,
    Truncate,
    Insert,
    Delete,
    Duplicate,
}

public readonly record struct Mutation(MutationKind Kind, int Position, byte Value, int Length);
