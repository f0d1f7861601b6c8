using Collab.Engine.RichText;

namespace Collab.Engine.Tests.RichText;

/// <summary>
/// Hand-written cases with their expected results written out (each agrees with rich-text 4.1.0; the differential test
/// checks thousands more), the IOtType seam, and every way the type rejects input.
/// </summary>
public sealed class RichTextTypeTests
{
    private static RichOp Op(string json) => RichOp.Parse(json);

    private static RichDocument Doc(string json) => RichDocument.Parse(json);

    private static OtErrorCode CodeOf(Action action) => Assert.Throws<OtException>(action).Code;

    [Fact]
    public void Left_gives_priority_to_the_other_op_the_opposite_of_text_unicode()
    {
        RichOp a = Op("""[{"retain":1},{"insert":"A"}]""");
        RichOp b = Op("""[{"retain":1},{"insert":"B"}]""");
        // transform(a, b, left): b wins the tie, so a's insert goes after b's.
        Assert.Equal(Op("""[{"retain":2},{"insert":"A"}]"""), RichTextType.Transform(a, b, TransformSide.Left));
        Assert.Equal(Op("""[{"retain":1},{"insert":"A"}]"""), RichTextType.Transform(a, b, TransformSide.Right));

        RichOp red = Op("""[{"retain":2,"attributes":{"color":"red","bold":true}}]""");
        RichOp blue = Op("""[{"retain":2,"attributes":{"color":"blue"}}]""");
        Assert.Equal(Op("""[{"retain":2,"attributes":{"bold":true}}]"""), RichTextType.Transform(red, blue, TransformSide.Left));
        Assert.Equal(red, RichTextType.Transform(red, blue, TransformSide.Right));
    }

    [Fact]
    public void The_sequencer_convention_converges_and_the_earlier_sequenced_op_wins_ties()
    {
        // The server transforms a submitted op with Left against the sequenced one; a client transforms the incoming
        // sequenced op with Right against its pending op. Both orders give one document.
        RichDocument doc = Doc("""[{"insert":"ab\n"}]""");
        RichOp sequenced = Op("""[{"retain":1},{"insert":"S"},{"retain":1,"attributes":{"color":"red"}}]""");
        RichOp submitted = Op("""[{"retain":1},{"insert":"P"},{"retain":1,"attributes":{"color":"blue"}}]""");
        RichDocument server = RichTextType.Apply(RichTextType.Apply(doc, sequenced), RichTextType.Transform(submitted, sequenced, TransformSide.Left));
        RichDocument client = RichTextType.Apply(RichTextType.Apply(doc, submitted), RichTextType.Transform(sequenced, submitted, TransformSide.Right));
        Assert.Equal(server, client);
        Assert.Equal(Doc("""[{"insert":"aSP"},{"insert":"b","attributes":{"color":"red"}},{"insert":"\n"}]"""), server);
    }

    [Fact]
    public void Text_typed_inside_a_range_formatted_concurrently_stays_unformatted()
    {
        RichDocument doc = Doc("""[{"insert":"abcd\n"}]""");
        RichOp bold = Op("""[{"retain":4,"attributes":{"bold":true}}]""");
        RichOp typing = Op("""[{"retain":2},{"insert":"X"}]""");
        RichDocument server = RichTextType.Apply(RichTextType.Apply(doc, bold), RichTextType.Transform(typing, bold, TransformSide.Left));
        Assert.Equal(Doc("""[{"insert":"ab","attributes":{"bold":true}},{"insert":"X"},{"insert":"cd","attributes":{"bold":true}},{"insert":"\n"}]"""), server);
        Assert.Equal(server, RichTextType.Apply(RichTextType.Apply(doc, typing), RichTextType.Transform(bold, typing, TransformSide.Right)));
    }

