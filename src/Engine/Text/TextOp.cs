using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace Collab.Engine.Text;

/// <summary>
/// An immutable text operation: a list of <see cref="TextComponent"/>s that walks the input
/// document from its start, exactly like ShareDB's <c>ot-text-unicode</c> ops
/// (<c>[3, "hi", {d:2}]</c>). Positions and lengths count Unicode code points.
/// </summary>
/// <remarks>
/// <para>A <see cref="TextOp"/> is always in normal form: no empty component, no two adjacent
/// components of one kind, no trailing retain (the rest of the document is implicitly kept).
/// An insert next to a delete keeps the order it was built in, as in text-unicode, because the
/// order decides which side of a concurrent insert it lands on (docs/OT.md).</para>
/// <para>The struct wraps one array (like <c>ImmutableArray</c>); <c>default</c> is the empty op.
/// Equality is structural.</para>
/// </remarks>
public readonly struct TextOp : IEquatable<TextOp>
{
    private readonly TextComponent[]? _components;
    private readonly int _baseLength;
    private readonly int _targetLength;

    /// <summary>Wraps an array that is already in normal form; the caller gives up ownership.</summary>
    internal TextOp(TextComponent[] components, int baseLength, int targetLength)
    {
        _components = components;
        _baseLength = baseLength;
        _targetLength = targetLength;
    }

    /// <summary>The op that changes nothing.</summary>
    public static TextOp Empty => default;

    /// <summary>Number of components.</summary>
    public int Count => _components?.Length ?? 0;

    /// <summary>The components in order.</summary>
    public ReadOnlySpan<TextComponent> Components => _components;

    /// <summary>The component at <paramref name="index"/>.</summary>
    public TextComponent this[int index] => (_components ?? [])[index];

    /// <summary>Code points of the input the op reads (retains + deletes): the shortest document it applies to.</summary>
    public int BaseLength => _baseLength;

    /// <summary>Code points of the output the op writes (retains + inserts).</summary>
    public int TargetLength => _targetLength;

    /// <summary>True when the op changes nothing (in normal form: has no component).</summary>
    public bool IsNoop => Count == 0;

    /// <summary>Inserts <paramref name="text"/> at code point <paramref name="position"/>.</summary>
    public static TextOp Insert(int position, string text)
    {
        var builder = new TextOpBuilder();
        builder.Retain(position);
        builder.Insert(text);
        return builder.ToOp();
    }

    /// <summary>Deletes <paramref name="length"/> code points at <paramref name="position"/>.</summary>
    public static TextOp Delete(int position, int length)
    {
        var builder = new TextOpBuilder();
        builder.Retain(position);
        builder.Delete(length);
        return builder.ToOp();
    }

    /// <summary>Deletes <paramref name="length"/> code points at <paramref name="position"/> and inserts <paramref name="text"/> there (delete first, then insert).</summary>
    public static TextOp Replace(int position, int length, string text)
    {
        var builder = new TextOpBuilder();
        builder.Retain(position);
        builder.Delete(length);
        builder.Insert(text);
        return builder.ToOp();
    }

    /// <summary>Builds the normal form of an arbitrary component sequence (text-unicode's <c>normalize</c>).</summary>
    public static TextOp Create(ReadOnlySpan<TextComponent> components)
    {
        var builder = new TextOpBuilder();
        foreach (ref readonly TextComponent component in components)
        {
            builder.Append(component);
        }

        return builder.ToOp();
    }

    /// <summary>Enumerates the components in order, without allocating (for <c>foreach</c>).</summary>
    public ReadOnlySpan<TextComponent>.Enumerator GetEnumerator() => Components.GetEnumerator();

    /// <inheritdoc />
    public bool Equals(TextOp other) => Components.SequenceEqual(other.Components);

    /// <inheritdoc />
    public override bool Equals([NotNullWhen(true)] object? obj) => obj is TextOp other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (ref readonly TextComponent component in Components)
        {
            hash.Add(component);
        }

        return hash.ToHashCode();
    }

    /// <summary>Whether <paramref name="left"/> and <paramref name="right"/> are equal.</summary>
    public static bool operator ==(TextOp left, TextOp right) => left.Equals(right);

    /// <summary>Whether <paramref name="left"/> and <paramref name="right"/> differ.</summary>
    public static bool operator !=(TextOp left, TextOp right) => !left.Equals(right);

    /// <summary>ShareDB's JSON notation, e.g. <c>[3,"hi",{"d":2}]</c>.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < Count; i++)
        {
            if (i > 0)
            {
                sb.Append(',');
            }

            _components![i].AppendTo(sb);
        }

        return sb.Append(']').ToString();
    }
}
