namespace Collab.Engine.Sequencing;

/// <summary>Outcome of <see cref="DocumentSequencer{TSnapshot, TOp}.SubmitAsync"/>. Mapped one-to-one onto wire codes by the server.</summary>
public enum SubmitStatus : byte
{
    /// <summary>Sequenced at <see cref="SubmitResult.Version"/> and durably committed.</summary>
    Acked = 0,

    /// <summary>This (client id, client seq) was sequenced before, at <see cref="SubmitResult.Version"/> (committed); it was not applied again.</summary>
    Duplicate,

    /// <summary>The op is malformed or the submission's fields are invalid. Not retryable: the client's state is wrong.</summary>
    InvalidOp,

    /// <summary>After transformation the op does not fit the document (wrong length). Not retryable.</summary>
    OpDoesNotFit,

    /// <summary>The base version is newer than the document. Not retryable: the client must resync.</summary>
    VersionFromFuture,

    /// <summary>The ops between the base version and now are no longer available. Not retryable: the client must resync.</summary>
    VersionTooOld,

    /// <summary>Too many submissions are pending for this document. Retry after a delay.</summary>
    Overloaded,

    /// <summary>Another sequencer owns the document (a commit hit a version conflict). Retry: the server reloads the document.</summary>
    Fenced,

    /// <summary>The sequencer was closed (disposed or faulted) before the op was acknowledged. Retry: the op is deduplicated if it was in fact committed.</summary>
    Closed,

    /// <summary>
    /// Not produced by this sequencer any more (a lower seq is looked up in the history instead: see
    /// <see cref="AlreadyCommitted"/>); kept because the value travels between cluster nodes of different versions.
    /// Not retryable.
    /// </summary>
    SeqAlreadyUsed,

    /// <summary>The op would grow the document past <see cref="SequencerOptions.MaxDocumentLength"/>. Not retryable.</summary>
    DocTooLarge,

    /// <summary>
    /// The sequencer no longer remembers this client (evicted from the dedupe state), the op's base version is old enough
    /// that it may already have been sequenced, and the op log no longer holds the ops after it to tell. It cannot be applied
    /// safely. Not retryable: the client must resync (reload the document and look for its op in the history).
    /// </summary>
    DedupeExpired,

    /// <summary>The history needed to transform or look up the op could not be read (storage error). Retry after a delay.</summary>
    Unavailable,

    /// <summary>
    /// This client had a later seq sequenced, and the ops after this submission's base version are no longer in the op log
    /// (pruned), so the op cannot be found there: it was committed earlier, at a version that is no longer known. The op is
    /// part of the document; it must not be applied again. Not retryable, and not a rejection: the client treats its op as
    /// acknowledged (docs/PROTOCOL.md, error ALREADY_COMMITTED).
    /// </summary>
    AlreadyCommitted,
}

/// <summary>Outcome of one submission: status, the op's version when it was sequenced, and a human-readable reason otherwise.</summary>
public readonly struct SubmitResult : IEquatable<SubmitResult>
{
    internal SubmitResult(SubmitStatus status, long version, string? message)
    {
        Status = status;
        Version = version;
        Message = message;
    }

    /// <summary>What became of the submission.</summary>
    public SubmitStatus Status { get; }

    /// <summary>For <see cref="SubmitStatus.Acked"/> and <see cref="SubmitStatus.Duplicate"/>: the op's version. Otherwise the document's committed version when the submission was rejected (a hint), or 0.</summary>
    public long Version { get; }

    /// <summary>Why the submission was rejected; null when it succeeded.</summary>
    public string? Message { get; }

    /// <summary>The op is (now or earlier) durably part of the document.</summary>
    public bool IsSuccess => Status is SubmitStatus.Acked or SubmitStatus.Duplicate;

    /// <summary>Sending the same submission again later can succeed.</summary>
    public bool IsRetryable => Status is SubmitStatus.Overloaded or SubmitStatus.Fenced or SubmitStatus.Closed or SubmitStatus.Unavailable;

    internal static SubmitResult Acked(long version) => new(SubmitStatus.Acked, version, null);

    internal static SubmitResult Duplicate(long version) => new(SubmitStatus.Duplicate, version, null);

    internal static SubmitResult Error(SubmitStatus status, long version, string message) => new(status, version, message);

    /// <inheritdoc />
    public bool Equals(SubmitResult other) => Status == other.Status && Version == other.Version && Message == other.Message;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is SubmitResult other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Status, Version, Message);

    /// <summary>Whether <paramref name="left"/> and <paramref name="right"/> are equal.</summary>
    public static bool operator ==(SubmitResult left, SubmitResult right) => left.Equals(right);

    /// <summary>Whether <paramref name="left"/> and <paramref name="right"/> differ.</summary>
    public static bool operator !=(SubmitResult left, SubmitResult right) => !left.Equals(right);

    /// <inheritdoc />
    public override string ToString() => Message is null ? $"{Status} v{Version}" : $"{Status} v{Version}: {Message}";
}
