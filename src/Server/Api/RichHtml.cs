using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.RegularExpressions;
using Collab.Engine.RichText;

namespace Collab.Server.Api;

/// <summary>
/// Renders a rich-text document as sanitised HTML (<c>GET /v1/docs/{id}/export?format=html</c>, docs/API.md). The markup is
/// generated, never copied from the document: every tag and attribute comes from a fixed allow-list chosen by the Quill
/// format that asks for it, every piece of text and every attribute value is HTML-encoded (<see cref="HtmlEncoder"/>),
/// and values that reach an attribute are validated first: links and videos only as absolute http, https or mailto URLs,
/// images as http(s) URLs or base64 <c>data:image/(png|jpeg|gif|webp)</c> URLs, colours only as <c>#rgb</c>,
/// <c>#rrggbb</c> or <c>rgb(r, g, b)</c>, alignment and indent from their closed sets; anything else is dropped (the text
/// stays, unformatted). So no document content can produce a script, an event handler, a style expression or a
/// <c>javascript:</c> URL. No .NET library renders Quill Deltas (quill-delta-to-html is JavaScript); the escaping is
/// the framework's encoder.
/// </summary>
/// <remarks>
/// Lines follow Quill's semantic HTML: a line's block format is on its newline (header 1-6, list, blockquote, code-block,
/// align, indent); consecutive list items share one <c>ol</c>/<c>ul</c> (nesting by indent is shown as a class),
/// consecutive code-block lines one <c>pre</c>; an empty line is <c>&lt;p&gt;&lt;br&gt;&lt;/p&gt;</c>. Inline formats:
/// bold <c>strong</c>, italic <c>em</c>, underline <c>u</c>, strike <c>s</c>, code <c>code</c>, script
/// <c>sub</c>/<c>sup</c>, link <c>a href rel</c>, color/background <c>span style</c>; embeds: image <c>img</c>, video a link
/// to it, formula its TeX source as text. Unknown formats and embeds are ignored.
/// </remarks>
internal static partial class RichHtml
{
    /// <summary>The tags the renderer can emit.</summary>
    public static readonly IReadOnlySet<string> Tags = new HashSet<string>(StringComparer.Ordinal)
    {
        "p", "br", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "u", "s", "code", "sub", "sup", "a", "span", "ol", "ul", "li",
        "blockquote", "pre", "img",
    };

    /// <summary>The attributes each tag can carry (any other tag: none).</summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlySet<string>> Attributes = new Dictionary<string, IReadOnlySet<string>>(StringComparer.Ordinal)
    {
        ["a"] = new HashSet<string>(StringComparer.Ordinal) { "href", "rel" },
        ["img"] = new HashSet<string>(StringComparer.Ordinal) { "src", "alt" },
        ["span"] = new HashSet<string>(StringComparer.Ordinal) { "style", "class" },
        ["li"] = new HashSet<string>(StringComparer.Ordinal) { "class", "data-checked" },
        ["p"] = new HashSet<string>(StringComparer.Ordinal) { "class" },
        ["h1"] = new HashSet<string>(StringComparer.Ordinal) { "class" },
        ["h2"] = new HashSet<string>(StringComparer.Ordinal) { "class" },
        ["h3"] = new HashSet<string>(StringComparer.Ordinal) { "class" },
        ["h4"] = new HashSet<string>(StringComparer.Ordinal) { "class" },
        ["h5"] = new HashSet<string>(StringComparer.Ordinal) { "class" },
        ["h6"] = new HashSet<string>(StringComparer.Ordinal) { "class" },
        ["blockquote"] = new HashSet<string>(StringComparer.Ordinal) { "class" },
    };

    private static readonly HtmlEncoder s_encoder = HtmlEncoder.Default;

