using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text;

namespace Collab.Engine.Text;

/// <summary>The three component kinds of a text op. Zero is deliberately unused so that <c>default</c> is not a valid component.</summary>
public enum TextComponentKind : byte
{
    /// <summary>Keep (skip over) <see cref="TextComponent.Length"/> code points of the input document.</summary>
    Retain = 1,
    /// <summary>Insert <see cref="TextComponent.Text"/> at the current position.</summary>
    Insert = 2,
    /// <summary>Remove <see cref="TextComponent.Length"/> code points of the input document.</summary>
    Delete = 3,
}

/// <summary>
/// One component of a <see cref="TextOp"/>: retain(n), insert(text) or delete(n). Lengths count
/// Unicode code points. Instances made through the factories are always valid: lengths are
/// positive and inserted text is non-empty, well-formed UTF-16 (no lone surrogate).
/// </summary>
public readonly struct TextComponent : IEquatable<TextComponent>
{
    private readonly string? _text;
    private readonly int _length;
    private readonly TextComponentKind _kind;

    private TextComponent(TextComponentKind kind, int length, string? text)
    {
        _kind = kind;
        _length = length;
        _text = text;
    }

    /// <summary>The kind; 0 (no defined kind) only for <c>default(TextComponent)</c>.</summary>
    public TextComponentKind Kind => _kind;

    /// <summary>Length in code points (for an insert: the code points of <see cref="Text"/>).</summary>
    public int Length => _length;

    /// <summary>The inserted text for <see cref="TextComponentKind.Insert"/>; null otherwise.</summary>
    public string? Text => _text;

    /// <summary>Whether this component keeps code points unchanged.</summary>
    public bool IsRetain => _kind == TextComponentKind.Retain;

    /// <summary>Whether this component inserts text.</summary>
    [MemberNotNullWhen(true, nameof(Text))]
    public bool IsInsert => _kind == TextComponentKind.Insert;

    /// <summary>Whether this component deletes code points.</summary>
    public bool IsDelete => _kind == TextComponentKind.Delete;

    /// <summary>Retain <paramref name="count"/> code points; throws <see cref="OtErrorCode.InvalidLength"/> unless it is positive.</summary>
    public static TextComponent Retain(int count)
    {
        if (count <= 0)
        {
            ThrowInvalidLength(count);
        }

        return new TextComponent(TextComponentKind.Retain, count, null);
    }

    /// <summary>Delete <paramref name="count"/> code points; throws <see cref="OtErrorCode.InvalidLength"/> unless it is positive.</summary>
    public static TextComponent Delete(int count)
    {
        if (count <= 0)
        {
            ThrowInvalidLength(count);
        }

        return new TextComponent(TextComponentKind.Delete, count, null);
    }

    /// <summary>
    /// Insert <paramref name="text"/>; throws <see cref="OtErrorCode.InvalidLength"/> for empty text and
    /// <see cref="OtErrorCode.InvalidText"/> for text holding a lone surrogate.
    /// </summary>
    public static TextComponent Insert(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0)
        {
            ThrowInvalidLength(0);
        }

        return new TextComponent(TextComponentKind.Insert, CountInsertCodePoints(text), text);
    }

    // Trusted constructors for pieces the engine derives from already-validated components.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TextComponent RetainTrusted(int count) => new(TextComponentKind.Retain, count, null);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TextComponent DeleteTrusted(int count) => new(TextComponentKind.Delete, count, null);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TextComponent InsertTrusted(string text, int codePoints) => new(TextComponentKind.Insert, codePoints, text);

    /// <summary>Code points of <paramref name="text"/>; throws <see cref="OtErrorCode.InvalidText"/> on a lone surrogate.</summary>
    internal static int CountInsertCodePoints(string text)
    {
        int codePoints = CodePoints.CountOrInvalid(text);
        if (codePoints < 0)
        {
            ThrowInvalidText();
        }

        return codePoints;
    }

    /// <inheritdoc />
    public bool Equals(TextComponent other) =>
        _kind == other._kind && _length == other._length && string.Equals(_text, other._text, StringComparison.Ordinal);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is TextComponent other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(_kind, _length, _text is null ? 0 : string.GetHashCode(_text, StringComparison.Ordinal));

    /// <summary>Whether <paramref name="left"/> and <paramref name="right"/> are equal.</summary>
    public static bool operator ==(TextComponent left, TextComponent right) => left.Equals(right);

    /// <summary>Whether <paramref name="left"/> and <paramref name="right"/> differ.</summary>
    public static bool operator !=(TextComponent left, TextComponent right) => !left.Equals(right);

    /// <summary>ShareDB's JSON notation: <c>3</c>, <c>"text"</c>, <c>{"d":2}</c>.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        AppendTo(sb);
        return sb.ToString();
    }

    internal void AppendTo(StringBuilder sb)
    {
        switch (_kind)
        {
            case TextComponentKind.Retain:
                sb.Append(_length);
                break;
            case TextComponentKind.Insert:
                AppendJsonString(sb, _text!);
                break;
            case TextComponentKind.Delete:
                sb.Append("{\"d\":").Append(_length).Append('}');
                break;
            default:
                sb.Append("{\"?\":").Append((int)_kind).Append('}');
                break;
        }
    }

    private static void AppendJsonString(StringBuilder sb, string text)
    {
        sb.Append('"');
        foreach (char c in text)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < ' ')
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        sb.Append('"');
    }

    [DoesNotReturn]
    internal static void ThrowInvalidLength(long length) =>
        throw new OtException(OtErrorCode.InvalidLength, $"A component length must be positive, got {length}.");

    [DoesNotReturn]
    internal static void ThrowInvalidText() =>
        throw new OtException(OtErrorCode.InvalidText, "Inserted text holds a lone surrogate; it must be well-formed UTF-16.");
}
