using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Collab.Engine.Text;

namespace Collab.Engine.RichText;

/// <summary>The three component kinds of a rich-text op. Zero is unused so that <c>default</c> is not a valid component.</summary>
public enum RichComponentKind : byte
{
    /// <summary>Keep <see cref="RichComponent.Length"/> units of the input, applying <see cref="RichComponent.Attributes"/> if any.</summary>
    Retain = 1,
    /// <summary>Insert text or an embed (with <see cref="RichComponent.Attributes"/>) at the current position.</summary>
    Insert = 2,
    /// <summary>Remove <see cref="RichComponent.Length"/> units of the input.</summary>
    Delete = 3,
}

/// <summary>
/// One component of a <see cref="RichOp"/> (one quill-delta op): <c>{"retain": n, "attributes": {...}}</c>,
/// <c>{"insert": "text" | {embed}, "attributes": {...}}</c> or <c>{"delete": n}</c>. Lengths count UTF-16 code units
/// (JavaScript string length); an embed counts 1. Instances made through the factories are valid: lengths positive,
/// text non-empty and well-formed (no lone surrogate), no attributes on a delete.
/// </summary>
public readonly struct RichComponent : IEquatable<RichComponent>
{
    private readonly object? _content;
    private readonly AttributeMap? _attributes;
    private readonly int _length;
    private readonly RichComponentKind _kind;

    private RichComponent(RichComponentKind kind, int length, object? content, AttributeMap? attributes)
    {
        _kind = kind;
        _length = length;
        _content = content;
        _attributes = attributes;
    }

    /// <summary>The kind; 0 only for <c>default(RichComponent)</c>.</summary>
    public RichComponentKind Kind => _kind;

    /// <summary>Length in UTF-16 units (an embed: 1).</summary>
    public int Length => _length;

    /// <summary>The inserted text, or null (retain, delete, embed).</summary>
    public string? Text => _content as string;

    /// <summary>The inserted embed, or null.</summary>
    public RichEmbed? Embed => _content as RichEmbed;

    /// <summary>The formats set (retain: changed; null values remove), or null for none.</summary>
    public AttributeMap? Attributes => _attributes;

    /// <summary>Whether this component keeps characters (possibly changing their attributes).</summary>
    public bool IsRetain => _kind == RichComponentKind.Retain;

    /// <summary>Whether this component inserts text or an embed.</summary>
    public bool IsInsert => _kind == RichComponentKind.Insert;

    /// <summary>Whether this component deletes characters.</summary>
    public bool IsDelete => _kind == RichComponentKind.Delete;

    /// <summary>An insert of text.</summary>
    [MemberNotNullWhen(true, nameof(Text))]
    public bool IsText => _content is string;

    /// <summary>An insert of an embed.</summary>
    [MemberNotNullWhen(true, nameof(Embed))]
    public bool IsEmbed => _content is RichEmbed;

    /// <summary>A retain without attributes: changes nothing.</summary>
    public bool IsPlainRetain => _kind == RichComponentKind.Retain && _attributes is null;

    internal object? Content => _content;

    /// <summary>Retain <paramref name="count"/> units, setting <paramref name="attributes"/> on them; throws <see cref="OtErrorCode.InvalidLength"/> unless positive.</summary>
    public static RichComponent Retain(int count, AttributeMap? attributes = null)
    {
        if (count <= 0)
        {
            TextComponent.ThrowInvalidLength(count);
        }

        return new RichComponent(RichComponentKind.Retain, count, null, attributes);
    }

    /// <summary>Delete <paramref name="count"/> units; throws <see cref="OtErrorCode.InvalidLength"/> unless positive.</summary>
    public static RichComponent Delete(int count)
    {
        if (count <= 0)
        {
            TextComponent.ThrowInvalidLength(count);
        }

        return new RichComponent(RichComponentKind.Delete, count, null, null);
    }

    /// <summary>
    /// Insert <paramref name="text"/> formatted with <paramref name="attributes"/>; throws <see cref="OtErrorCode.InvalidLength"/>
    /// for empty text and <see cref="OtErrorCode.InvalidText"/> for a lone surrogate.
    /// </summary>
    public static RichComponent Insert(string text, AttributeMap? attributes = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0)
        {
            TextComponent.ThrowInvalidLength(0);
        }

        if (CodePoints.CountOrInvalid(text) < 0)
        {
            TextComponent.ThrowInvalidText();
        }

        return new RichComponent(RichComponentKind.Insert, text.Length, text, attributes);
    }

    /// <summary>Insert <paramref name="embed"/> (length 1) formatted with <paramref name="attributes"/>.</summary>
    public static RichComponent Insert(RichEmbed embed, AttributeMap? attributes = null)
    {
        ArgumentNullException.ThrowIfNull(embed);
        return new RichComponent(RichComponentKind.Insert, 1, embed, attributes);
    }

    // Trusted constructors for pieces derived from validated components.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static RichComponent RetainTrusted(int count, AttributeMap? attributes) => new(RichComponentKind.Retain, count, null, attributes);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static RichComponent DeleteTrusted(int count) => new(RichComponentKind.Delete, count, null, null);

    /// <summary>An insert of <paramref name="content"/> (well-formed non-empty text or an embed).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static RichComponent InsertTrusted(object content, AttributeMap? attributes) =>
        new(RichComponentKind.Insert, content is string text ? text.Length : 1, content, attributes);

    /// <summary>This component with other attributes.</summary>
    internal RichComponent WithAttributes(AttributeMap? attributes) => new(_kind, _length, _content, attributes);

    /// <summary>Structural equality: kind, length, text or embed (deep) and attributes (deep).</summary>
    public bool Equals(RichComponent other) =>
        _kind == other._kind
        && _length == other._length
        && ContentEquals(_content, other._content)
        && AttributeMap.Equals(_attributes, other._attributes);

    internal static bool ContentEquals(object? a, object? b) => a switch
    {
        string text => b is string other && string.Equals(text, other, StringComparison.Ordinal),
        RichEmbed embed => embed.Equals(b as RichEmbed),
        _ => b is null,
    };

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is RichComponent other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(_kind, _length, _content, _attributes);

    /// <summary>Whether <paramref name="left"/> and <paramref name="right"/> are equal.</summary>
    public static bool operator ==(RichComponent left, RichComponent right) => left.Equals(right);

    /// <summary>Whether <paramref name="left"/> and <paramref name="right"/> differ.</summary>
    public static bool operator !=(RichComponent left, RichComponent right) => !left.Equals(right);

    /// <summary>quill-delta's JSON, e.g. <c>{"insert":"hi","attributes":{"bold":true}}</c>.</summary>
    public override string ToString() => RichJson.Write(this);
}
