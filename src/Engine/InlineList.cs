using System.Buffers;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Collab.Engine;

/// <summary>
/// The op builders' storage: the first eight items live inside the struct, more spill into a pooled array, so building
/// a typical op allocates only its result. <see cref="Dispose"/> returns the pooled array cleared (the items reference
/// strings that must not outlive the op in the pool) and empties the list.
/// </summary>
internal ref struct InlineList<T>
{
    private const int InlineCapacity = 8;

    private InlineItems _inline;
    private T[]? _spill;
    private int _count;

    public readonly int Count => _count;

    /// <summary>The items so far, to read or replace in place.</summary>
    [UnscopedRef]
    public Span<T> Span => (_spill is null ? (Span<T>)_inline : _spill)[.._count];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(in T item)
    {
        Span<T> storage = _spill is null ? _inline : _spill;
        if (_count == storage.Length)
        {
            Grow();
            storage = _spill;
        }

        storage[_count++] = item;
    }

    /// <summary>Inserts <paramref name="item"/> before the last item.</summary>
    public void InsertBeforeLast(in T item)
    {
        Debug.Assert(_count > 0);
        Add(item);
        Span<T> items = Span;
        (items[^2], items[^1]) = (items[^1], items[^2]);
    }

    public readonly T[] ToArray(int count) => ((ReadOnlySpan<T>)(_spill is null ? (ReadOnlySpan<T>)_inline : _spill))[..count].ToArray();

    public void Dispose()
    {
        T[]? spill = _spill;
        if (spill is not null)
        {
            _spill = null;
            ArrayPool<T>.Shared.Return(spill, clearArray: true);
        }
        else
        {
            ((Span<T>)_inline)[.._count].Clear();
        }

        _count = 0;
    }

    [MemberNotNull(nameof(_spill))]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Grow()
    {
        Span<T> items = _spill is null ? _inline : _spill;
        T[] bigger = ArrayPool<T>.Shared.Rent(items.Length * 2);
        items[.._count].CopyTo(bigger);
        T[]? old = _spill;
        if (old is not null)
        {
            ArrayPool<T>.Shared.Return(old, clearArray: true);
        }
        else
        {
            ((Span<T>)_inline).Clear();
        }

        _spill = bigger;
    }

    [InlineArray(InlineCapacity)]
    private struct InlineItems
    {
        private T _element0;
    }
}
