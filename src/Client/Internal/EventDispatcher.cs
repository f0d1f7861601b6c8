using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Collab.Client.Internal;

/// <summary>
/// Raises the SDK's events one at a time, in the order they were posted, on one consumer task.
/// The receive loop never runs application code, so a slow or re-entrant handler cannot stall the
/// connection or deadlock on the SDK's locks; handlers may call back into any public API.
/// </summary>
internal sealed class EventDispatcher
{
    private readonly Channel<Action> _queue = Channel.CreateUnbounded<Action>(new UnboundedChannelOptions
    {
        SingleReader = true,
        SingleWriter = false,
        AllowSynchronousContinuations = false,
    });

    private readonly ILogger _logger;
    private readonly Task _loop;
    private int _dispatchingThreadId;

    public EventDispatcher(ILogger logger)
    {
        _logger = logger;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Queues an event; ignored once the dispatcher is completed.</summary>
    public void Post(Action raise) => _queue.Writer.TryWrite(raise);

    /// <summary>True while the current thread is running an event handler.</summary>
    public bool IsDispatching => Volatile.Read(ref _dispatchingThreadId) == Environment.CurrentManagedThreadId;

    /// <summary>Raises every event already queued, then stops. Does not wait when called from a handler (it would wait for itself).</summary>
    public Task CompleteAsync()
    {
        _queue.Writer.TryComplete();
        return IsDispatching ? Task.CompletedTask : _loop;
    }

    private async Task RunAsync()
    {
        await foreach (Action raise in _queue.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            Volatile.Write(ref _dispatchingThreadId, Environment.CurrentManagedThreadId);
            try
            {
                raise();
            }
            catch (Exception ex)
            {
                // A faulty handler must not kill the event stream for every other subscriber.
                Log.EventHandlerFailed(_logger, ex);
            }
            finally
            {
                Volatile.Write(ref _dispatchingThreadId, 0);
            }
        }
    }
}
