using Collab.Engine.Text;

namespace Collab.Engine.Tests.Text;

/// <summary>Every bad-input path throws <see cref="OtException"/> with its typed code and leaves inputs untouched.</summary>
public sealed class TextErrorTests
{
    private static void AssertCode(OtErrorCode code, Action action)
    {
        OtException e = Assert.Throws<OtException>(action);
        Assert.Equal(code, e.Code);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void ComponentLengthsMustBePositive(int length)
    {
        AssertCode(OtErrorCode.InvalidLength, () => TextComponent.Retain(length));
        AssertCode(OtErrorCode.InvalidLength, () => TextComponent.Delete(length));
    }

    [Fact]
    public void EmptyInsertComponentIsInvalidLength() =>
        AssertCode(OtErrorCode.InvalidLength, () => TextComponent.Insert(""));

    [Fact]
    public void BuilderRejectsNegativeLengths()
    {
        AssertCode(OtErrorCode.InvalidLength, () => new TextOpBuilder().Retain(-1));
        AssertCode(OtErrorCode.InvalidLength, () => new TextOpBuilder().Delete(-5));
        AssertCode(OtErrorCode.InvalidLength, () => TextOp.Insert(-1, "x"));
        AssertCode(OtErrorCode.InvalidLength, () => TextOp.Delete(0, -1));
    }

    // By index: xunit serializes theory strings as UTF-8, which would turn lone surrogates into U+FFFD.
    private static readonly string[] LoneSurrogates = ["\uD800", "\uDC00", "a\uD83Db", "ab\uDE00", "\uDE00\uD83D", "😀\uD83D"];

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void LoneSurrogatesAreInvalidText(int index)
    {
        string text = LoneSurrogates[index];
        AssertCode(OtErrorCode.InvalidText, () => TextComponent.Insert(text));
        AssertCode(OtErrorCode.InvalidText, () => TextOp.Insert(0, text));
        AssertCode(OtErrorCode.InvalidText, () => Rope.FromString(text));
        AssertCode(OtErrorCode.InvalidText, () => Rope.FromString("abc").Insert(1, text));
        AssertCode(OtErrorCode.InvalidText, () => TextType.Apply(text, TextOp.Empty));
        AssertCode(OtErrorCode.InvalidText, () => TextType.Invert(TextOp.Empty, text));
    }

    [Fact]
    public void DefaultComponentIsUnknown()
    {
        AssertCode(OtErrorCode.UnknownComponent, () => new TextOpBuilder().Append(default));
        AssertCode(OtErrorCode.UnknownComponent, () => TextOp.Create([TextComponent.Retain(1), default]));
    }

    [Fact]
    public void OpPastTheEndIsOpTooLong()
    {
        Rope rope = Rope.FromString("ab👻");
        TextOp op = TextOp.Delete(2, 2);
        AssertCode(OtErrorCode.OpTooLong, () => TextType.Apply(rope, op));
        AssertCode(OtErrorCode.OpTooLong, () => TextType.Apply("ab👻", op));
        AssertCode(OtErrorCode.OpTooLong, () => TextType.Apply("ab👻", TextOp.Insert(4, "x")));
        AssertCode(OtErrorCode.OpTooLong, () => TextType.Invert(op, rope));
        AssertCode(OtErrorCode.OpTooLong, () => TextType.Invert(op, "ab👻"));
        AssertCode(OtErrorCode.OpTooLong, () => TextType.Validate(op, 3));
        AssertCode(OtErrorCode.OpTooLong, () => ((IOtType<Rope, TextOp>)TextType.Instance).Validate(op, rope));
        // The document is untouched by a rejected op.
        Assert.True(rope.ContentEquals("ab👻"));
        Assert.Equal(3, rope.Length);
        // The same op fits one code point more: the length is in code points, not UTF-16 units.
        TextType.Validate(op, 4);
        Assert.Equal("ab", TextType.Apply(Rope.FromString("ab👻😀"), TextOp.Delete(2, 2)).ToString());
    }

    [Fact]
    public void LengthsPastIntMaxValueAreOpTooLong()
    {
        AssertCode(OtErrorCode.OpTooLong, static () =>
        {
            var builder = new TextOpBuilder();
            builder.Retain(int.MaxValue);
            builder.Delete(1);
        });
        AssertCode(OtErrorCode.OpTooLong, () => TextOp.Create([TextComponent.Retain(int.MaxValue), TextComponent.Insert("x"), TextComponent.Retain(1)]));
        AssertCode(OtErrorCode.OpTooLong, () => TextOp.Create([TextComponent.Insert("x"), TextComponent.Retain(int.MaxValue)]));
    }

    [Fact]
    public void NegativeCursorIsInvalidLength()
    {
        AssertCode(OtErrorCode.InvalidLength, () => TextType.TransformCursor(-1, TextOp.Empty, isOwnOp: false));
        AssertCode(OtErrorCode.InvalidLength, () => TextType.TransformCursor((0, -3), TextOp.Empty, isOwnOp: true));
    }

    [Fact]
    public void ValidateRejectsOpsThatBypassedTheBuilder()
    {
        // Only engine-internal code can wrap a raw array; Validate is the guard for that path.
        AssertCode(OtErrorCode.NotNormalized, () => TextType.Validate(Raw(TextComponent.Retain(1), TextComponent.Retain(1), TextComponent.Insert("x"))));
        AssertCode(OtErrorCode.NotNormalized, () => TextType.Validate(Raw(TextComponent.Insert("x"), TextComponent.Retain(3))));
        AssertCode(OtErrorCode.NotNormalized, () => TextType.Validate(new TextOp([TextComponent.Insert("x")], 5, 1)));
        AssertCode(OtErrorCode.UnknownComponent, () => TextType.Validate(Raw(TextComponent.Insert("x"), default)));
        AssertCode(OtErrorCode.InvalidLength, () => TextType.Validate(Raw(TextComponent.DeleteTrusted(0))));
        AssertCode(OtErrorCode.InvalidLength, () => TextType.Validate(Raw(TextComponent.RetainTrusted(-2), TextComponent.Insert("x"))));
        AssertCode(OtErrorCode.InvalidText, () => TextType.Validate(Raw(TextComponent.InsertTrusted("\uD800", 1))));
        AssertCode(OtErrorCode.InvalidText, () => TextType.Validate(Raw(TextComponent.InsertTrusted("ab", 1))));
        TextType.Validate(Raw(TextComponent.Retain(2), TextComponent.Insert("x"), TextComponent.Delete(1)));
    }

    private static TextOp Raw(params TextComponent[] components)
    {
        long baseLength = components.Where(c => !c.IsInsert).Sum(c => (long)c.Length);
        long targetLength = components.Where(c => !c.IsDelete).Sum(c => (long)c.Length);
        return new TextOp(components, (int)baseLength, (int)targetLength);
    }

    [Fact]
    public void RopeRangesOutsideTheDocumentThrow()
    {
        Rope rope = Rope.FromString("abc");
        Assert.Throws<ArgumentOutOfRangeException>(() => rope.Slice(2, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => rope.Slice(-1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => rope.Insert(4, "x"));
        Assert.Throws<ArgumentOutOfRangeException>(() => rope.Remove(1, -1));
        Assert.Throws<ArgumentException>(() => rope.CopyTo(new char[2]));
        Assert.Equal("abc", rope.ToString());
    }
}