    /// <summary>The document as an HTML fragment (no <c>html</c>/<c>body</c>), UTF-8 text.</summary>
    public static string Render(RichDocument document)
    {
        var lines = new List<Line>();
        var current = new List<RichComponent>();
        foreach (RichComponent segment in document.ToOp().Components)
        {
            if (segment.IsEmbed)
            {
                current.Add(segment);
                continue;
            }

            string text = segment.Text!;
            int start = 0;
            for (int newline = text.IndexOf('\n', StringComparison.Ordinal); newline >= 0; newline = text.IndexOf('\n', start))
            {
                if (newline > start)
                {
                    current.Add(RichComponent.Insert(text[start..newline], segment.Attributes));
                }

                lines.Add(new Line(current, segment.Attributes));
                current = [];
                start = newline + 1;
            }

            if (start < text.Length)
            {
                current.Add(RichComponent.Insert(text[start..], segment.Attributes));
            }
        }

        if (current.Count > 0)
        {
            lines.Add(new Line(current, null));
        }

        var html = new StringBuilder();
        for (int i = 0; i < lines.Count;)
        {
            Line line = lines[i];
            if (ListKind(line.Format) is { } list)
            {
                html.Append(list == "ordered" ? "<ol>" : "<ul>");
                for (; i < lines.Count && ListKind(lines[i].Format) is { } same && SameList(same, list); i++)
                {
                    html.Append("<li");
                    AppendBlockClass(html, lines[i].Format);
                    if (same is "checked" or "unchecked")
                    {
                        html.Append(" data-checked=\"").Append(same == "checked" ? "true" : "false").Append('"');
                    }

                    html.Append('>');
                    AppendInline(html, lines[i].Content);
                    html.Append("</li>");
                }

                html.Append(list == "ordered" ? "</ol>" : "</ul>");
                continue;
            }

            if (IsTrue(line.Format, "code-block"))
            {
                html.Append("<pre>");
                for (bool first = true; i < lines.Count && IsTrue(lines[i].Format, "code-block"); i++, first = false)
                {
                    if (!first)
                    {
                        html.Append('\n');
                    }

                    foreach (RichComponent c in lines[i].Content)
                    {
                        if (c.IsText)
                        {
                            html.Append(s_encoder.Encode(c.Text!));
                        }
                    }
                }

                html.Append("</pre>");
                continue;
            }

            string tag = HeaderLevel(line.Format) is { } level ? "h" + level.ToString(CultureInfo.InvariantCulture)
                : IsTrue(line.Format, "blockquote") ? "blockquote"
                : "p";
            html.Append('<').Append(tag);
            AppendBlockClass(html, line.Format);
            html.Append('>');
            if (line.Content.Count == 0)
            {
                html.Append("<br>");
            }
            else
            {
                AppendInline(html, line.Content);
            }

            html.Append("</").Append(tag).Append('>');
            i++;
        }

        return html.ToString();
    }

    private static void AppendInline(StringBuilder html, List<RichComponent> content)
    {
        foreach (RichComponent c in content)
        {
            AttributeMap? a = c.Attributes;
            var close = new Stack<string>();
            if (Link(a, "link") is { } href)
            {
                html.Append("<a href=\"").Append(s_encoder.Encode(href)).Append("\" rel=\"noopener noreferrer nofollow\">");
                close.Push("</a>");
            }

            string? style = Style(a);
            if (style is not null)
            {
                html.Append("<span style=\"").Append(style).Append("\">");
                close.Push("</span>");
            }

            foreach ((string format, string tag) in s_inlineTags)
            {
                if (IsTrue(a, format))
                {
                    html.Append('<').Append(tag).Append('>');
                    close.Push("</" + tag + ">");
                }
            }

            if (String(a, "script") is "sub" or "super")
            {
                string tag = String(a, "script") == "sub" ? "sub" : "sup";
                html.Append('<').Append(tag).Append('>');
                close.Push("</" + tag + ">");
            }

            if (c.IsText)
            {
                html.Append(s_encoder.Encode(c.Text!));
            }
            else
            {
                AppendEmbed(html, c.Embed!);
            }

            while (close.Count > 0)
            {
                html.Append(close.Pop());
            }
        }
    }

    private static readonly (string Format, string Tag)[] s_inlineTags =
        [("bold", "strong"), ("italic", "em"), ("underline", "u"), ("strike", "s"), ("code", "code")];

    private static void AppendEmbed(StringBuilder html, RichEmbed embed)
    {
        string? value = embed.Value.Kind == RichValueKind.String ? embed.Value.String : null;
        switch (embed.Type)
        {
            case "image" when value is not null && (DataImage().IsMatch(value) ? value : Url(value, allowMailto: false)) is { } src:
                html.Append("<img src=\"").Append(s_encoder.Encode(src)).Append("\" alt=\"\">");
                break;
            case "video" when value is not null && Url(value, allowMailto: false) is { } video:
                string encoded = s_encoder.Encode(video);
                html.Append("<a href=\"").Append(encoded).Append("\" rel=\"noopener noreferrer nofollow\">").Append(encoded).Append("</a>");
                break;
            case "formula" when value is not null:
                html.Append("<span class=\"ql-formula\">").Append(s_encoder.Encode(value)).Append("</span>");
                break;
            default:
                break; // an embed the renderer does not know shows nothing
        }
    }

