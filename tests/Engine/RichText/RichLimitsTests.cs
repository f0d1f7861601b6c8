using Collab.Engine.RichText;

namespace Collab.Engine.Tests.RichText;

/// <summary>
/// The submission limits of <see cref="RichTextOptions"/>: each one provoked past its edge with its typed code, each
/// edge itself accepted, and none applied when ops are read back from the op log.
/// </summary>
public sealed class RichLimitsTests
{
    private static readonly RichTextType s_strict = new(new RichTextOptions
    {
        MaxAttributesPerComponent = 2,
        MaxAttributeNameLength = 6,
        MaxAttributeValueBytes = 12,
        MaxEmbedBytes = 20,
        AllowedEmbedTypes = ["image"],
        AllowedAttributes = ["bold", "color", "italic", "link"],
    });

    private static OtErrorCode CodeOf(string json) =>
        Assert.Throws<OtException>(() => s_strict.DecodeSubmission(RichOpCodec.Encode(RichOp.Parse(json)))).Code;

    [Theory]
    [InlineData("""[{"retain":1,"attributes":{"bold":true,"color":"red","italic":true}}]""", OtErrorCode.TooManyAttributes)]
    [InlineData("""[{"insert":"x","attributes":{"bold":true,"color":"red","italic":true}}]""", OtErrorCode.TooManyAttributes)]
    [InlineData("""[{"retain":1,"attributes":{"boldest":true}}]""", OtErrorCode.AttributeTooLarge)]
    [InlineData("""[{"retain":1,"attributes":{"link":"https://a.test/"}}]""", OtErrorCode.AttributeTooLarge)]
    [InlineData("""[{"retain":1,"attributes":{"color":{"red":255,"green":128}}}]""", OtErrorCode.AttributeTooLarge)]
    [InlineData("""[{"retain":1,"attributes":{"font":"serif"}}]""", OtErrorCode.UnknownAttribute)]
    [InlineData("""[{"insert":{"video":"v.mp4"}}]""", OtErrorCode.UnknownEmbedType)]
    [InlineData("""[{"insert":{"image":"https://a.test/big.png"}}]""", OtErrorCode.EmbedTooLarge)]
    [InlineData("""[{"insert":{"image":{"src":"a.png","alt":"a cat"}}}]""", OtErrorCode.EmbedTooLarge)]
    public void A_submission_past_a_limit_is_rejected_with_its_code(string json, OtErrorCode code) => Assert.Equal(code, CodeOf(json));

    [Fact]
    public void Submissions_at_the_limits_are_accepted()
    {
        // "link": 11 ASCII bytes encode to 12 (one header byte); "image": type 5 bytes + "0123456789abcd" (15) = 20.
        string json = """[{"retain":1,"attributes":{"color":"red","link":"https://a.b"}},{"insert":{"image":"0123456789abcd"},"attributes":{"italic":true}}]""";
        RichOp op = s_strict.DecodeSubmission(RichOpCodec.Encode(RichOp.Parse(json)));
        Assert.Equal(RichOp.Parse(json), op);
        s_strict.ValidateLimits(op);
    }

    [Fact]
    public void Limits_do_not_apply_to_ops_read_back_from_the_log()
    {
        byte[] stored = RichOpCodec.Encode(RichOp.Parse("""[{"insert":{"video":"https://a.test/a-long-video-name.mp4"},"attributes":{"font":"serif","bold":true}}]"""));
        IOtType<RichDocument, RichOp> type = s_strict;
        RichOp op = type.Decode(stored);
        RichDocument doc = type.Apply(type.Empty, op);
        Assert.Equal(1, doc.Length);
        Assert.Equal(OtErrorCode.UnknownAttribute, Assert.Throws<OtException>(() => s_strict.ValidateLimits(op)).Code);
    }

    [Fact]
    public void Defaults_accept_quill_formats_and_embeds_and_reject_unknown_embeds()
    {
        RichTextType type = RichTextType.Default;
        type.ValidateLimits(RichOp.Parse("""[{"insert":{"formula":"e=mc^2"},"attributes":{"align":"center","header":1,"list":"ordered","indent":2,"direction":"rtl","custom-format":"kept"}}]"""));
        type.ValidateLimits(RichOp.Parse("""[{"insert":{"image":"data:image/png;base64,""" + new string('A', 200_000) + "\"}}]"));
        Assert.Equal(OtErrorCode.UnknownEmbedType, Assert.Throws<OtException>(() => type.ValidateLimits(RichOp.Parse("""[{"insert":{"script":"alert(1)"}}]"""))).Code);
        Assert.Equal(OtErrorCode.EmbedTooLarge, Assert.Throws<OtException>(() => type.ValidateLimits(RichOp.Parse("""[{"insert":{"image":"data:""" + new string('A', 300_000) + "\"}}]"))).Code);
        new RichTextType(new RichTextOptions { AllowedEmbedTypes = null }).ValidateLimits(RichOp.Parse("""[{"insert":{"mention":{"id":1}}}]"""));
    }

    [Fact]
    public void Options_are_validated_and_copied()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new RichTextType(new RichTextOptions { MaxAttributeNameLength = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RichTextType(new RichTextOptions { MaxEmbedBytes = 1 }));
        var options = new RichTextOptions { AllowedEmbedTypes = ["image"] };
        var type = new RichTextType(options);
        options.AllowedEmbedTypes = ["video"];
        type.ValidateLimits(RichOp.Parse("""[{"insert":{"image":"a.png"}}]"""));
    }
}
