using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using Collab.Engine.Text;

namespace Collab.Engine.RichText;

/// <summary>
/// An embedded object inserted into a rich-text document, Quill's <c>{"image": "https://…"}</c>: an object with one
/// member whose name is the embed's <see cref="Type"/> and whose value is its <see cref="Value"/> (any JSON). It
/// counts as one unit of length. Equality is deep.
/// </summary>
public sealed class RichEmbed : IEquatable<RichEmbed>
{
    /// <summary>An embed of <paramref name="type"/> (non-empty, well-formed) carrying <paramref name="value"/>.</summary>
    public RichEmbed(string type, RichValue value)
    {
        ArgumentNullException.ThrowIfNull(type);
        if (type.Length == 0)
        {
            throw new ArgumentException("An embed type must not be empty.", nameof(type));
        }

        if (CodePoints.CountOrInvalid(type) < 0)
        {
            throw new OtException(OtErrorCode.InvalidText, "An embed type holds a lone surrogate (not well-formed UTF-16).");
        }

        RichValue.CheckDepth(value);
        Type = type;
        Value = value;
    }

    private RichEmbed(string type, RichValue value, bool trusted)
    {
        Debug.Assert(trusted);
        Type = type;
        Value = value;
    }

    /// <summary>The embed's kind, e.g. "image", "video", "formula".</summary>
    public string Type { get; }

    /// <summary>The payload, e.g. the image URL.</summary>
    public RichValue Value { get; }

    internal static RichEmbed CreateTrusted(string type, RichValue value) => new(type, value, trusted: true);

    /// <inheritdoc />
    public bool Equals([NotNullWhen(true)] RichEmbed? other) =>
        ReferenceEquals(this, other) || (other is not null && string.Equals(Type, other.Type, StringComparison.Ordinal) && Value.Equals(other.Value));

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is RichEmbed other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(string.GetHashCode(Type, StringComparison.Ordinal), Value);

    /// <summary>The embed as JSON, e.g. <c>{"image":"cat.png"}</c>.</summary>
    public override string ToString() => RichJson.Write(RichValue.ObjectTrusted([new(Type, Value)]));
}
