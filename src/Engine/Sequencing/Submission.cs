namespace Collab.Engine.Sequencing;

/// <summary>
/// One op a client asks the sequencer to apply.
/// </summary>
/// <param name="ClientId">Stable for the lifetime of the client's local state (across reconnects), unique among clients: the deduplication key.</param>
/// <param name="ClientSeq">Increases with every op the client sends (not necessarily by one); a resend after reconnect reuses the seq. Must be positive.</param>
/// <param name="BaseVersion">The document version the op was made against.</param>
/// <param name="Op">The op, decoded.</param>
/// <param name="Author">Authenticated user id recorded with the op, if any.</param>
public readonly record struct Submission<TOp>(string ClientId, long ClientSeq, long BaseVersion, TOp Op, string? Author)
    where TOp : notnull;
