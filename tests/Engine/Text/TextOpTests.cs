using Collab.Engine.Text;

namespace Collab.Engine.Tests.Text;

public sealed class TextOpTests
{
    private static TextOp Op(string json) => OpJson.Parse(json);

    [Fact]
    public void FactoriesBuildNormalizedOps()
    {
        Assert.Equal("[3,\"hi\"]", TextOp.Insert(3, "hi").ToString());
        Assert.Equal("[\"hi\"]", TextOp.Insert(0, "hi").ToString());
        Assert.Equal("[2,{\"d\":4}]", TextOp.Delete(2, 4).ToString());
        Assert.Equal("[1,{\"d\":2},\"x\"]", TextOp.Replace(1, 2, "x").ToString());
        Assert.True(TextOp.Insert(5, "").IsNoop);
        Assert.True(TextOp.Delete(5, 0).IsNoop);
        Assert.Equal(TextOp.Empty, default);
        Assert.Equal("[]", TextOp.Empty.ToString());
    }

    [Fact]
    public void LengthsCountCodePoints()
    {
        TextOp op = Op("[2, \"a👻b\", {\"d\": 3}]");
        Assert.Equal(3, op.Count);
        Assert.Equal(3, op[1].Length);
        Assert.Equal("a👻b", op[1].Text);
        Assert.Equal(5, op.BaseLength);
        Assert.Equal(5, op.TargetLength);
    }

    [Theory]
    [InlineData("[0]", "[]")]
    [InlineData("[\"\"]", "[]")]
    [InlineData("[{\"d\":0}]", "[]")]
    [InlineData("[{\"d\":2}]", "[{\"d\":2}]")]
    [InlineData("[1,1]", "[]")]
    [InlineData("[2,0]", "[]")]
    [InlineData("[1,1,\"hi\"]", "[2,\"hi\"]")]
    [InlineData("[{\"d\":1},{\"d\":1},\"hi\"]", "[{\"d\":2},\"hi\"]")]
    [InlineData("[\"a\",100]", "[\"a\"]")]
    [InlineData("[\"a\",\"b\"]", "[\"ab\"]")]
    [InlineData("[\"ab\",\"\"]", "[\"ab\"]")]
    [InlineData("[0,\"a\",0,\"b\",0]", "[\"ab\"]")]
    [InlineData("[\"a\",1,\"b\"]", "[\"a\",1,\"b\"]")]
    [InlineData("[{\"d\":1},\"x\"]", "[{\"d\":1},\"x\"]")]
    [InlineData("[\"x\",{\"d\":1}]", "[\"x\",{\"d\":1}]")]
    public void NormalizesLikeTextUnicode(string input, string expected)
    {
        // The builder drops empties, merges neighbours of one kind, trims the trailing retain,
        // and keeps insert/delete order (text-unicode never reorders them).
        Assert.Equal(expected, Op(input).ToString());
    }

    [Fact]
    public void BuilderSpillsPastInlineCapacityAndStaysNormalized()
    {
        var builder = new TextOpBuilder();
        for (int i = 0; i < 100; i++)
        {
            builder.Retain(1);
            builder.Insert("é");
            builder.Delete(2);
        }

        Assert.Equal(300, builder.Count);
        TextOp op = builder.ToOp();
        Assert.Equal(300, op.Count);
        Assert.Equal(300, op.BaseLength);
        Assert.Equal(200, op.TargetLength);
        TextType.Validate(op);
        Assert.Equal(0, builder.Count);

        // The builder is reusable after ToOp.
        builder.Insert("x");
        Assert.Equal("[\"x\"]", builder.ToOp().ToString());
    }

    [Fact]
    public void CreateNormalizesComponents()
    {
        TextOp op = TextOp.Create([TextComponent.Retain(1), TextComponent.Retain(2), TextComponent.Insert("a"), TextComponent.Insert("b"), TextComponent.Retain(4)]);
        Assert.Equal("[3,\"ab\"]", op.ToString());
        Assert.Equal(op, TextType.Normalize(op.Components));
    }

    [Fact]
    public void EqualityIsStructural()
    {
        TextOp a = Op("[1,\"x\",{\"d\":2}]");
        TextOp b = TextOp.Create([TextComponent.Retain(1), TextComponent.Insert("x"), TextComponent.Delete(2)]);
        Assert.Equal(a, b);
        Assert.True(a == b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, Op("[1,{\"d\":2},\"x\"]"));
        Assert.True(a != Op("[1,\"y\",{\"d\":2}]"));
        Assert.False(a.Equals((object)"[1]"));
    }

