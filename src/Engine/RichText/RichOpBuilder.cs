using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Collab.Engine.Text;

namespace Collab.Engine.RichText;

/// <summary>
/// Builds a <see cref="RichOp"/> in normal form as components are appended, exactly as quill-delta 4.2.2's
/// <c>push</c> does: adjacent deletes merge; an insert appended after a delete goes before it ("it does not matter
/// if we insert before or after deleting at the same index, always prefer to insert first"); a text insert or a
/// retain merges into the previous component when both have equal attributes (embeds never merge).
/// <see cref="ToOp"/> then drops a trailing retain without attributes (<c>chop</c>).
/// </summary>
/// <remarks>
/// The first eight components live inside the struct, so a typical op allocates only its result array; longer ops
/// spill into a pooled array. <see cref="ToOp"/> hands out the op and resets the builder; call <see cref="Dispose"/>
/// when abandoning a builder that may have spilled. <see cref="Retain"/>, <see cref="Insert(string, AttributeMap)"/>
/// and <see cref="Delete"/> treat zero length as "append nothing" (quill-delta's builders do) and reject negative
/// lengths with <see cref="OtErrorCode.InvalidLength"/>; the op's total lengths must fit an <see cref="int"/>
/// (<see cref="OtErrorCode.OpTooLong"/>).
/// </remarks>
public ref struct RichOpBuilder
{
    private InlineList<RichComponent> _items;
    private int _baseLength;
    private int _targetLength;

    /// <summary>An empty builder; append components, then build the op.</summary>
    public RichOpBuilder()
    {
    }

    /// <summary>Components appended so far (after merging).</summary>
    public readonly int Count => _items.Count;

    /// <summary>Retains <paramref name="count"/> units, setting <paramref name="attributes"/>; zero appends nothing.</summary>
    public void Retain(int count, AttributeMap? attributes = null)
    {
        if (count <= 0)
        {
            if (count < 0)
            {
                TextComponent.ThrowInvalidLength(count);
            }

            return;
        }

        Push(RichComponent.RetainTrusted(count, attributes));
    }

    /// <summary>Deletes <paramref name="count"/> units; zero appends nothing.</summary>
    public void Delete(int count)
    {
        if (count <= 0)
        {
            if (count < 0)
            {
                TextComponent.ThrowInvalidLength(count);
            }

            return;
        }

        Push(RichComponent.DeleteTrusted(count));
    }

    /// <summary>Inserts <paramref name="text"/>; empty text appends nothing, a lone surrogate throws <see cref="OtErrorCode.InvalidText"/>.</summary>
    public void Insert(string text, AttributeMap? attributes = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length != 0)
        {
            Push(RichComponent.Insert(text, attributes));
        }
    }

    /// <summary>Inserts <paramref name="embed"/> (length 1).</summary>
    public void Insert(RichEmbed embed, AttributeMap? attributes = null) => Push(RichComponent.Insert(embed, attributes));

    /// <summary>Appends a component; throws <see cref="OtErrorCode.UnknownComponent"/> for <c>default(RichComponent)</c>.</summary>
    public void Append(in RichComponent component)
    {
        if (component.Kind is not (RichComponentKind.Retain or RichComponentKind.Insert or RichComponentKind.Delete))
        {
            throw new OtException(OtErrorCode.UnknownComponent, $"Unknown rich-text component kind {(int)component.Kind}.");
        }

        Push(component);
    }

    /// <summary>Returns the op built so far (trailing plain retain dropped) and resets the builder for reuse.</summary>
    public RichOp ToOp()
    {
        int count = _items.Count;
        int baseLength = _baseLength;
        int targetLength = _targetLength;
        if (count > 0 && _items.Span[count - 1].IsPlainRetain)
        {
            int trailing = _items.Span[count - 1].Length;
            baseLength -= trailing;
            targetLength -= trailing;
            count--;
        }

        RichOp op = count == 0 ? RichOp.Empty : new RichOp(_items.ToArray(count), baseLength, targetLength);
        Dispose();
        return op;
    }

    /// <summary>Returns a spilled buffer to the pool and clears the builder.</summary>
    public void Dispose()
    {
        _items.Dispose();
        _baseLength = 0;
        _targetLength = 0;
    }

    /// <summary>quill-delta's <c>retain(length, attributes)</c> for a positive length from the engine.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void RetainTrusted(int count, AttributeMap? attributes) => Push(RichComponent.RetainTrusted(count, attributes));

    /// <summary>quill-delta's <c>push</c> of a valid component.</summary>
    internal void Push(in RichComponent component)
    {
        Debug.Assert(component.Length > 0);
        if (!component.IsInsert)
        {
            _baseLength = CheckedAdd(_baseLength, component.Length);
        }

        if (!component.IsDelete)
        {
            _targetLength = CheckedAdd(_targetLength, component.Length);
        }

        Span<RichComponent> items = _items.Span;
        int count = items.Length;
        if (count > 0)
        {
            ref RichComponent last = ref items[count - 1];
            if (component.IsDelete && last.IsDelete)
            {
                last = RichComponent.DeleteTrusted(last.Length + component.Length);
                return;
            }

            int index = count;
            if (component.IsInsert && last.IsDelete)
            {
                index--;
                if (index == 0)
                {
                    _items.InsertBeforeLast(component);
                    return;
                }
            }

            ref RichComponent previous = ref items[index - 1];
            if (AttributeMap.Equals(component.Attributes, previous.Attributes))
            {
                if (component.IsText && previous.IsText)
                {
                    previous = RichComponent.InsertTrusted(string.Concat(previous.Text, component.Text), previous.Attributes);
                    return;
                }

                if (component.IsRetain && previous.IsRetain)
                {
                    previous = RichComponent.RetainTrusted(previous.Length + component.Length, previous.Attributes);
                    return;
                }
            }

            if (index < count)
            {
                _items.InsertBeforeLast(component);
                return;
            }
        }

        _items.Add(component);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int CheckedAdd(int total, int length)
    {
        int sum = total + length;
        if (sum < 0)
        {
            ThrowTooLong();
        }

        return sum;
    }

    [DoesNotReturn]
    private static void ThrowTooLong() =>
        throw new OtException(OtErrorCode.OpTooLong, "The op's lengths exceed int.MaxValue units, more than any document holds.");
}