    [Fact]
    public void Apply_formats_removes_formats_and_keeps_nulls_on_inserts_as_quill_delta_does()
    {
        RichDocument doc = Doc("""[{"insert":"Hello","attributes":{"bold":true,"color":"red"}},{"insert":" world"}]""");
        RichDocument after = RichTextType.Apply(doc, Op("""[{"retain":3,"attributes":{"bold":null}},{"retain":4,"attributes":{"italic":true}},{"insert":"!","attributes":{"underline":null}}]"""));
        Assert.Equal(
            Op("""[{"insert":"Hel","attributes":{"color":"red"}},{"insert":"lo","attributes":{"bold":true,"color":"red","italic":true}},{"insert":" w","attributes":{"italic":true}},{"insert":"!","attributes":{"underline":null}},{"insert":"orld"}]"""),
            after.ToOp());
        Assert.Equal("Hello w!orld", after.ToPlainText());
        Assert.Equal(12, after.Length);
    }

    [Fact]
    public void Normal_form_merges_equal_neighbours_puts_inserts_before_deletes_and_chops()
    {
        RichOp op = RichOp.Create(
            RichComponent.Retain(1), RichComponent.Retain(2), RichComponent.Delete(1), RichComponent.Insert("a", AttributeMap.Of("bold", true)),
            RichComponent.Insert("b", AttributeMap.Of("bold", true)), RichComponent.Delete(2), RichComponent.Insert(new RichEmbed("image", "x")),
            RichComponent.Insert(new RichEmbed("image", "x")), RichComponent.Retain(4));
        Assert.Equal(Op("""[{"retain":3},{"insert":"ab","attributes":{"bold":true}},{"insert":{"image":"x"}},{"insert":{"image":"x"}},{"delete":3}]"""), op);
        Assert.Equal(6, op.BaseLength);
        Assert.Equal(7, op.TargetLength);
        Assert.True(RichOp.Create(RichComponent.Retain(5)).IsNoop);
        Assert.Equal(Op("""[{"retain":5,"attributes":{"bold":null}}]"""), RichOp.Create(RichComponent.Retain(5, AttributeMap.Of("bold", RichValue.Null))));
    }

    [Fact]
    public void Compose_and_invert_undo_a_formatting_edit_exactly()
    {
        RichDocument doc = Doc("""[{"insert":"ab","attributes":{"color":"red"}},{"insert":{"image":"x.png"}},{"insert":"cd"}]""");
        RichOp op = Op("""[{"retain":1,"attributes":{"color":"blue","bold":true}},{"delete":2},{"insert":"Z"}]""");
        RichOp inverse = RichTextType.Invert(op, doc);
        Assert.Equal(Op("""[{"retain":1,"attributes":{"bold":null,"color":"red"}},{"insert":"b","attributes":{"color":"red"}},{"insert":{"image":"x.png"}},{"delete":1}]"""), inverse);
        RichDocument after = RichTextType.Apply(doc, op);
        Assert.Equal(doc, RichTextType.Apply(after, inverse));
        Assert.Equal(RichTextType.Apply(doc, RichTextType.Compose(op, inverse)), doc);
    }

    [Fact]
    public void Cursors_move_as_rich_text_transformCursor_says()
    {
        RichOp op = Op("""[{"retain":2},{"insert":"XY"},{"retain":1},{"delete":2}]""");
        int[] cursors = [0, 1, 2, 3, 4, 5, 6];
        Assert.Equal([0, 1, 2, 5, 5, 5, 6], cursors.Select(c => RichTextType.TransformCursor(c, op, isOwnOp: false)));
        Assert.Equal([0, 1, 4, 5, 5, 5, 6], cursors.Select(c => RichTextType.TransformCursor(c, op, isOwnOp: true)));
        Assert.Equal((5, 1), RichTextType.TransformCursor((3, 1), op, isOwnOp: false));
    }

