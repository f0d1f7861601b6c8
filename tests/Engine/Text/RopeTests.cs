using System.Text;
using Collab.Engine.Text;

namespace Collab.Engine.Tests.Text;

public sealed class RopeTests
{
    private static string Mixed(int codePoints, int seed)
    {
        var random = new Random(seed);
        string[] alphabet = ["a", "b", " ", "\n", "é", "\u0301", "世", "界", "😀", "👻", "𝐀"];
        var sb = new StringBuilder();
        for (int i = 0; i < codePoints; i++)
        {
            sb.Append(alphabet[random.Next(alphabet.Length)]);
        }

        return sb.ToString();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(192)]
    [InlineData(256)]
    [InlineData(257)]
    [InlineData(700)]
    [InlineData(1024)]
    [InlineData(1025)]
    [InlineData(5_000)]
    [InlineData(300_000)]
    public void FromStringRoundTrips(int codePoints)
    {
        string text = Mixed(codePoints, codePoints);
        Rope rope = Rope.FromString(text);
        rope.CheckInvariants();
        Assert.Equal(text, rope.ToString());
        Assert.Equal(codePoints, rope.Length);
        Assert.Equal(text.Length, rope.Utf16Length);
        Assert.Equal(codePoints == 0, rope.IsEmpty);
        Assert.True(rope.ContentEquals(text));
        Assert.Equal(text, string.Concat(EnumerateChunks(rope)));
    }

    [Fact]
    public void ChunksNeverSplitSurrogatePairs()
    {
        // Put a pair across every plausible chunk boundary.
        foreach (int at in new[] { Rope.BuildLeaf - 1, Rope.BuildLeaf, Rope.MaxLeaf - 1, Rope.MaxLeaf, (Rope.MaxLeaf * 2) - 1 })
        {
            string text = new string('a', at) + "😀" + new string('b', 3000) + string.Concat(Enumerable.Repeat("😀", 2000));
            Rope rope = Rope.FromString(text);
            rope.CheckInvariants();
            Assert.Equal(text, rope.ToString());

            // Edits that overfill a chunk split it, again at a pair-safe point.
            Rope edited = rope.Insert(at, new string('c', Rope.MaxLeaf - 1)).Insert(at + 2, "😀");
            edited.CheckInvariants();
            Assert.Equal(text.Insert(at, new string('c', Rope.MaxLeaf - 1)).Insert(at + 2, "😀"), edited.ToString());
        }
    }

    [Fact]
    public void SliceCountsCodePointsAcrossChunks()
    {
        string text = Mixed(10_000, 7);
        Rope rope = Rope.FromString(text);
        int[] runeStarts = RuneStarts(text);
        var random = new Random(3);
        for (int i = 0; i < 300; i++)
        {
            int start = random.Next(0, 10_001);
            int length = random.Next(0, 10_001 - start);
            string expected = text[runeStarts[start]..runeStarts[start + length]];
            Assert.Equal(expected, rope.Slice(start, length));
        }

        Assert.Equal(string.Empty, rope.Slice(10_000, 0));
        Assert.Equal(text, rope.Slice(0, 10_000));
    }

    [Fact]
    public void EditsMatchStringModel()
    {
        string model = Mixed(3_000, 11);
        Rope rope = Rope.FromString(model);
        var random = new Random(5);
        for (int i = 0; i < 2_000; i++)
        {
            int length = TextGen.CodePointCount(model);
            int start = random.Next(0, length + 1);
            int removed = random.Next(0, Math.Min(length - start, i % 50 == 0 ? 4_000 : 8) + 1);
            string inserted = Mixed(i % 97 == 0 ? 2_500 : random.Next(0, 6), i);
            int[] starts = RuneStarts(model);
            model = model.Remove(starts[start], starts[start + removed] - starts[start]).Insert(starts[start], inserted);
            rope = rope.Replace(start, removed, inserted);
            Assert.Equal(TextGen.CodePointCount(model), rope.Length);
        }

        rope.CheckInvariants();
        Assert.Equal(model, rope.ToString());
    }

