using Collab.Client.Sync;
using Collab.Engine.RichText;
using Collab.Engine.Text;

namespace Collab.Client;

/// <summary>Settings of an <see cref="UndoManager"/>.</summary>
public sealed class UndoManagerOptions
{
    /// <summary>
    /// Local edits closer together than this merge into one undo step, so undo removes a typed word rather than a letter.
    /// <see cref="TimeSpan.Zero"/> makes every edit its own step. Default 500 ms (as the browser SDK).
    /// </summary>
    public TimeSpan CaptureTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Most undo steps kept; the oldest are dropped. Default 500.</summary>
    public int MaxSteps { get; init; } = 500;

    /// <summary>The clock for <see cref="CaptureTimeout"/>; the system clock by default.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>
/// Undo and redo of this user's own edits in a collaborative document: undoing never touches other users' work
/// (issue 18; the same semantics as the browser SDK's <c>UndoManager</c>). Made by <see cref="CollabDocument.CreateUndoManager"/>
/// or <see cref="CollabRichDocument.CreateUndoManager"/>. Edits the application makes through the
/// document (<see cref="CollabDocument.Insert"/>, <see cref="CollabDocument.Submit"/>, ...) are recorded; remote changes
/// move the history along; <see cref="Undo"/> and <see cref="Redo"/> submit the inverse as a new edit, which syncs like
/// any other.
/// </summary>
/// <remarks>
/// Each step is kept as the inverse of the user's edit and transformed past every change applied after it (other
/// clients' ops, resyncs), so an undo removes exactly what the user did, where it now is. A step that others' edits
/// emptied (they deleted everything it would touch) is skipped. One manager per document; thread-safe.
/// </remarks>
public sealed class UndoManager : IDisposable
{
    private readonly Func<bool> _undo;
    private readonly Func<bool> _redo;
    private readonly Func<bool> _canUndo;
    private readonly Func<bool> _canRedo;
    private readonly Action _stopCapturing;
    private readonly Action _clear;
    private readonly Action _dispose;

    internal UndoManager(object history)
    {
        // One facade over the generic history of either document type.
        switch (history)
        {
            case UndoHistory<Rope, TextOp> text:
                (_undo, _redo, _canUndo, _canRedo, _stopCapturing, _clear, _dispose) =
                    (text.Undo, text.Redo, () => text.CanUndo, () => text.CanRedo, text.StopCapturing, text.Clear, text.Dispose);
                break;
            case UndoHistory<RichDocument, RichOp> rich:
                (_undo, _redo, _canUndo, _canRedo, _stopCapturing, _clear, _dispose) =
                    (rich.Undo, rich.Redo, () => rich.CanUndo, () => rich.CanRedo, rich.StopCapturing, rich.Clear, rich.Dispose);
                break;
            default:
                throw new ArgumentException("Unknown history type.", nameof(history));
        }
    }

    /// <summary>There is an edit of this user to undo.</summary>
    public bool CanUndo => _canUndo();

    /// <summary>There is an undone edit to redo.</summary>
    public bool CanRedo => _canRedo();

    /// <summary>Undoes the user's latest edit (as moved by everything since); <see langword="false"/> when there is nothing to undo.</summary>
    /// <exception cref="ObjectDisposedException">The manager or the document is disposed.</exception>
    public bool Undo() => _undo();

    /// <summary>Redoes the latest undone edit; <see langword="false"/> when there is nothing to redo. A new edit of the user clears the redo steps.</summary>
    /// <exception cref="ObjectDisposedException">The manager or the document is disposed.</exception>
    public bool Redo() => _redo();

    /// <summary>Starts a new undo step at the next edit even if it comes within <see cref="UndoManagerOptions.CaptureTimeout"/>.</summary>
    public void StopCapturing() => _stopCapturing();

    /// <summary>Forgets the whole history.</summary>
    public void Clear() => _clear();

    /// <summary>Stops following the document and forgets the history (the document may get a new manager).</summary>
    public void Dispose() => _dispose();

    internal static UndoHistory<TSnapshot, TOp> Create<TSnapshot, TOp>(IUndoTarget<TSnapshot, TOp> target, UndoManagerOptions? options)
        where TSnapshot : notnull
        where TOp : notnull
    {
        options ??= new UndoManagerOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.CaptureTimeout, TimeSpan.Zero, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxSteps, 1, nameof(options));
        ArgumentNullException.ThrowIfNull(options.TimeProvider, nameof(options));
        return new UndoHistory<TSnapshot, TOp>(target, options.CaptureTimeout, options.MaxSteps, options.TimeProvider);
    }
}
