using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Collab.Engine.Text;

/// <summary>
/// Builds a <see cref="TextOp"/> in normal form as components are appended (text-unicode's
/// <c>append</c>): empty components are dropped, adjacent components of one kind are merged, and
/// <see cref="ToOp"/> drops a trailing retain. An insert and a delete at one place stay in the
/// order they were appended.
/// </summary>
/// <remarks>
/// The first eight components live inside the struct, so building a typical op allocates only
/// the result array; longer ops spill into a pooled array. <see cref="ToOp"/> hands out the op and
/// resets the builder; call <see cref="Dispose"/> when abandoning a builder that may have spilled.
/// <para>The convenience methods <see cref="Retain"/>, <see cref="Insert"/> and <see cref="Delete"/> accept
/// zero (nothing is appended, which suits diff code) and reject negative lengths with
/// <see cref="OtErrorCode.InvalidLength"/>; the op's total lengths must fit an <see cref="int"/>
/// (<see cref="OtErrorCode.OpTooLong"/> otherwise).</para>
/// </remarks>
public ref struct TextOpBuilder
{
    private InlineList<TextComponent> _items;
    private int _baseLength;
    private int _targetLength;

    /// <summary>An empty builder; append components, then build the op.</summary>
    public TextOpBuilder()
    {
    }

    /// <summary>Components appended so far (after merging).</summary>
    public readonly int Count => _items.Count;

    /// <summary>Retains <paramref name="count"/> code points; zero appends nothing.</summary>
    public void Retain(int count)
    {
        if (count <= 0)
        {
            if (count < 0)
            {
                TextComponent.ThrowInvalidLength(count);
            }

            return;
        }

        AppendRetain(count);
    }

    /// <summary>Deletes <paramref name="count"/> code points; zero appends nothing.</summary>
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

        AppendDelete(count);
    }

    /// <summary>Inserts <paramref name="text"/>; empty text appends nothing, a lone surrogate throws <see cref="OtErrorCode.InvalidText"/>.</summary>
    public void Insert(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length != 0)
        {
            AppendInsert(text, TextComponent.CountInsertCodePoints(text));
        }
    }

    /// <summary>
    /// Appends a component. Throws <see cref="OtErrorCode.UnknownComponent"/> for a component without
    /// a defined kind (such as <c>default(TextComponent)</c>).
    /// </summary>
    public void Append(in TextComponent component)
    {
        switch (component.Kind)
        {
            case TextComponentKind.Retain:
                AppendRetain(component.Length);
                break;
            case TextComponentKind.Insert:
                AppendInsert(component.Text!, component.Length);
                break;
            case TextComponentKind.Delete:
                AppendDelete(component.Length);
                break;
            default:
                ThrowUnknownComponent(component.Kind);
                break;
        }
    }

    /// <summary>Returns the op built so far (trailing retain dropped) and resets the builder for reuse.</summary>
    public TextOp ToOp()
    {
        int count = _items.Count;
        int baseLength = _baseLength;
        int targetLength = _targetLength;
        if (count > 0 && _items.Span[count - 1].Kind == TextComponentKind.Retain)
        {
            int trailing = _items.Span[count - 1].Length;
            baseLength -= trailing;
            targetLength -= trailing;
            count--;
        }

        TextOp op = count == 0 ? TextOp.Empty : new TextOp(_items.ToArray(count), baseLength, targetLength);
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

    // Trusted appends: the engine calls these with positive lengths and validated text.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void AppendRetain(int count)
    {
        Debug.Assert(count > 0);
        _baseLength = CheckedAdd(_baseLength, count);
        _targetLength = CheckedAdd(_targetLength, count);
        Span<TextComponent> items = _items.Span;
        int last = items.Length - 1;
        if (last >= 0 && items[last].Kind == TextComponentKind.Retain)
        {
            items[last] = TextComponent.RetainTrusted(items[last].Length + count);
            return;
        }

        _items.Add(TextComponent.RetainTrusted(count));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void AppendDelete(int count)
    {
        Debug.Assert(count > 0);
        _baseLength = CheckedAdd(_baseLength, count);
        Span<TextComponent> items = _items.Span;
        int last = items.Length - 1;
        if (last >= 0 && items[last].Kind == TextComponentKind.Delete)
        {
            items[last] = TextComponent.DeleteTrusted(items[last].Length + count);
            return;
        }

        _items.Add(TextComponent.DeleteTrusted(count));
    }

    internal void AppendInsert(string text, int codePoints)
    {
        Debug.Assert(text.Length > 0 && codePoints > 0);
        _targetLength = CheckedAdd(_targetLength, codePoints);
        Span<TextComponent> items = _items.Span;
        int last = items.Length - 1;
        if (last >= 0 && items[last].Kind == TextComponentKind.Insert)
        {
            ref readonly TextComponent previous = ref items[last];
            items[last] = TextComponent.InsertTrusted(string.Concat(previous.Text, text), previous.Length + codePoints);
            return;
        }

        _items.Add(TextComponent.InsertTrusted(text, codePoints));
    }

    /// <summary>Appends a piece derived from a valid op (no validation).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void AppendTrusted(in TextComponent component)
    {
        switch (component.Kind)
        {
            case TextComponentKind.Retain:
                AppendRetain(component.Length);
                break;
            case TextComponentKind.Insert:
                AppendInsert(component.Text!, component.Length);
                break;
            default:
                AppendDelete(component.Length);
                break;
        }
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
        throw new OtException(OtErrorCode.OpTooLong, "The op's lengths exceed int.MaxValue code points, more than any document holds.");

    [DoesNotReturn]
    private static void ThrowUnknownComponent(TextComponentKind kind) =>
        throw new OtException(OtErrorCode.UnknownComponent, $"Unknown text op component kind {(int)kind}.");

}