    [Fact]
    public void ToStringEscapesText()
    {
        Assert.Equal("[\"a\\\"b\\\\c\\n\\u0001\"]", TextOp.Insert(0, "a\"b\\c\n\u0001").ToString());
        Assert.Equal("{\"d\":3}", TextComponent.Delete(3).ToString());
    }

    [Fact]
    public void ComponentsEnumerateInOrder()
    {
        TextOp op = Op("[1,\"x\",{\"d\":2}]");
        var kinds = new List<TextComponentKind>();
        foreach (TextComponent c in op)
        {
            kinds.Add(c.Kind);
        }

        Assert.Equal([TextComponentKind.Retain, TextComponentKind.Insert, TextComponentKind.Delete], kinds);
    }

    // Examples from text-unicode's own unit tests (emoji handling, fuzzer regressions).

    [Fact]
    public void ComposeWithEmoji()
    {
        Assert.Equal(Op("[\"👻🥰\"]"), TextType.Compose(Op("[\"👻\"]"), Op("[1, \"🥰\"]")));
        Assert.Equal(Op("[1, \"ab\"]"), TextType.Compose(Op("[1, \"a👻b\"]"), Op("[2, {\"d\":1}]")));
        Assert.Equal(Op("[1, \"a👻\"]"), TextType.Compose(Op("[1, \"a👻b\"]"), Op("[3, {\"d\":1}]")));
        Assert.Equal(Op("[\"👻💃\"]"), TextType.Compose(Op("[\"👻🥰💃\"]"), Op("[1, {\"d\":1}]")));
    }

    [Fact]
    public void TransformWithEmoji()
    {
        Assert.Equal(Op("[\"👻\"]"), TextType.Transform(Op("[\"👻\"]"), Op("[\"🥰\"]"), TransformSide.Left));
        Assert.Equal(Op("[1, \"👻\"]"), TextType.Transform(Op("[\"👻\"]"), Op("[\"🥰\"]"), TransformSide.Right));
    }

    [Fact]
    public void ComposeKeepsTextUnicodeInsertDeleteOrder()
    {
        // compose walks the second op and appends the first op's leftovers after it, so a delete
        // of the first op lands after an insert of the second at the same place.
        Assert.Equal(Op("[\"x\", {\"d\":1}]"), TextType.Compose(Op("[{\"d\":1}]"), Op("[\"x\"]")));
        Assert.Equal(Op("[\"x\", {\"d\":1}]"), TextType.Compose(Op("[\"x\"]"), Op("[1, {\"d\":1}]")));
        Assert.Equal(Op("[{\"d\":1}, \"x\"]"), TextType.Compose(Op("[1, \"x\"]"), Op("[{\"d\":1}]")));
    }

    [Fact]
    public void InsertDeleteOrderDecidesConcurrentInsertPlacement()
    {
        TextOp deleteThenInsert = Op("[{\"d\":1},\"x\"]");
        TextOp insertThenDelete = Op("[\"x\",{\"d\":1}]");
        TextOp concurrent = Op("[\"y\"]");
        // Same effect on their own, different placement against a concurrent insert at the same spot.
        Assert.Equal(TextType.Apply("a", deleteThenInsert), TextType.Apply("a", insertThenDelete));
        Assert.Equal(Op("[1,{\"d\":1},\"x\"]"), TextType.Transform(deleteThenInsert, concurrent, TransformSide.Left));
        Assert.Equal(Op("[\"x\",1,{\"d\":1}]"), TextType.Transform(insertThenDelete, concurrent, TransformSide.Left));
    }

    [Fact]
    public void TransformAgainstNoopIsIdentityAndNoopStaysNoop()
    {
        TextOp op = Op("[2,\"x\",{\"d\":1}]");
        Assert.Equal(op, TextType.Transform(op, TextOp.Empty, TransformSide.Left));
        Assert.True(TextType.Transform(TextOp.Empty, op, TransformSide.Right).IsNoop);
        Assert.Equal(op, TextType.Compose(op, TextOp.Empty));
        Assert.Equal(op, TextType.Compose(TextOp.Empty, op));
    }

