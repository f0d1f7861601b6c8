using Collab.Engine.Sequencing;

namespace Collab.Server.Sessions;

/// <summary>
/// A client submit's outcome to come: the local sequencer's own result (the common case, awaited directly, with no
/// conversion step of its own), or the outcome of a submit forwarded to the document's owner.
/// </summary>
internal readonly struct PendingSubmit
{
    private readonly ValueTask<SubmitResult> _local;
    private readonly ValueTask<SubmitOutcome> _forwarded;
    private readonly bool _isLocal;

    public PendingSubmit(ValueTask<SubmitResult> local)
    {
        _local = local;
        _isLocal = true;
    }

    public PendingSubmit(ValueTask<SubmitOutcome> forwarded) => _forwarded = forwarded;

    public bool IsCompleted => _isLocal ? _local.IsCompleted : _forwarded.IsCompleted;

    /// <summary>The outcome (once <see cref="IsCompleted"/>); throws what the submit failed with. Call exactly once.</summary>
    public SubmitOutcome GetResult() => _isLocal ? SubmitOutcome.From(_local.GetAwaiter().GetResult()) : _forwarded.GetAwaiter().GetResult();

    /// <summary>Runs <paramref name="continuation"/> when the outcome is known (no execution context flows, nothing is allocated).</summary>
    public void OnCompleted(Action continuation)
    {
        if (_isLocal)
        {
            _local.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(continuation);
        }
        else
        {
            _forwarded.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(continuation);
        }
    }
}