    [Fact]
    public void The_type_plugs_into_the_generic_seam()
    {
        IOtType<RichDocument, RichOp> type = RichTextType.Default;
        Assert.Equal("rich-text", type.Name);
        Assert.Same(RichDocument.Empty, type.Empty);
        RichDocument doc = type.FromText("""{"ops":[{"insert":"😀 hi"},{"insert":{"image":"a.png"}},{"insert":"\n","attributes":{"header":1}}]}""");
        Assert.Equal(7, type.LengthOf(doc));
        // System.Text.Json writes characters outside the BMP as \u escapes: the same JSON string.
        Assert.Equal("""[{"insert":"\uD83D\uDE00 hi"},{"insert":{"image":"a.png"}},{"insert":"\n","attributes":{"header":1}}]""", type.ToText(doc));
        Assert.Equal(doc, type.FromText(type.ToText(doc)));

        RichOp op = Op("""[{"retain":3},{"insert":"!"}]""");
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        type.Encode(op, buffer);
        Assert.Equal(op, type.Decode(buffer.WrittenSpan));
        type.Validate(op, doc);
        Assert.Equal(RichTextType.Apply(doc, op), type.Apply(doc, op));
        Assert.Equal(4, type.TransformCursor(3, op, isOwnOp: true));
        Assert.Equal(3, type.TransformCursor(3, op, isOwnOp: false));
        Assert.True(type.IsNoop(RichOp.Empty));
        Assert.InRange(type.SizeOf(op), 48, 200);
        Assert.Equal(RichTextType.Compose(op, op), type.Compose(op, op));
        Assert.Equal(RichTextType.Transform(op, op, TransformSide.Right), type.Transform(op, op, TransformSide.Right));
    }

    // ---- Rejections ---------------------------------------------------------------------------------------------

    [Fact]
    public void An_op_that_cuts_a_surrogate_pair_is_rejected_everywhere_and_changes_nothing()
    {
        RichDocument doc = Doc("""[{"insert":"a😀b"},{"insert":"👻","attributes":{"bold":true}}]""");
        string before = doc.ToString();
        foreach (string json in new[]
        {
            """[{"retain":2},{"insert":"x"}]""",
            """[{"retain":1},{"delete":1}]""",
            """[{"retain":2},{"delete":2}]""",
            """[{"retain":2,"attributes":{"italic":true}}]""",
            """[{"retain":5},{"retain":1,"attributes":{"italic":true}}]""",
            """[{"retain":1},{"retain":4,"attributes":{"italic":true}}]""",
        })
        {
            RichOp op = Op(json);
            Assert.Equal(OtErrorCode.SplitsSurrogatePair, CodeOf(() => RichTextType.Validate(op, doc)));
            Assert.Equal(OtErrorCode.SplitsSurrogatePair, CodeOf(() => RichTextType.Apply(doc, op)));
            Assert.Equal(OtErrorCode.SplitsSurrogatePair, CodeOf(() => RichTextType.Invert(op, doc)));
        }

        Assert.Equal(before, doc.ToString());
        RichTextType.Validate(Op("""[{"retain":3},{"insert":"x"},{"retain":1,"attributes":{"italic":true}},{"delete":2}]"""), doc);

        // Compose sees the text the first op inserted.
        RichOp insert = Op("""[{"insert":"😀"}]""");
        Assert.Equal(OtErrorCode.SplitsSurrogatePair, CodeOf(() => RichTextType.Compose(insert, Op("""[{"retain":1},{"insert":"x"}]"""))));
        Assert.Equal(OtErrorCode.SplitsSurrogatePair, CodeOf(() => RichTextType.Compose(insert, Op("""[{"delete":1}]"""))));
        Assert.Equal(OtErrorCode.SplitsSurrogatePair, CodeOf(() => RichTextType.Compose(insert, Op("""[{"retain":1,"attributes":{"bold":true}}]"""))));
        Assert.Equal(Op("""[{"insert":"😀","attributes":{"bold":true}}]"""), RichTextType.Compose(insert, Op("""[{"retain":2,"attributes":{"bold":true}}]""")));
    }

    [Fact]
    public void An_op_longer_than_the_document_is_rejected()
    {
        RichDocument doc = Doc("""[{"insert":"abc"}]""");
        Assert.Equal(OtErrorCode.OpTooLong, CodeOf(() => RichTextType.Apply(doc, Op("""[{"retain":3},{"delete":1}]"""))));
        Assert.Equal(OtErrorCode.OpTooLong, CodeOf(() => RichTextType.Validate(Op("""[{"retain":4,"attributes":{"bold":true}}]"""), doc)));
        Assert.Equal(OtErrorCode.OpTooLong, CodeOf(() => RichTextType.Invert(Op("""[{"delete":4}]"""), doc)));
    }

