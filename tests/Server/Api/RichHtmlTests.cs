using AngleSharp.Dom;
using AngleSharp.Html.Parser;
using Collab.Engine.RichText;
using Collab.Server.Api;

namespace Collab.Server.Tests.Api;

/// <summary>
/// The rich-text HTML export (issue 17): Quill's formats render as their tags, and an XSS corpus (attribute values, link
/// hrefs, embed payloads and text crafted to inject markup) renders as nothing but allowed tags and attributes. Each
/// output is parsed by a real HTML5 parser (AngleSharp, as a browser would) and every element, attribute and URL checked.
/// </summary>
public sealed class RichHtmlTests
{
    private static readonly HtmlParser s_parser = new();

    [Fact]
    public void Quill_formats_render_as_their_semantic_tags()
    {
        string html = Render("""
            [{"insert":"Title"},{"insert":"\n","attributes":{"header":2}},
             {"insert":"bold","attributes":{"bold":true}},{"insert":" "},{"insert":"it","attributes":{"italic":true,"underline":true}},
             {"insert":" "},{"insert":"x","attributes":{"strike":true,"code":true}},{"insert":" "},
             {"insert":"site","attributes":{"link":"https://example.com/a?b=1&c=2"}},{"insert":" "},
             {"insert":"red","attributes":{"color":"#FF0000","background":"rgb(0, 0, 255)"}},{"insert":"\n","attributes":{"align":"center"}},
             {"insert":"one"},{"insert":"\n","attributes":{"list":"ordered"}},{"insert":"two"},{"insert":"\n","attributes":{"list":"ordered"}},
             {"insert":"todo"},{"insert":"\n","attributes":{"list":"checked"}},
             {"insert":"quote"},{"insert":"\n","attributes":{"blockquote":true}},
             {"insert":"a < b"},{"insert":"\n","attributes":{"code-block":true}},{"insert":"c"},{"insert":"\n","attributes":{"code-block":true}},
             {"insert":{"image":"https://example.com/i.png"}},{"insert":{"formula":"e=mc^2"}},{"insert":"\n"},{"insert":"\n"}]
            """);

        Assert.Equal(
            "<h2>Title</h2>"
            + "<p class=\"ql-align-center\"><strong>bold</strong> <em><u>it</u></em> <s><code>x</code></s> "
            + "<a href=\"https://example.com/a?b=1&amp;c=2\" rel=\"noopener noreferrer nofollow\">site</a> "
            + "<span style=\"color: #ff0000; background-color: rgb(0, 0, 255)\">red</span></p>"
            + "<ol><li>one</li><li>two</li></ol><ul><li data-checked=\"true\">todo</li></ul>"
            + "<blockquote>quote</blockquote><pre>a &lt; b\nc</pre>"
            + "<p><img src=\"https://example.com/i.png\" alt=\"\"><span class=\"ql-formula\">e=mc^2</span></p><p><br></p>",
            html);
        AssertOnlyAllowed(html);
    }

    public static TheoryData<string, string> Corpus => new()
    {
        { "script in text", """[{"insert":"<script>alert(1)</script><img src=x onerror=alert(1)>\n"}]""" },
        { "javascript link", """[{"insert":"x","attributes":{"link":"javascript:alert(1)"}}]""" },
        { "upper-case scheme", """[{"insert":"x","attributes":{"link":"JaVaScRiPt:alert(1)"}}]""" },
        { "entity-encoded scheme", """[{"insert":"x","attributes":{"link":"javascript&#58;alert(1)"}}]""" },
        { "hex-entity scheme", """[{"insert":"x","attributes":{"link":"&#x6A;avascript:alert(1)"}}]""" },
        { "tab inside the scheme", """[{"insert":"x","attributes":{"link":"java\tscript:alert(1)"}}]""" },
        { "leading space", """[{"insert":"x","attributes":{"link":" javascript:alert(1)"}}]""" },
        { "data link", """[{"insert":"x","attributes":{"link":"data:text/html,<script>alert(1)</script>"}}]""" },
        { "vbscript link", """[{"insert":"x","attributes":{"link":"vbscript:msgbox(1)"}}]""" },
        { "quote breaking out of href", """[{"insert":"x","attributes":{"link":"https://e.com/\" onmouseover=\"alert(1)"}}]""" },
        { "quote breaking out of src", """[{"insert":{"image":"https://e.com/a.png\" onerror=\"alert(1)"}}]""" },
        { "onerror in image url", """[{"insert":{"image":"x onerror=alert(1)"}}]""" },
        { "javascript image", """[{"insert":{"image":"javascript:alert(1)"}}]""" },
        { "svg data image", """[{"insert":{"image":"data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+"}}]""" },
        { "html data image", """[{"insert":{"image":"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="}}]""" },
        { "object image payload", """[{"insert":{"image":{"src":"javascript:alert(1)","onerror":"alert(1)"}}}]""" },
        { "video javascript", """[{"insert":{"video":"javascript:alert(1)"}}]""" },
        { "formula markup", """[{"insert":{"formula":"</span><script>alert(1)</script>"}}]""" },
        { "css expression colour", """[{"insert":"x","attributes":{"color":"expression(alert(1))"}}]""" },
        { "css url background", """[{"insert":"x","attributes":{"background":"url(javascript:alert(1))"}}]""" },
        { "colour breaking out of style", """[{"insert":"x","attributes":{"color":"red;\" onclick=\"alert(1)"}}]""" },
        { "colour with a second declaration", """[{"insert":"x","attributes":{"color":"#fff; background-image: url(x)"}}]""" },
        { "align class injection", """[{"insert":"x"},{"insert":"\n","attributes":{"align":"center\" onclick=\"alert(1)"}}]""" },
        { "header injection", """[{"insert":"x"},{"insert":"\n","attributes":{"header":"1><script>alert(1)</script>"}}]""" },
        { "list injection", """[{"insert":"x"},{"insert":"\n","attributes":{"list":"<script>"}}]""" },
        { "unknown attribute", """[{"insert":"x","attributes":{"onclick":"alert(1)","style":"background:url(javascript:alert(1))"}}]""" },
        { "unknown embed", """[{"insert":{"iframe":"https://evil.example/"}},{"insert":{"script":"alert(1)"}}]""" },
        { "comment and cdata in text", """[{"insert":"<!-- --><![CDATA[<script>]]>&lt;script&gt;"}]""" },
    };

