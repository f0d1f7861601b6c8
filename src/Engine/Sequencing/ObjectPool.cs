namespace Collab.Engine.Sequencing;

/// <summary>
/// A small lock-free pool (Roslyn's ObjectPool design): a fast first slot plus an array of slots claimed with
/// Interlocked.CompareExchange. Unlike a linked free list it has no ABA hazard, and it never allocates: when it is empty
/// the caller creates an object, when it is full the returned object is dropped for the GC.
/// </summary>
/// <typeparam name="T">The pooled object's type.</typeparam>
/// <param name="size">Objects it keeps at most.</param>
public sealed class ObjectPool<T>(int size)
    where T : class
{
    private readonly T?[] _items = new T?[Math.Max(1, size - 1)];
    private T? _first;

    /// <summary>An object from the pool, or null when it is empty (the caller creates one).</summary>
    public T? TryRent()
    {
        T? item = _first;
        if (item is not null && Interlocked.CompareExchange(ref _first, null, item) == item)
        {
            return item;
        }

        T?[] items = _items;
        for (int i = 0; i < items.Length; i++)
        {
            item = items[i];
            if (item is not null && Interlocked.CompareExchange(ref items[i], null, item) == item)
            {
                return item;
            }
        }

        return null;
    }

    /// <summary>Puts <paramref name="item"/> back (reset by the caller); dropped when the pool is full.</summary>
    public void Return(T item)
    {
        if (_first is null && Interlocked.CompareExchange(ref _first, item, null) is null)
        {
            return;
        }

        T?[] items = _items;
        for (int i = 0; i < items.Length; i++)
        {
            if (items[i] is null && Interlocked.CompareExchange(ref items[i], item, null) is null)
            {
                return;
            }
        }
    }
}