    [Fact]
    public void Bad_components_and_cursors_are_rejected_with_codes()
    {
        Assert.Equal(OtErrorCode.InvalidLength, CodeOf(() => RichComponent.Retain(0)));
        Assert.Equal(OtErrorCode.InvalidLength, CodeOf(() => RichComponent.Delete(-1)));
        Assert.Equal(OtErrorCode.InvalidLength, CodeOf(() => RichComponent.Insert("")));
        Assert.Equal(OtErrorCode.InvalidText, CodeOf(() => RichComponent.Insert("a\uD800")));
        Assert.Equal(OtErrorCode.InvalidText, CodeOf(() => RichValue.FromString("\uDC00")));
        Assert.Equal(OtErrorCode.InvalidText, CodeOf(() => AttributeMap.Of("b\uD800", true)));
        Assert.Equal(OtErrorCode.InvalidLength, CodeOf(() => RichTextType.TransformCursor(-1, RichOp.Empty, isOwnOp: false)));
        Assert.Equal(OtErrorCode.UnknownComponent, CodeOf(() => RichOp.Create(default(RichComponent))));
        Assert.Equal(OtErrorCode.OpTooLong, CodeOf(() => RichOp.Create(RichComponent.Retain(int.MaxValue, AttributeMap.Of("b", true)), RichComponent.Delete(1))));
        Assert.Equal(OtErrorCode.Malformed, CodeOf(() => RichDocument.FromOp(Op("""[{"retain":1,"attributes":{"b":true}}]"""))));
        Assert.Throws<ArgumentException>(() => AttributeMap.Create(new("a", true), new("a", false)));
        Assert.Throws<ArgumentException>(() => new RichEmbed("", "x"));
        Assert.Throws<ArgumentOutOfRangeException>(() => RichValue.FromNumber(double.NaN));
        Assert.Throws<ArgumentOutOfRangeException>(() => RichTextType.Transform(RichOp.Empty, RichOp.Empty, (TransformSide)7));
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("[1]")]
    [InlineData("""{"ops":[],"x":1}""")]
    [InlineData("""[{"retain":0}]""")]
    [InlineData("""[{"retain":1.5}]""")]
    [InlineData("""[{"retain":"3"}]""")]
    [InlineData("""[{"insert":""}]""")]
    [InlineData("""[{"insert":5}]""")]
    [InlineData("""[{"insert":"a","retain":1}]""")]
    [InlineData("""[{"insert":{"image":"a","video":"b"}}]""")]
    [InlineData("""[{"insert":{}}]""")]
    [InlineData("""[{"delete":1,"attributes":{"bold":true}}]""")]
    [InlineData("""[{"retain":1,"attributes":{"bold":true,"bold":false}}]""")]
    [InlineData("""[{"retain":1,"attributes":{"":true}}]""")]
    [InlineData("""[{"retain":1,"attributes":[1]}]""")]
    [InlineData("""[{"retain":1,"colour":"red"}]""")]
    [InlineData("""[{"insert":"a"}] x""")]
    [InlineData("""[{"insert":"\ud800"}]""")]
    [InlineData("[{")]
    public void Malformed_json_is_rejected(string json)
    {
        OtErrorCode code = CodeOf(() => RichOp.Parse(json));
        Assert.True(code is OtErrorCode.Malformed or OtErrorCode.InvalidText, $"{json}: {code}");
    }

    [Fact]
    public void Json_nesting_is_bounded()
    {
        string deep = new string('[', RichValue.MaxDepth) + new string(']', RichValue.MaxDepth);
        Assert.Equal(RichValue.MaxDepth, RichJson.ParseValue(deep).Depth);
        Assert.Equal(OtErrorCode.Malformed, CodeOf(() => RichJson.ParseValue("[" + deep + "]")));
        Assert.Equal(OtErrorCode.Malformed, CodeOf(() => RichOp.Parse("""[{"insert":{"x":""" + "[" + deep + "]" + "}}]")));
    }
}
