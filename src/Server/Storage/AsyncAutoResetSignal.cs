using System.Threading.Tasks.Sources;

namespace Collab.Server.Storage;

/// <summary>
/// An allocation-free auto-reset event for exactly one waiter (the group-commit loops). <see cref="Set"/> may be called
/// from any thread any number of times; a set that happens while nobody waits is remembered once.
/// </summary>
internal sealed class AsyncAutoResetSignal : IValueTaskSource
{
    private const int Idle = 0;
    private const int Signaled = 1;
    private const int Waiting = 2;

    // Continuations run on the thread pool: Set() is called by producers and a timer, which must not end up running
    // the waiting loop inline.
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private int _state;

    public void Set()
    {
        while (true)
        {
            switch (Volatile.Read(ref _state))
            {
                case Signaled:
                    return;
                case Idle:
                    if (Interlocked.CompareExchange(ref _state, Signaled, Idle) == Idle)
                    {
                        return;
                    }

                    break;
                default:
                    if (Interlocked.CompareExchange(ref _state, Idle, Waiting) == Waiting)
                    {
                        _core.SetResult(true);
                        return;
                    }

                    break;
            }
        }
    }

    /// <summary>Completes when <see cref="Set"/> is (or already was) called. One waiter at a time.</summary>
    public ValueTask WaitAsync()
    {
        if (Interlocked.CompareExchange(ref _state, Idle, Signaled) == Signaled)
        {
            return default;
        }

        _core.Reset();
        if (Interlocked.CompareExchange(ref _state, Waiting, Idle) == Idle)
        {
            return new ValueTask(this, _core.Version);
        }

        // Set() won the race between the two exchanges: consume it.
        Volatile.Write(ref _state, Idle);
        return default;
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