    [Fact]
    public void InvalidSideIsRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => TextType.Transform(TextOp.Insert(0, "a"), TextOp.Insert(0, "b"), (TransformSide)2));
    }

    // text-unicode's transformPosition examples (from libot's test.c).

    private const string CursorDoc = "abcdefghijklmnopqrstuvwxyz1234abcdefghijklmnopqrstuvwxyz1234";

    [Theory]
    [InlineData("[10,\"oh hi\",10,{\"d\":20}]", 10, 10)]
    [InlineData("[25,{\"d\":20}]", 25, 25)]
    [InlineData("[25,{\"d\":20}]", 35, 25)]
    [InlineData("[25,{\"d\":20}]", 45, 25)]
    [InlineData("[25,{\"d\":20}]", 10, 10)]
    [InlineData("[25,{\"d\":20}]", 55, 35)]
    [InlineData("[10,\"oh hi\",10,{\"d\":20}]", 0, 0)]
    [InlineData("[10,\"oh hi\",10,{\"d\":20}]", 100, 85)]
    [InlineData("[10,\"oh hi\",10,{\"d\":20}]", 11, 16)]
    [InlineData("[10,\"oh hi\",10,{\"d\":20}]", 20, 25)]
    [InlineData("[10,\"oh hi\",10,{\"d\":20}]", 30, 25)]
    [InlineData("[10,\"oh hi\",10,{\"d\":20}]", 40, 25)]
    [InlineData("[10,\"oh hi\",10,{\"d\":20}]", 41, 26)]
    [InlineData("[\"👻🥰💃\"]", 1, 4)]
    [InlineData("[2,\"👻🥰💃\"]", 1, 1)]
    public void TransformCursorMatchesTextUnicode(string op, int cursor, int expected)
    {
        _ = CursorDoc;
        Assert.Equal(expected, TextType.TransformCursor(cursor, Op(op), isOwnOp: false));
        Assert.Equal((expected, expected), TextType.TransformCursor((cursor, cursor), Op(op), isOwnOp: false));
    }

    [Fact]
    public void OwnInsertAtCursorPushesCursor()
    {
        TextOp op = Op("[10,\"oh hi\",10,{\"d\":20}]");
        Assert.Equal(10, TextType.TransformCursor(10, op, isOwnOp: false));
        Assert.Equal(15, TextType.TransformCursor(10, op, isOwnOp: true));
        Assert.Equal(3, TextType.TransformCursor(0, Op("[\"👻🥰💃\"]"), isOwnOp: true));
        // Own deletes and inserts elsewhere move it like anyone else's.
        Assert.Equal(25, TextType.TransformCursor(40, op, isOwnOp: true));
        // Anchor after the deleted code point ends after the own replacement; focus at 0 after the own "ab".
        Assert.Equal((3, 2), TextType.TransformCursor((1, 0), Op("[\"ab\",{\"d\":1},\"c\"]"), isOwnOp: true));
    }

    [Fact]
    public void InvertRestoresDeletedText()
    {
        const string doc = "h👻llo wörld";
        TextOp op = Op("[1,{\"d\":2},\"EY\",4,{\"d\":2},\"!\"]");
        string after = TextType.Apply(doc, op);
        Assert.Equal("hEYlo w!ld", after);
        TextOp inverse = TextType.Invert(op, doc);
        Assert.Equal(Op("[1,\"👻l\",{\"d\":2},4,\"ör\",{\"d\":1}]"), inverse);
        Assert.Equal(inverse, TextType.Invert(op, Rope.FromString(doc)));
        Assert.Equal(doc, TextType.Apply(after, inverse));
    }

    [Fact]
    public void SizeOfGrowsWithInsertedText()
    {
        Assert.True(TextType.SizeOf(TextOp.Insert(0, new string('x', 1000))) > TextType.SizeOf(TextOp.Insert(0, "x")));
        Assert.True(TextType.SizeOf(TextOp.Empty) > 0);
    }

    [Fact]
    public void InterfaceExposesTheSameSemantics()
    {
        IOtType<Rope, TextOp> type = TextType.Instance;
        Assert.Equal("text-unicode", type.Name);
        Assert.Same(Rope.Empty, type.Empty);
        Rope doc = type.FromText("héllo 👻");
        TextOp op = TextOp.Replace(6, 1, "🥰!");
        type.Validate(op, doc);
        Rope after = type.Apply(doc, op);
        Assert.Equal("héllo 🥰!", type.ToText(after));
        Assert.Equal(8, type.LengthOf(after));
        Assert.Equal(op, type.Compose(op, TextOp.Empty));
        Assert.Equal(TextOp.Insert(1, "b"), type.Transform(TextOp.Insert(0, "b"), TextOp.Insert(0, "a"), TransformSide.Right));
        Assert.True(type.IsNoop(TextOp.Empty));
        Assert.Equal(8, type.TransformCursor(7, op, isOwnOp: true));
        Assert.Equal(TextType.SizeOf(op), type.SizeOf(op));
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        type.Encode(op, buffer);
        Assert.Equal(op, type.Decode(buffer.WrittenSpan));
    }
}
