using Collab.Engine.Text;

namespace Collab.Engine.Tests.Text;

/// <summary>ot-text-unicode's JSON form (<see cref="TextJson"/>), shared by the HTTP API and the C# SDK's API client.</summary>
public sealed class TextJsonTests
{
    [Theory]
    [InlineData("[]")]
    [InlineData("[\"abc\"]")]
    [InlineData("[5,\" world\",{\"d\":3}]")]
    [InlineData("[2,{\"d\":1},\"é\"]")]
    public void Normal_ops_round_trip_exactly(string json) => Assert.Equal(json, TextJson.Write(TextJson.Parse(json)));

    [Fact]
    public void Text_outside_the_basic_plane_round_trips()
    {
        // System.Text.Json escapes supplementary characters even with the relaxed encoder: the same JSON string.
        TextOp op = TextOp.Insert(2, "😀 é");
        Assert.Equal(op, TextJson.Parse(TextJson.Write(op)));
    }

    [Fact]
    public void A_delete_given_as_its_text_counts_code_points_and_is_written_as_a_number()
    {
        TextOp op = TextJson.Parse("[1, {\"d\": \"😀x\"}]");
        Assert.Equal(TextOp.Delete(1, 2), op);
        Assert.Equal("[1,{\"d\":2}]", TextJson.Write(op));
        Assert.Equal(TextOp.Insert(3, "ab"), TextJson.Parse("[1, 2, \"a\", \"b\"]")); // normalized
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("[0]")]
    [InlineData("[-1, \"x\"]")]
    [InlineData("[\"\"]")]
    [InlineData("[{\"d\": 0}]")]
    [InlineData("[{\"x\": 1}]")]
    [InlineData("[{\"d\": 1, \"d\": 2}]")]
    [InlineData("[true]")]
    [InlineData("[1] [2]")]
    [InlineData("[1")]
    [InlineData("")]
    public void Anything_else_is_malformed(string json) =>
        Assert.Equal(OtErrorCode.Malformed, Assert.Throws<OtException>(() => TextJson.Parse(json)).Code);

    [Fact]
    public void A_lone_surrogate_is_invalid_text()
    {
        Assert.Equal(OtErrorCode.InvalidText, Assert.Throws<OtException>(() => TextJson.Parse("[\"\ud800\"]")).Code);
        Assert.Throws<OtException>(() => TextJson.Parse("[\"\\ud800\"]"));
    }
}