    [Theory]
    [MemberData(nameof(Corpus))]
    public void Crafted_content_renders_only_allowed_tags_attributes_and_urls(string name, string delta)
    {
        string html = Render(delta);
        AssertOnlyAllowed(html);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.False(string.IsNullOrEmpty(name));
    }

    [Fact]
    public void Text_that_looks_like_markup_stays_text()
    {
        string html = Render("""[{"insert":"<b onmouseover=alert(1)>hi</b> & \"q\"\n"}]""");
        IDocument document = s_parser.ParseDocument(html);
        Assert.Equal("<b onmouseover=alert(1)>hi</b> & \"q\"", document.Body!.TextContent);
        Assert.Single(document.Body.Children); // one <p>, no <b>
    }

    [Theory]
    [InlineData("https://example.com/x", "https://example.com/x")]
    [InlineData("http://example.com", "http://example.com/")]
    [InlineData("mailto:a@example.com", "mailto:a@example.com")]
    [InlineData("javascript:alert(1)", null)]
    [InlineData("//evil.example/x", null)]
    [InlineData("/relative", null)]
    [InlineData("ftp://example.com/", null)]
    [InlineData("https://exa mple.com/", null)]
    public void Links_are_absolute_http_https_or_mailto_urls(string value, string? expected) =>
        Assert.Equal(expected, RichHtml.Url(value, allowMailto: true));

    [Theory]
    [InlineData("#ABC", "#abc")]
    [InlineData("#a1b2c3", "#a1b2c3")]
    [InlineData("rgb(1, 2, 255)", "rgb(1, 2, 255)")]
    [InlineData("rgb(1, 2, 256)", null)]
    [InlineData("red", null)]
    [InlineData("#abcd", null)]
    [InlineData("expression(alert(1))", null)]
    public void Colours_are_hex_or_rgb_only(string value, string? expected) => Assert.Equal(expected, RichHtml.Colour(value));

    private static string Render(string delta) => RichHtml.Render(RichDocument.Parse(delta));

    /// <summary>Parses like a browser and checks every element, attribute and URL against the renderer's allow-list.</summary>
    private static void AssertOnlyAllowed(string html)
    {
        IDocument document = s_parser.ParseDocument("<!DOCTYPE html><html><head></head><body>" + html + "</body></html>");
        foreach (IElement element in document.Body!.QuerySelectorAll("*"))
        {
            string tag = element.LocalName;
            Assert.True(RichHtml.Tags.Contains(tag), $"<{tag}> is not allowed: {html}");
            foreach (IAttr attribute in element.Attributes)
            {
                Assert.True(RichHtml.Attributes.TryGetValue(tag, out IReadOnlySet<string>? allowed) && allowed.Contains(attribute.Name), $"{tag}[{attribute.Name}] is not allowed: {html}");
                string value = attribute.Value;
                switch (attribute.Name)
                {
                    case "href":
                        Assert.Matches("^(https?://|mailto:)", value);
                        break;
                    case "src":
                        Assert.Matches("^(https?://|data:image/(png|jpeg|gif|webp);base64,)", value);
                        break;
                    case "style":
                        Assert.Matches(@"^(color: (#[0-9a-f]{3,6}|rgb\(\d{1,3}, \d{1,3}, \d{1,3}\))(; )?)?(background-color: (#[0-9a-f]{3,6}|rgb\(\d{1,3}, \d{1,3}, \d{1,3}\)))?$", value);
                        break;
                    case "class":
                        Assert.Matches("^(ql-align-(center|right|justify)|ql-indent-[1-8]|ql-formula)( ql-indent-[1-8])?$", value);
                        break;
                    case "rel":
                        Assert.Equal("noopener noreferrer nofollow", value);
                        break;
                    case "data-checked":
                        Assert.Matches("^(true|false)$", value);
                        break;
                    case "alt":
                        Assert.Equal("", value);
                        break;
                }
            }
        }

        Assert.Empty(document.QuerySelectorAll("script, style, iframe, object, embed, svg, math"));
    }
}
