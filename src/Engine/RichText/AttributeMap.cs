using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using Collab.Engine.Text;

namespace Collab.Engine.RichText;

/// <summary>
/// The formats of a rich-text component (quill-delta's <c>AttributeMap</c>), e.g. <c>{"bold": true, "color": "#f00"}</c>.
/// Immutable, never empty (an op without formats has a null map), names sorted ordinally and unique. A
/// <see cref="RichValue.Null"/> value is meaningful: on a retain it removes the format; on an insert it is kept as
/// given, as quill-delta keeps it.
/// </summary>
public sealed class AttributeMap : IEquatable<AttributeMap>
{
    private readonly KeyValuePair<string, RichValue>[] _entries;

    private AttributeMap(KeyValuePair<string, RichValue>[] sortedEntries)
    {
        Debug.Assert(sortedEntries.Length > 0);
        _entries = sortedEntries;
    }

    /// <summary>Number of attributes (at least one).</summary>
    public int Count => _entries.Length;

    /// <summary>The attributes sorted by name (ordinal).</summary>
    public ReadOnlySpan<KeyValuePair<string, RichValue>> Entries => _entries;

    /// <summary>The value of <paramref name="name"/>; throws <see cref="KeyNotFoundException"/> when absent.</summary>
    public RichValue this[string name] => TryGetValue(name, out RichValue value) ? value : throw new KeyNotFoundException($"No attribute '{name}'.");

    /// <summary>
    /// A map of <paramref name="entries"/>, or null when there are none (quill-delta drops an empty map). Throws
    /// <see cref="ArgumentException"/> for an empty or repeated name and <see cref="OtException"/>
    /// (<see cref="OtErrorCode.InvalidText"/>) for a name with a lone surrogate.
    /// </summary>
    public static AttributeMap? Create(params ReadOnlySpan<KeyValuePair<string, RichValue>> entries)
    {
        if (entries.IsEmpty)
        {
            return null;
        }

        KeyValuePair<string, RichValue>[] sorted = entries.ToArray();
        foreach (KeyValuePair<string, RichValue> entry in sorted)
        {
            CheckName(entry.Key);
        }

        Array.Sort(sorted, static (a, b) => string.CompareOrdinal(a.Key, b.Key));
        for (int i = 1; i < sorted.Length; i++)
        {
            if (sorted[i - 1].Key == sorted[i].Key)
            {
                throw new ArgumentException($"The attribute '{sorted[i].Key}' is given twice.", nameof(entries));
            }
        }

        return new AttributeMap(sorted);
    }

    /// <summary>A map with one attribute.</summary>
    public static AttributeMap Of(string name, RichValue value)
    {
        CheckName(name);
        return new AttributeMap([new(name, value)]);
    }

    /// <summary>Wraps entries that are sorted, unique and non-empty (decoders).</summary>
    internal static AttributeMap CreateTrusted(KeyValuePair<string, RichValue>[] sortedEntries) => new(sortedEntries);

    /// <summary>Whether the map sets <paramref name="name"/>.</summary>
    public bool ContainsKey(string name) => IndexOf(name) >= 0;

    /// <summary>The value set for <paramref name="name"/>; false when the map does not set it.</summary>
    public bool TryGetValue(string name, out RichValue value)
    {
        int index = IndexOf(name);
        value = index >= 0 ? _entries[index].Value : default;
        return index >= 0;
    }

