using Collab.Engine;

namespace Collab.Client.Sync;

/// <summary>What an undo history needs of a document: its lock, its local state and a way to submit; <see cref="DocumentSync{TSnapshot, TOp}"/> in the SDK.</summary>
internal interface IUndoTarget<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    Lock Gate { get; }

    DocumentKind<TSnapshot, TOp> Kind { get; }

    /// <summary>The local document (caller holds <see cref="Gate"/>).</summary>
    TSnapshot SnapshotLocked { get; }

    /// <summary>Applies a local edit (caller holds <see cref="Gate"/>); reports it to the observer with <paramref name="origin"/>.</summary>
    void SubmitLocked(TOp op, EditOrigin origin);

    /// <summary>Sets or (null) removes the observer of every applied change (caller holds <see cref="Gate"/>).</summary>
    void SetObserver(IDocumentObserver<TSnapshot, TOp>? observer);
}

/// <summary>
/// Undo and redo of the local user's own edits, for any OT type; the semantics of the browser SDK's
/// <c>UndoManager</c> (web/client/src/undo.ts), which this mirrors step for step. Each step is stored as the inverse of the
/// user's edit; every change applied after it (a remote op, a resync) transforms it, so when it is finally applied it
/// removes exactly what the user did, where it now is, and never touches other users' work.
/// </summary>
/// <remarks>
/// Stack discipline (ot.js / ShareDB): the top step applies to the current document, each step below it to the document
/// after the step above it was undone. A change <c>r</c> applied to the document transforms the top step <c>u</c> into
/// <c>u' = T(u, r, left)</c> and carries on down the stack as <c>r' = T(r, u, right)</c>. Everything runs under the
/// document's lock, so the stacks always match the document.
/// </remarks>
internal sealed class UndoHistory<TSnapshot, TOp> : IDocumentObserver<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    private readonly IUndoTarget<TSnapshot, TOp> _target;
    private readonly DocumentKind<TSnapshot, TOp> _kind;
    private readonly List<TOp> _undo = [];
    private readonly List<TOp> _redo = [];
    private readonly TimeSpan _captureTimeout;
    private readonly int _maxSteps;
    private readonly TimeProvider _time;
    private long _lastEditAt;
    private bool _capturing;
    private bool _disposed;

    public UndoHistory(IUndoTarget<TSnapshot, TOp> target, TimeSpan captureTimeout, int maxSteps, TimeProvider time)
    {
        _target = target;
        _kind = target.Kind;
        _captureTimeout = captureTimeout;
        _maxSteps = maxSteps;
        _time = time;
        lock (target.Gate)
        {
            target.SetObserver(this);
        }
    }

    public bool CanUndo
    {
        get
        {
            lock (_target.Gate)
            {
                return _undo.Count > 0;
            }
        }
    }

    public bool CanRedo
    {
        get
        {
            lock (_target.Gate)
            {
                return _redo.Count > 0;
            }
        }
    }

    public bool Undo() => Step(_undo, _redo, EditOrigin.Undo);

    public bool Redo() => Step(_redo, _undo, EditOrigin.Redo);

    public void StopCapturing()
    {
        lock (_target.Gate)
        {
            _capturing = false;
        }
    }

    public void Clear()
    {
        lock (_target.Gate)
        {
            _undo.Clear();
            _redo.Clear();
            _capturing = false;
        }
    }

    public void Dispose()
    {
        lock (_target.Gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _target.SetObserver(null);
            _undo.Clear();
            _redo.Clear();
        }
    }

    void IDocumentObserver<TSnapshot, TOp>.OnLocalEdit(TOp op, TSnapshot before, EditOrigin origin)
    {
        if (origin == EditOrigin.User)
        {
            Record(op, before);
        }
    }

    void IDocumentObserver<TSnapshot, TOp>.OnRemoteChange(TOp op)
    {
        TransformStack(_undo, op);
        TransformStack(_redo, op);
    }

    private bool Step(List<TOp> from, List<TOp> to, EditOrigin origin)
    {
        lock (_target.Gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);

            // A step that others' edits have emptied (they deleted everything it would touch) is skipped, not replayed as a
            // keypress that visibly does nothing.
            while (from.Count > 0)
            {
                TOp op = from[^1];
                from.RemoveAt(from.Count - 1);
                if (_kind.IsNoop(op))
                {
                    continue;
                }

                TSnapshot before = _target.SnapshotLocked;
                try
                {
                    _target.SubmitLocked(op, origin);
                }
                catch
                {
                    from.Add(op);
                    throw;
                }

                to.Add(_kind.Invert(op, before));
                _capturing = false;
                return true;
            }

            return false;
        }
    }

    private void Record(TOp op, TSnapshot before)
    {
        TOp inverse = _kind.Invert(op, before);
        _redo.Clear();
        long now = _time.GetTimestamp();
        if (_undo.Count > 0 && _capturing && _time.GetElapsedTime(_lastEditAt, now) < _captureTimeout)
        {
            // Merge: undoing both is undoing the new edit, then the older one.
            _undo[^1] = _kind.Compose(inverse, _undo[^1]);
        }
        else
        {
            _undo.Add(inverse);
            if (_undo.Count > _maxSteps)
            {
                _undo.RemoveAt(0);
            }
        }

        _lastEditAt = now;
        _capturing = true;
    }

    private void TransformStack(List<TOp> stack, TOp op)
    {
        TOp r = op;
        for (int i = stack.Count - 1; i >= 0 && !_kind.IsNoop(r); i--)
        {
            TOp u = stack[i];
            stack[i] = _kind.Transform(u, r, TransformSide.Left);
            r = _kind.Transform(r, u, TransformSide.Right);
        }
    }
}
