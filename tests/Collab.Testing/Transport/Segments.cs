using System.Buffers;

namespace Collab.Server.Tests.Transport.Infrastructure;

/// <summary>
/// Multi-segment <see cref="ReadOnlySequence{T}"/>s, as a pipe hands data over when it arrived in pieces: parsers
/// must give the same answer whatever the cuts.
/// </summary>
public static class Segments
{
    /// <summary><paramref name="data"/> in two segments, cut at <paramref name="split"/>.</summary>
    public static ReadOnlySequence<byte> TwoSegments(byte[] data, int split) => Cut(data, [split]);

    /// <summary><paramref name="data"/> cut at every position of <paramref name="splits"/> inside it (order and repeats do not matter).</summary>
    public static ReadOnlySequence<byte> Cut(byte[] data, IEnumerable<int> splits)
    {
        int[] cuts = [0, .. splits.Where(s => s > 0 && s < data.Length).Distinct().Order(), data.Length];
        if (cuts.Length == 2)
        {
            return new ReadOnlySequence<byte>(data);
        }

        var first = new Segment(data.AsMemory(cuts[0], cuts[1] - cuts[0]), 0);
        Segment last = first;
        for (int i = 1; i + 1 < cuts.Length; i++)
        {
            last = last.Append(data.AsMemory(cuts[i], cuts[i + 1] - cuts[i]));
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>One segment of a hand-built sequence.</summary>
    public sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
