namespace Collab.Engine.Sequencing;

/// <summary>
/// One op a client asks the sequencer to apply.
/// </summary>
/// <param name="ClientId">Stable for the lifetime of the client's local state (across reconnects), unique among clients: the deduplication key.</param>
/// <param name="ClientSeq">Increases with every op the client sends (not necessarily by one); a resend after reconnect reuses the seq. Must be positive.</param>
/// <param name="BaseVersion">The document version the op was made against.</param>
/// <param name="Op">The op, decoded.</param>
/// <param name="Author">Authenticated user id recorded with the op, if any.</param>
/// <param name="ReceivedTimestamp">
/// When the op was received (a <see cref="System.Diagnostics.Stopwatch.GetTimestamp"/> value), or 0. When set, the sequencer
/// stamps the moments the op was sequenced and committed too and hands the three to its listener
/// (<see cref="CommittedBatch{TSnapshot, TOp}.Timestamps"/>), so the server can tell where an op's latency went.
/// </param>
public readonly record struct Submission<TOp>(string ClientId, long ClientSeq, long BaseVersion, TOp Op, string? Author, long ReceivedTimestamp = 0)
    where TOp : notnull;
