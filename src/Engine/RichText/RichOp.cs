using System.Diagnostics.CodeAnalysis;

namespace Collab.Engine.RichText;

/// <summary>
/// An immutable rich-text operation: a Quill Delta (quill-delta 4.2.2's <c>ops</c>) walking the document from its
/// start, e.g. <c>[{"retain":5},{"retain":3,"attributes":{"bold":true}},{"insert":"!"}]</c>. Lengths count UTF-16 code
/// units; an embed counts 1.
/// </summary>
/// <remarks>
/// <para>Always in normal form (quill-delta's <c>push</c> then <c>chop</c>, docs/OT.md): no empty component, adjacent
/// deletes merged, an insert never right after a delete, adjacent text inserts or retains with equal attributes merged,
/// no trailing retain without attributes. Build ops with <see cref="RichOpBuilder"/> or <see cref="Create"/>.</para>
/// <para>The struct wraps one array; <c>default</c> is the empty op. Equality is structural and deep.</para>
/// </remarks>
public readonly struct RichOp : IEquatable<RichOp>
{
    private readonly RichComponent[]? _components;
    private readonly int _baseLength;
    private readonly int _targetLength;

    /// <summary>Wraps an array already in normal form; the caller gives up ownership.</summary>
    internal RichOp(RichComponent[] components, int baseLength, int targetLength)
    {
        _components = components;
        _baseLength = baseLength;
        _targetLength = targetLength;
    }

    /// <summary>The op that changes nothing.</summary>
    public static RichOp Empty => default;

    /// <summary>The number of components.</summary>
    public int Count => _components?.Length ?? 0;

    /// <summary>The components in document order.</summary>
    public ReadOnlySpan<RichComponent> Components => _components;

    /// <summary>The component at <paramref name="index"/>.</summary>
    public RichComponent this[int index] => (_components ?? [])[index];

    /// <summary>Units of the input the op reads (retains + deletes): the shortest document it applies to.</summary>
    public int BaseLength => _baseLength;

    /// <summary>Units of the output the op writes (retains + inserts).</summary>
    public int TargetLength => _targetLength;

    /// <summary>True when the op changes nothing (in normal form: has no component).</summary>
    public bool IsNoop => Count == 0;

    /// <summary>True when every component is an insert (a document, as quill-delta represents one).</summary>
    public bool IsDocument => _baseLength == 0;

    /// <summary>The normal form of an arbitrary component sequence (quill-delta's <c>push</c> of each, then <c>chop</c>).</summary>
    public static RichOp Create(params ReadOnlySpan<RichComponent> components)
    {
        var builder = new RichOpBuilder();
        foreach (ref readonly RichComponent component in components)
        {
            builder.Append(component);
        }

        return builder.ToOp();
    }

    /// <summary>Inserts <paramref name="text"/> with <paramref name="attributes"/> at <paramref name="position"/>.</summary>
    public static RichOp Insert(int position, string text, AttributeMap? attributes = null)
    {
        var builder = new RichOpBuilder();
        builder.Retain(position);
        builder.Insert(text, attributes);
        return builder.ToOp();
    }

    /// <summary>Deletes <paramref name="length"/> units at <paramref name="position"/>.</summary>
    public static RichOp Delete(int position, int length)
    {
        var builder = new RichOpBuilder();
        builder.Retain(position);
        builder.Delete(length);
        return builder.ToOp();
    }

    /// <summary>Sets <paramref name="attributes"/> on <paramref name="length"/> units at <paramref name="position"/> (null values remove formats).</summary>
    public static RichOp Format(int position, int length, AttributeMap attributes)
    {
        ArgumentNullException.ThrowIfNull(attributes);
        var builder = new RichOpBuilder();
        builder.Retain(position);
        builder.Retain(length, attributes);
        return builder.ToOp();
    }

    /// <summary>Parses quill-delta JSON (<c>[...]</c> or <c>{"ops":[...]}</c>) into normal form; see <see cref="RichJson.ParseOp(string)"/>.</summary>
    public static RichOp Parse(string json) => RichJson.ParseOp(json);

    /// <summary>Enumerates the components in order, without allocating (for <c>foreach</c>).</summary>
    public ReadOnlySpan<RichComponent>.Enumerator GetEnumerator() => Components.GetEnumerator();

    /// <inheritdoc />
    public bool Equals(RichOp other) => Components.SequenceEqual(other.Components);

    /// <inheritdoc />
    public override bool Equals([NotNullWhen(true)] object? obj) => obj is RichOp other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (ref readonly RichComponent component in Components)
        {
            hash.Add(component);
        }

        return hash.ToHashCode();
    }

    /// <summary>Whether <paramref name="left"/> and <paramref name="right"/> are equal.</summary>
    public static bool operator ==(RichOp left, RichOp right) => left.Equals(right);

    /// <summary>Whether <paramref name="left"/> and <paramref name="right"/> differ.</summary>
    public static bool operator !=(RichOp left, RichOp right) => !left.Equals(right);

    /// <summary>quill-delta's JSON ops array.</summary>
    public override string ToString() => RichJson.Write(this);
}