    private static void AppendBlockClass(StringBuilder html, AttributeMap? format)
    {
        var classes = new List<string>(2);
        if (String(format, "align") is "center" or "right" or "justify")
        {
            classes.Add("ql-align-" + String(format, "align"));
        }

        if (format is not null && format.TryGetValue("indent", out RichValue indent) && indent.Kind == RichValueKind.Number
            && indent.Number is >= 1 and <= 8 && indent.Number == Math.Floor(indent.Number))
        {
            classes.Add("ql-indent-" + ((int)indent.Number).ToString(CultureInfo.InvariantCulture));
        }

        if (classes.Count > 0)
        {
            html.Append(" class=\"").Append(string.Join(' ', classes)).Append('"');
        }
    }

    private static string? Style(AttributeMap? a)
    {
        string? color = Colour(String(a, "color"));
        string? background = Colour(String(a, "background"));
        return (color, background) switch
        {
            (null, null) => null,
            (_, null) => "color: " + color,
            (null, _) => "background-color: " + background,
            _ => "color: " + color + "; background-color: " + background,
        };
    }

    /// <summary>A colour that can only be a colour: #rgb, #rrggbb or rgb(r, g, b) with 0-255 parts; null otherwise.</summary>
    internal static string? Colour(string? value)
    {
        if (value is null)
        {
            return null;
        }

        if (HexColour().IsMatch(value))
        {
            return value.ToLowerInvariant();
        }

        Match rgb = RgbColour().Match(value);
        if (rgb.Success && rgb.Groups.Values.Skip(1).All(g => int.Parse(g.Value, CultureInfo.InvariantCulture) <= 255))
        {
            return $"rgb({rgb.Groups[1].Value}, {rgb.Groups[2].Value}, {rgb.Groups[3].Value})";
        }

        return null;
    }

    private static string? Link(AttributeMap? a, string name) => String(a, name) is { } value ? Url(value, allowMailto: true) : null;

    /// <summary>
    /// An absolute http, https (or mailto) URL in its normalised form; null for anything else: other schemes
    /// (<c>javascript:</c>, <c>data:</c>, <c>vbscript:</c>), relative references, entity-encoded or otherwise obfuscated
    /// schemes (no colon where one is needed), and any whitespace or control character (browsers drop tabs and newlines
    /// inside a scheme, so <c>java&#x9;script:</c> is refused rather than trusted to parse the same way).
    /// </summary>
    internal static string? Url(string value, bool allowMailto)
    {
        if (value.Length is 0 or > 4096 || value.Any(c => c <= ' ' || char.IsControl(c) || c == '\u007f'))
        {
            return null;
        }

        if (!Uri.TryCreate(value, UriKind.Absolute, out Uri? uri))
        {
            return null;
        }

        return uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps || (allowMailto && uri.Scheme == Uri.UriSchemeMailto)
            ? uri.AbsoluteUri
            : null;
    }

    private static string? ListKind(AttributeMap? format) => String(format, "list") is "ordered" or "bullet" or "checked" or "unchecked" ? String(format, "list") : null;

    private static bool SameList(string a, string b) => a == b || (a is "checked" or "unchecked" && b is "checked" or "unchecked");

    private static int? HeaderLevel(AttributeMap? format) =>
        format is not null && format.TryGetValue("header", out RichValue header) && header.Kind == RichValueKind.Number
        && header.Number is >= 1 and <= 6 && header.Number == Math.Floor(header.Number)
            ? (int)header.Number
            : null;

    private static bool IsTrue(AttributeMap? a, string name) => a is not null && a.TryGetValue(name, out RichValue value) && value.Kind == RichValueKind.True;

    private static string? String(AttributeMap? a, string name) =>
        a is not null && a.TryGetValue(name, out RichValue value) && value.Kind == RichValueKind.String ? value.String : null;

    [GeneratedRegex("^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$", RegexOptions.CultureInvariant)]
    private static partial Regex HexColour();

    [GeneratedRegex(@"^rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)$", RegexOptions.CultureInvariant)]
    private static partial Regex RgbColour();

    [GeneratedRegex("^data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}$", RegexOptions.CultureInvariant)]
    private static partial Regex DataImage();

    private readonly record struct Line(List<RichComponent> Content, AttributeMap? Format);
}
