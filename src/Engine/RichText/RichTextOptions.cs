namespace Collab.Engine.RichText;

/// <summary>
/// Limits on the rich-text ops a client may submit (<see cref="RichTextType.ValidateLimits"/>). They are a policy
/// for new input, not part of the format: ops already in the op log load whatever the limits are now, so tightening
/// them never makes a stored document unreadable. One instance per server; documented in README's configuration
/// tables when the server binds it.
/// </summary>
public sealed class RichTextOptions
{
    /// <summary>Quill 2's built-in embeds.</summary>
    public static readonly IReadOnlyList<string> QuillEmbedTypes = ["image", "video", "formula"];

    /// <summary>Most attributes on one component (Quill's formats number about twenty).</summary>
    public int MaxAttributesPerComponent { get; set; } = 32;

    /// <summary>Longest attribute name, in UTF-16 units.</summary>
    public int MaxAttributeNameLength { get; set; } = 64;

    /// <summary>Largest attribute value, in bytes of its binary encoding (docs/OT.md; a string value is about its UTF-8 length). Links are the long ones.</summary>
    public int MaxAttributeValueBytes { get; set; } = 4096;

    /// <summary>
    /// Largest embed, in bytes of its binary encoding (type and payload). Quill inserts pasted images as <c>data:</c>
    /// URLs, which this bounds; an application that uploads images elsewhere can set it far lower.
    /// </summary>
    public int MaxEmbedBytes { get; set; } = 256 * 1024;

    /// <summary>Embed types accepted (<see cref="OtErrorCode.UnknownEmbedType"/> otherwise); null accepts any. Default: <see cref="QuillEmbedTypes"/>.</summary>
    public IReadOnlyCollection<string>? AllowedEmbedTypes { get; set; } = QuillEmbedTypes;

    /// <summary>Attribute names accepted (<see cref="OtErrorCode.UnknownAttribute"/> otherwise); null (the default) accepts any, as Quill ignores formats it does not know.</summary>
    public IReadOnlyCollection<string>? AllowedAttributes { get; set; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a value outside its valid range.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxAttributesPerComponent, 0, nameof(MaxAttributesPerComponent));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxAttributeNameLength, 1, nameof(MaxAttributeNameLength));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxAttributeValueBytes, 1, nameof(MaxAttributeValueBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxEmbedBytes, 2, nameof(MaxEmbedBytes));
    }
}