    [Fact]
    public void EveryVersionOfAnEditingSessionKeepsItsText()
    {
        // The sequencer hands every version to readers (snapshots, the committed view) while it edits the next one: each
        // version must read as the plain-string model said when it was made, however many edits follow it.
        string model = Mixed(2_000, 31);
        Rope rope = Rope.FromString(model);
        var random = new Random(17);
        var versions = new List<(Rope Rope, string Text)> { (rope, model) };
        for (int i = 0; i < 1_500; i++)
        {
            int length = TextGen.CodePointCount(model);
            TextOp op;
            int step = i % 40;
            if (step < 20)
            {
                // A typing burst of 16 at one cursor, then 4 backspaces: edits landing in one leaf one after another.
                int cursor = Math.Min((i / 40 * 7_919 % (length + 1)) + (step < 16 ? step : 32 - step), length);
                op = step < 16 ? TextOp.Insert(cursor, i % 5 == 0 ? "😀" : "k") : TextOp.Delete(cursor - 1, 1);
            }
            else
            {
                int start = random.Next(0, length + 1);
                int removed = random.Next(0, Math.Min(length - start, i % 100 == 0 ? 600 : 3) + 1);
                op = TextOp.Replace(start, removed, Mixed(random.Next(0, i % 50 == 0 ? 400 : 3), i));
            }

            rope = TextType.Apply(rope, op);
            model = TextType.Apply(model, op);
            versions.Add((rope, model));
        }

        foreach ((Rope version, string text) in versions)
        {
            version.CheckInvariants();
            Assert.Equal(text, version.ToString());
            Assert.Equal(text, string.Concat(EnumerateChunks(version)));
            int length = version.Length;
            int from = length / 3;
            int[] starts = RuneStarts(text);
            int count = Math.Min(length - from, 300);
            Assert.Equal(text[starts[from]..starts[from + count]], version.Slice(from, count));
        }
    }

    [Fact]
    public void SmallEditOfLargeDocumentCopiesOnlyOnePath()
    {
        Rope before = Rope.FromString(Mixed(1 << 20, 1));
        Rope after = before.Insert(before.Length / 2, "x").Remove(before.Length / 3, 2);
        after.CheckInvariants();

        var old = new HashSet<Rope>(ReferenceEqualityComparer.Instance);
        Collect(before, old);
        int fresh = CountFresh(after, old);

        // Two edits, each copying at most the root-to-leaf path (plus rotations and a chunk split).
        Assert.InRange(fresh, 2, 2 * (before.Height + 4));
        Assert.True(after.LeafCount >= before.LeafCount - 2);
        Assert.Equal(before.Length - 1, after.Length);
    }

    [Fact]
    public void LongEditingSessionStaysBalancedAndCompact()
    {
        Rope rope = Rope.FromString(Mixed(200_000, 2));
        var random = new Random(9);
        for (int i = 0; i < 20_000; i++)
        {
            // Typing-like churn: many single code point inserts and deletes, clustered in a few places.
            int around = (i / 500 * 7919 % rope.Length) + random.Next(0, 200);
            int at = Math.Min(around, rope.Length);
            rope = random.Next(3) == 0 && at < rope.Length ? rope.Remove(at, 1) : rope.Insert(at, random.Next(4) == 0 ? "😀" : "k");
        }

        rope.CheckInvariants();
        int leaves = rope.LeafCount;
        // AVL height bound: 1.44 log2(n + 2).
        Assert.True(rope.Height <= (int)(1.45 * Math.Log2(leaves + 2)) + 1, $"height {rope.Height} for {leaves} leaves");
        // Chunks stay reasonably full: on average at least a quarter of the maximum.
        Assert.True(leaves <= (rope.Utf16Length / Rope.MinLeaf) + 1, $"{leaves} leaves for {rope.Utf16Length} chars");
    }

