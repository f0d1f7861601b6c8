namespace Collab.Engine.Sequencing;

/// <summary>Lifecycle of a <see cref="DocumentSequencer{TSnapshot, TOp}"/>. Every state but <see cref="Active"/> is final.</summary>
public enum SequencerState
{
    /// <summary>Sequencing submissions.</summary>
    Active = 0,

    /// <summary>A commit hit a version conflict: another sequencer owns the document. Submissions get <see cref="SubmitStatus.Fenced"/>.</summary>
    Fenced,

    /// <summary>Stopped by an error outside the contracts (see <see cref="DocumentSequencer{TSnapshot, TOp}.Fault"/>). Submissions get <see cref="SubmitStatus.Closed"/>.</summary>
    Faulted,

    /// <summary>Closing or closed by DisposeAsync/CloseAsync. Submissions get <see cref="SubmitStatus.Closed"/>.</summary>
    Disposed,
}
