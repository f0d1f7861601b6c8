using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Collab.Engine.Text;

namespace Collab.Engine.RichText;

/// <summary>The JSON kinds a <see cref="RichValue"/> can hold.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720", Justification = "The JSON value kinds, named as JSON (and System.Text.Json's JsonValueKind) names them.")]
public enum RichValueKind : byte
{
    /// <summary>JSON <c>null</c>.</summary>
    Null = 0,

    /// <summary>JSON <c>false</c>.</summary>
    False = 1,

    /// <summary>JSON <c>true</c>.</summary>
    True = 2,

    /// <summary>A JSON number (a double).</summary>
    Number = 3,

    /// <summary>A JSON string.</summary>
    String = 4,

    /// <summary>A JSON array.</summary>
    Array = 5,

    /// <summary>A JSON object (its members in order, names unique).</summary>
    Object = 6,
}

/// <summary>
/// An immutable JSON value: an attribute value (<c>true</c>, <c>"#ff0000"</c>, <c>2</c>, <c>null</c> to remove a
/// format) or an embed's payload (<c>"https://…/cat.png"</c>, <c>{"id": 7, "name": "Ada"}</c>). Numbers are IEEE 754
/// doubles as in JavaScript (finite; <c>-0</c> is stored as <c>0</c>); strings are well-formed UTF-16; object
/// members are kept sorted by name (ordinal), so two values are <see cref="Equals(RichValue)"/> exactly when lodash's
/// <c>isEqual</c> says so. Nesting is limited to <see cref="MaxDepth"/> levels.
/// </summary>
/// <remarks><c>default(RichValue)</c> is <c>null</c>. Null, booleans and numbers allocate nothing.</remarks>
public readonly struct RichValue : IEquatable<RichValue>
{
    /// <summary>Deepest nesting of arrays and objects, counting the outermost (a flat array has depth 1).</summary>
    public const int MaxDepth = 32;

    private readonly object? _ref;
    private readonly double _number;
    private readonly RichValueKind _kind;

    private RichValue(RichValueKind kind, double number, object? reference)
    {
        _kind = kind;
        _number = number;
        _ref = reference;
    }

    /// <summary>JSON <c>null</c> (in an attribute map: remove the attribute).</summary>
    public static RichValue Null => default;

    /// <summary>JSON <c>true</c>.</summary>
    public static RichValue True => new(RichValueKind.True, 0, null);

    /// <summary>JSON <c>false</c>.</summary>
    public static RichValue False => new(RichValueKind.False, 0, null);

    /// <summary>Which JSON kind this value is.</summary>
    public RichValueKind Kind => _kind;

    /// <summary>Whether this is JSON <c>null</c>.</summary>
    public bool IsNull => _kind == RichValueKind.Null;

    /// <summary>True for arrays and objects, which JavaScript compares by reference (<c>===</c>).</summary>
    public bool IsComposite => _kind >= RichValueKind.Array;

    /// <summary>The number; 0 unless <see cref="Kind"/> is <see cref="RichValueKind.Number"/>.</summary>
    public double Number => _number;

    /// <summary>The string, or null unless <see cref="Kind"/> is <see cref="RichValueKind.String"/>.</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720", Justification = "Named after RichValueKind.String, the JSON kind it reads.")]
    public string? String => _ref as string;

    /// <summary>The elements of an array (empty for other kinds).</summary>
    public ReadOnlySpan<RichValue> Items => _ref as RichValue[];

    /// <summary>The members of an object sorted by name (empty for other kinds).</summary>
    public ReadOnlySpan<KeyValuePair<string, RichValue>> Members => _ref as KeyValuePair<string, RichValue>[];

    /// <summary>JSON <c>true</c> or <c>false</c>.</summary>
    public static RichValue Boolean(bool value) => value ? True : False;

    /// <summary>A number; throws <see cref="ArgumentOutOfRangeException"/> for NaN or an infinity (not JSON).</summary>
    public static RichValue FromNumber(double value)
    {
        if (!double.IsFinite(value))
        {
            throw new ArgumentOutOfRangeException(nameof(value), value, "A JSON number must be finite.");
        }

        return new RichValue(RichValueKind.Number, value == 0 ? 0 : value, null);
    }

    /// <summary>A string; throws <see cref="OtException"/> (<see cref="OtErrorCode.InvalidText"/>) for a lone surrogate.</summary>
    public static RichValue FromString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (CodePoints.CountOrInvalid(value) < 0)
        {
            ThrowInvalidText("A string value");
        }

        return new RichValue(RichValueKind.String, 0, value);
    }

    /// <summary>An array of <paramref name="items"/> (copied).</summary>
    public static RichValue Array(params ReadOnlySpan<RichValue> items)
    {
        var value = new RichValue(RichValueKind.Array, 0, items.ToArray());
        CheckDepth(value);
        return value;
    }

    /// <summary>
    /// An object of <paramref name="members"/> (copied and sorted by name); throws <see cref="ArgumentException"/>
    /// for a name given twice and <see cref="OtException"/> (<see cref="OtErrorCode.InvalidText"/>) for a name with a lone surrogate.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720", Justification = "Builds a RichValueKind.Object, the JSON kind.")]
    public static RichValue Object(params ReadOnlySpan<KeyValuePair<string, RichValue>> members)
    {
        KeyValuePair<string, RichValue>[] sorted = members.ToArray();
        foreach (KeyValuePair<string, RichValue> member in sorted)
        {
            ArgumentNullException.ThrowIfNull(member.Key, nameof(members));
            if (CodePoints.CountOrInvalid(member.Key) < 0)
            {
                ThrowInvalidText("A member name");
            }
        }

        System.Array.Sort(sorted, static (a, b) => string.CompareOrdinal(a.Key, b.Key));
        for (int i = 1; i < sorted.Length; i++)
        {
            if (sorted[i - 1].Key == sorted[i].Key)
            {
                throw new ArgumentException($"The member name '{sorted[i].Key}' is given twice.", nameof(members));
            }
        }

        var value = new RichValue(RichValueKind.Object, 0, sorted);
        CheckDepth(value);
        return value;
    }

    /// <summary>A JSON boolean.</summary>
    public static implicit operator RichValue(bool value) => Boolean(value);

    /// <summary>A JSON number.</summary>
    public static implicit operator RichValue(double value) => FromNumber(value);

    /// <summary>A JSON string.</summary>
    public static implicit operator RichValue(string value) => FromString(value);

    // Trusted factories: the decoders have validated the parts (well-formed text, sorted unique names, bounded depth).
    internal static RichValue StringTrusted(string value) => new(RichValueKind.String, 0, value);

    internal static RichValue NumberTrusted(double value) => new(RichValueKind.Number, value == 0 ? 0 : value, null);

    internal static RichValue ArrayTrusted(RichValue[] items) => new(RichValueKind.Array, 0, items);

    internal static RichValue ObjectTrusted(KeyValuePair<string, RichValue>[] sortedMembers) => new(RichValueKind.Object, 0, sortedMembers);

    /// <summary>Nesting depth: 0 for a scalar, 1 + the deepest element for an array or object.</summary>
    public int Depth
    {
        get
        {
            int deepest = 0;
            switch (_kind)
            {
                case RichValueKind.Array:
                    foreach (RichValue item in Items)
                    {
                        deepest = Math.Max(deepest, item.Depth);
                    }

                    return deepest + 1;
                case RichValueKind.Object:
                    foreach (KeyValuePair<string, RichValue> member in Members)
                    {
                        deepest = Math.Max(deepest, member.Value.Depth);
                    }

                    return deepest + 1;
                default:
                    return 0;
            }
        }
    }

    /// <summary>Deep equality, as lodash's <c>isEqual</c> (quill-delta's comparison of attributes and embeds).</summary>
    public bool Equals(RichValue other)
    {
        if (_kind != other._kind)
        {
            return false;
        }

        switch (_kind)
        {
            case RichValueKind.Number:
                return _number == other._number;
            case RichValueKind.String:
                return string.Equals((string)_ref!, (string)other._ref!, StringComparison.Ordinal);
            case RichValueKind.Array:
                return ReferenceEquals(_ref, other._ref) || Items.SequenceEqual(other.Items);
            case RichValueKind.Object:
                if (ReferenceEquals(_ref, other._ref))
                {
                    return true;
                }

                ReadOnlySpan<KeyValuePair<string, RichValue>> mine = Members;
                ReadOnlySpan<KeyValuePair<string, RichValue>> theirs = other.Members;
                if (mine.Length != theirs.Length)
                {
                    return false;
                }

                for (int i = 0; i < mine.Length; i++)
                {
                    if (!string.Equals(mine[i].Key, theirs[i].Key, StringComparison.Ordinal) || !mine[i].Value.Equals(theirs[i].Value))
                    {
                        return false;
                    }
                }

                return true;
            default:
                return true;
        }
    }

    /// <summary>
    /// JavaScript's <c>===</c>: scalars by value, arrays and objects never equal (two parsed JSON objects are distinct
    /// references). rich-text's <c>invert</c> compares attribute values this way, and Collab matches it.
    /// </summary>
    public bool StrictEquals(RichValue other) => !IsComposite && Equals(other);

    /// <inheritdoc />
    public override bool Equals([NotNullWhen(true)] object? obj) => obj is RichValue other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        switch (_kind)
        {
            case RichValueKind.Number:
                return _number.GetHashCode();
            case RichValueKind.String:
                return string.GetHashCode((string)_ref!, StringComparison.Ordinal);
            case RichValueKind.Array:
                var items = new HashCode();
                foreach (RichValue item in Items)
                {
                    items.Add(item);
                }

                return items.ToHashCode();
            case RichValueKind.Object:
                var members = new HashCode();
                foreach (KeyValuePair<string, RichValue> member in Members)
                {
                    members.Add(string.GetHashCode(member.Key, StringComparison.Ordinal));
                    members.Add(member.Value);
                }

                return members.ToHashCode();
            default:
                return (int)_kind;
        }
    }

    /// <summary>Whether <paramref name="left"/> and <paramref name="right"/> are equal.</summary>
    public static bool operator ==(RichValue left, RichValue right) => left.Equals(right);

    /// <summary>Whether <paramref name="left"/> and <paramref name="right"/> differ.</summary>
    public static bool operator !=(RichValue left, RichValue right) => !left.Equals(right);

    /// <summary>The value as JSON.</summary>
    public override string ToString() => RichJson.Write(this);

    /// <summary>Numbers as JavaScript prints them for the integers Quill uses (<c>2</c>, not <c>2.0</c>).</summary>
    internal static string FormatNumber(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    internal static void CheckDepth(RichValue value)
    {
        if (value.Depth > MaxDepth)
        {
            throw new ArgumentException($"A JSON value nests deeper than {MaxDepth} levels.", nameof(value));
        }
    }

    [DoesNotReturn]
    private static void ThrowInvalidText(string what) =>
        throw new OtException(OtErrorCode.InvalidText, $"{what} holds a lone surrogate (not well-formed UTF-16).");
}