    [Fact]
    public void DeletingMostOfEachChunkMergesFragments()
    {
        string text = Mixed(100_000, 4);
        Rope rope = Rope.FromString(text);
        // Leave only a few code points of every stretch: chunks shrink, and seams merge them.
        for (int at = 0; at + 10 < rope.Length; at += 10)
        {
            rope = rope.Remove(at, Math.Min(500, rope.Length - at - 10));
        }

        rope.CheckInvariants();
        Assert.True(rope.LeafCount <= (rope.Utf16Length / Rope.MinLeaf) + 2, $"{rope.LeafCount} leaves for {rope.Utf16Length} chars");
    }

    [Fact]
    public void EqualityIsByContentNotChunking()
    {
        string text = Mixed(5_000, 21);
        Rope built = Rope.FromString(text);
        int cut = char.IsLowSurrogate(text[3000]) ? 3001 : 3000;
        Rope edited = Rope.FromString(text[..cut]).Insert(TextGen.CodePointCount(text[..cut]), text[cut..]);
        Rope typed = Rope.Empty;
        foreach (Rune rune in text.EnumerateRunes())
        {
            typed = typed.Insert(typed.Length, rune.ToString());
        }

        typed.CheckInvariants();
        Assert.Equal(built, edited);
        Assert.Equal(built, typed);
        Assert.Equal(built.GetHashCode(), typed.GetHashCode());
        Assert.Equal(built.GetHashCode(), edited.GetHashCode());
        Assert.True(built.Equals((object)typed));
        Assert.NotEqual(built, typed.Remove(10, 1).Insert(10, "#"));
        Assert.NotEqual(built, typed.Remove(0, 1));
        Assert.False(built.ContentEquals(text + "x"));
        Assert.False(built.ContentEquals(text[..^1] + "#"));
        Assert.False(built.ContentEquals((string?)null));
        Assert.Equal(Rope.Empty, Rope.FromString(""));
        Assert.Same(Rope.Empty, Rope.FromString("x").Remove(0, 1));
    }

    [Fact]
    public void OldVersionsAreUnchangedByEdits()
    {
        string text = Mixed(20_000, 8);
        Rope v0 = Rope.FromString(text);
        Rope v1 = TextType.Apply(v0, TextOp.Replace(100, 5_000, "new"));
        Rope v2 = TextType.Apply(v1, TextOp.Delete(0, 50));
        Assert.Equal(text, v0.ToString());
        Assert.Equal(v1.Length - 50, v2.Length);
        v0.CheckInvariants();
        v1.CheckInvariants();
        v2.CheckInvariants();
    }

    [Fact]
    public void CopyToWritesTheWholeDocument()
    {
        string text = Mixed(3_000, 12);
        var buffer = new char[text.Length + 5];
        Rope.FromString(text).CopyTo(buffer);
        Assert.Equal(text, new string(buffer, 0, text.Length));
    }

    private static List<string> EnumerateChunks(Rope rope)
    {
        var chunks = new List<string>();
        foreach (ReadOnlyMemory<char> chunk in rope.EnumerateChunks())
        {
            Assert.False(chunk.IsEmpty);
            Assert.True(chunk.Length <= Rope.MaxLeaf);
            chunks.Add(chunk.ToString());
        }

        return chunks;
    }

    private static int[] RuneStarts(string text)
    {
        var starts = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length; i += char.IsHighSurrogate(text[i]) ? 2 : 1)
        {
            starts.Add(i);
        }

        starts.Add(text.Length);
        return [.. starts];
    }

    private static void Collect(Rope node, HashSet<Rope> into)
    {
        into.Add(node);
        if (node.LeftChild is { } left)
        {
            Collect(left, into);
            Collect(node.RightChild!, into);
        }
    }

    private static int CountFresh(Rope node, HashSet<Rope> old)
    {
        if (old.Contains(node))
        {
            return 0;
        }

        return 1 + (node.LeftChild is { } left ? CountFresh(left, old) + CountFresh(node.RightChild!, old) : 0);
    }
}
