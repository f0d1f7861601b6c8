using System.Threading.Channels;

namespace Collab.Client.Tests;

/// <summary>Collects events raised on the SDK's dispatcher so a test can await them in order.</summary>
internal sealed class EventRecorder<T>
{
    private readonly Channel<T> _events = Channel.CreateUnbounded<T>();
    private readonly List<T> _all = [];

    public void Add(T item)
    {
        lock (_all)
        {
            _all.Add(item);
        }

        _events.Writer.TryWrite(item);
    }

    public void Handler(object? sender, T args) => Add(args);

    public IReadOnlyList<T> All
    {
        get
        {
            lock (_all)
            {
                return [.. _all];
            }
        }
    }

    public async Task<T> NextAsync()
    {
        using var cts = new CancellationTokenSource(FakeServer.Timeout);
        return await _events.Reader.ReadAsync(cts.Token);
    }

    /// <summary>Skips events until one matches.</summary>
    public async Task<T> WaitForAsync(Func<T, bool> predicate)
    {
        while (true)
        {
            T item = await NextAsync();
            if (predicate(item))
            {
                return item;
            }
        }
    }
}
