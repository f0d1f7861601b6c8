namespace Collab.Engine.Sequencing;

/// <summary>
/// A sequenced op as it is made durable and broadcast: encoded once by the sequencer, and the
/// same bytes go to the op log and (wrapped in a frame) to every subscriber.
/// <see cref="Version"/> is the document version after applying the op: the first op of a
/// document has version 1, and a document "at version v" has had ops 1..v applied.
/// </summary>
public readonly record struct OpRecord(
    string DocId,
    long Version,
    string ClientId,
    long ClientSeq,
    string? Author,
    ReadOnlyMemory<byte> Op,
    long TimestampMs);

/// <summary>A stored snapshot: the text at <see cref="Version"/> plus the sequencer's dedupe state (opaque bytes).</summary>
public sealed record SnapshotRecord(string DocId, long Version, string Text, ReadOnlyMemory<byte> Meta, long TimestampMs);

/// <summary>
/// Where one op's time went inside the sequencer (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/> values): received by
/// the caller, sequenced (transformed, applied and handed to the durability stage), committed (the durability stage
/// completed it). All 0 for an op submitted without <see cref="Submission{TOp}.ReceivedTimestamp"/>.
/// </summary>
public readonly record struct OpTimestamps(long Received, long Sequenced, long Committed)
{
    /// <summary>True when the op was stamped.</summary>
    public bool IsSet => Received != 0;
}
