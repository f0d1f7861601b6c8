using Collab.Engine.Text;

namespace Collab.Engine.Tests.Text;

/// <summary>Replays ot-text-unicode's published transform vectors (tests/Engine/Vectors/README.md).</summary>
public sealed class TextUnicodeVectorTests
{
    private static readonly string VectorFile = Path.Combine(AppContext.BaseDirectory, "Vectors", "text-unicode-transform-tests.txt");

    public static IEnumerable<object[]> Groups()
    {
        string[] lines = File.ReadAllLines(VectorFile).Where(line => line.Length > 0).ToArray();
        for (int i = 0; i + 4 <= lines.Length; i += 4)
        {
            yield return [i / 4, lines[i], lines[i + 1], lines[i + 2], lines[i + 3]];
        }
    }

    [Fact]
    public void VectorFileHasEveryGroup()
    {
        string[] lines = File.ReadAllLines(VectorFile).Where(line => line.Length > 0).ToArray();
        Assert.Equal(0, lines.Length % 4);
        Assert.Equal(46, lines.Length / 4);
        Assert.Equal(lines.Length / 4, Groups().Count());
    }

    [Theory]
    [MemberData(nameof(Groups))]
    public void TransformMatchesTextUnicode(int group, string op, string otherOp, string side, string expected)
    {
        TransformSide transformSide = side switch
        {
            "left" => TransformSide.Left,
            "right" => TransformSide.Right,
            _ => throw new FormatException($"Group {group}: bad side {side}"),
        };

        TextOp result = TextType.Transform(OpJson.Parse(op), OpJson.Parse(otherOp), transformSide);

        Assert.Equal(OpJson.Parse(expected), result);
    }

    [Theory]
    [MemberData(nameof(Groups))]
    public void VectorPairsConverge(int group, string op, string otherOp, string side, string expected)
    {
        _ = group;
        _ = side;
        _ = expected;
        TextOp a = OpJson.Parse(op);
        TextOp b = OpJson.Parse(otherOp);
        // A document long enough for both ops, with astral characters so offsets are code points.
        string doc = string.Concat(Enumerable.Range(0, Math.Max(a.BaseLength, b.BaseLength) + 3).Select(i => i % 3 == 0 ? "😀" : ((char)('a' + (i % 26))).ToString()));

        string left = TextType.Apply(TextType.Apply(doc, a), TextType.Transform(b, a, TransformSide.Right));
        string right = TextType.Apply(TextType.Apply(doc, b), TextType.Transform(a, b, TransformSide.Left));

        Assert.Equal(left, right);
    }
}