    private int IndexOf(string name)
    {
        KeyValuePair<string, RichValue>[] entries = _entries;
        if (entries.Length <= 8)
        {
            for (int i = 0; i < entries.Length; i++)
            {
                if (string.Equals(entries[i].Key, name, StringComparison.Ordinal))
                {
                    return i;
                }
            }

            return -1;
        }

        int lo = 0;
        int hi = entries.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            int c = string.CompareOrdinal(entries[mid].Key, name);
            if (c == 0)
            {
                return mid;
            }

            if (c < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return -1;
    }

    /// <summary>True when some value is null (a format removal).</summary>
    public bool HasNullValue
    {
        get
        {
            foreach (KeyValuePair<string, RichValue> entry in _entries)
            {
                if (entry.Value.IsNull)
                {
                    return true;
                }
            }

            return false;
        }
    }

    // ---- quill-delta's AttributeMap functions ------------------------------------------------------------------

    /// <summary>
    /// quill-delta's <c>AttributeMap.compose(a, b, keepNull)</c>: <paramref name="b"/>'s attributes (its nulls dropped
    /// unless <paramref name="keepNull"/>) plus those of <paramref name="a"/> that <paramref name="b"/> does not name.
    /// </summary>
    public static AttributeMap? Compose(AttributeMap? a, AttributeMap? b, bool keepNull)
    {
        if (b is null)
        {
            return a;
        }

        if (a is null && (keepNull || !b.HasNullValue))
        {
            return b;
        }

        ReadOnlySpan<KeyValuePair<string, RichValue>> first = a is null ? default : a._entries;
        ReadOnlySpan<KeyValuePair<string, RichValue>> second = b._entries;
        var result = new KeyValuePair<string, RichValue>[first.Length + second.Length];
        int count = 0;
        int i = 0;
        int j = 0;
        while (i < first.Length || j < second.Length)
        {
            int c = i == first.Length ? 1 : j == second.Length ? -1 : string.CompareOrdinal(first[i].Key, second[j].Key);
            if (c < 0)
            {
                result[count++] = first[i++];
                continue;
            }

            if (c == 0)
            {
                i++;
            }

            if (keepNull || !second[j].Value.IsNull)
            {
                result[count++] = second[j];
            }

            j++;
        }

        return Finish(result, count, a, b);
    }

    /// <summary>
    /// quill-delta's <c>AttributeMap.transform(a, b, priority)</c>: <paramref name="b"/>'s attributes made to apply after
    /// <paramref name="a"/>'s. Without priority <paramref name="b"/> wins every name; with it, names that
    /// <paramref name="a"/> set (to any value, null included) are dropped from <paramref name="b"/>.
    /// </summary>
    public static AttributeMap? Transform(AttributeMap? a, AttributeMap? b, bool priority)
    {
        if (a is null || b is null || !priority)
        {
            return b;
        }

        ReadOnlySpan<KeyValuePair<string, RichValue>> theirs = a._entries;
        ReadOnlySpan<KeyValuePair<string, RichValue>> mine = b._entries;
        KeyValuePair<string, RichValue>[]? result = null;
        int count = 0;
        int i = 0;
        for (int j = 0; j < mine.Length; j++)
        {
            while (i < theirs.Length && string.CompareOrdinal(theirs[i].Key, mine[j].Key) < 0)
            {
                i++;
            }

            if (i < theirs.Length && theirs[i].Key == mine[j].Key)
            {
                continue;
            }

            result ??= new KeyValuePair<string, RichValue>[mine.Length];
            result[count++] = mine[j];
        }

        return result is null ? null : Finish(result, count, null, b);
    }

    /// <summary>
    /// quill-delta's <c>AttributeMap.invert(attr, base)</c>: the attributes that undo <paramref name="attributes"/>
    /// applied over <paramref name="baseAttributes"/>. A name <paramref name="attributes"/> sets goes back to the base's
    /// value, or to null where the base did not have it; values are compared with JavaScript's <c>===</c>
    /// (<see cref="RichValue.StrictEquals"/>), as rich-text does.
    /// </summary>
    public static AttributeMap? Invert(AttributeMap? attributes, AttributeMap? baseAttributes)
    {
        if (attributes is null)
        {
            return null;
        }

        ReadOnlySpan<KeyValuePair<string, RichValue>> mine = attributes._entries;
        var result = new KeyValuePair<string, RichValue>[mine.Length];
        int count = 0;
        foreach (KeyValuePair<string, RichValue> entry in mine)
        {
            if (baseAttributes is null || !baseAttributes.TryGetValue(entry.Key, out RichValue before))
            {
                result[count++] = new(entry.Key, RichValue.Null);
            }
            else if (!entry.Value.StrictEquals(before))
            {
                result[count++] = new(entry.Key, before);
            }
        }

        return Finish(result, count, null, null);
    }

    /// <summary>Wraps the first <paramref name="count"/> entries, reusing an input map that has exactly those entries.</summary>
    private static AttributeMap? Finish(KeyValuePair<string, RichValue>[] result, int count, AttributeMap? a, AttributeMap? b)
    {
        if (count == 0)
        {
            return null;
        }

        if (b is not null && SameEntries(result, count, b))
        {
            return b;
        }

        if (a is not null && SameEntries(result, count, a))
        {
            return a;
        }

        if (count < result.Length)
        {
            Array.Resize(ref result, count);
        }

        return new AttributeMap(result);

        static bool SameEntries(KeyValuePair<string, RichValue>[] result, int count, AttributeMap map)
        {
            if (map._entries.Length != count)
            {
                return false;
            }

            for (int i = 0; i < count; i++)
            {
                if (!ReferenceEquals(result[i].Key, map._entries[i].Key) || !result[i].Value.Equals(map._entries[i].Value))
                {
                    return false;
                }
            }

            return true;
        }
    }

    // ---- Equality ------------------------------------------------------------------------------------------------

    /// <summary>Deep equality (lodash's <c>isEqual</c>): the same names with equal values.</summary>
    public bool Equals([NotNullWhen(true)] AttributeMap? other)
    {
        if (ReferenceEquals(this, other))
        {
            return true;
        }

        if (other is null || other._entries.Length != _entries.Length)
        {
            return false;
        }

        for (int i = 0; i < _entries.Length; i++)
        {
            if (!string.Equals(_entries[i].Key, other._entries[i].Key, StringComparison.Ordinal) || !_entries[i].Value.Equals(other._entries[i].Value))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Equality where null (no attributes) equals only null, as quill-delta's <c>isEqual(a.attributes, b.attributes)</c>.</summary>
    public static bool Equals(AttributeMap? a, AttributeMap? b) => ReferenceEquals(a, b) || (a is not null && a.Equals(b));

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is AttributeMap other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (KeyValuePair<string, RichValue> entry in _entries)
        {
            hash.Add(string.GetHashCode(entry.Key, StringComparison.Ordinal));
            hash.Add(entry.Value);
        }

        return hash.ToHashCode();
    }

    /// <summary>The map as JSON, e.g. <c>{"bold":true}</c>.</summary>
    public override string ToString() => RichJson.Write(RichValue.ObjectTrusted(_entries));

    private static void CheckName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0)
        {
            throw new ArgumentException("An attribute name must not be empty.", nameof(name));
        }

        if (CodePoints.CountOrInvalid(name) < 0)
        {
            throw new OtException(OtErrorCode.InvalidText, "An attribute name holds a lone surrogate (not well-formed UTF-16).");
        }
    }
}
