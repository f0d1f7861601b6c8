using System.Buffers;

namespace Collab.Engine;

/// <summary>
/// Which side of a concurrent edit an op is on when both insert at one position.
/// Convention (ShareDB's, used by server and every client): a submitted op is transformed
/// with <see cref="Left"/> against each already-sequenced op (its insert lands before an insert
/// the sequencer already holds at the same position), and a client transforms an incoming
/// sequenced op with <see cref="Right"/> against its own pending ops. Both sides agree, so all
/// replicas converge (docs/OT.md).
/// </summary>
public enum TransformSide : byte
{
    /// <summary>The side whose insert goes first at a tie: the op being sequenced, against ops already sequenced.</summary>
    Left = 0,

    /// <summary>The side whose insert goes second at a tie: a client's pending ops, against an incoming sequenced op.</summary>
    Right = 1,
}

/// <summary>
/// An operational-transformation type, the seam that lets the sequencer stay generic
/// (like ShareDB's type registry). Implementations must be pure and thread-safe:
/// snapshots are immutable values, Apply returns a new snapshot and leaves its input untouched.
/// Every method that rejects input throws <see cref="OtException"/> with a typed code.
/// </summary>
public interface IOtType<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    /// <summary>Stable name on the wire and in storage, e.g. "text-unicode".</summary>
    string Name { get; }

    /// <summary>The empty document (version 0).</summary>
    TSnapshot Empty { get; }

    /// <summary>Checks that <paramref name="op"/> is well-formed and fits <paramref name="snapshot"/>; throws <see cref="OtException"/> otherwise.</summary>
    void Validate(TOp op, TSnapshot snapshot);

    /// <summary>Applies a validated op; throws <see cref="OtException"/> if it does not fit.</summary>
    TSnapshot Apply(TSnapshot snapshot, TOp op);

    /// <summary>Transforms <paramref name="op"/> so it applies after <paramref name="other"/> (both against one base).</summary>
    TOp Transform(TOp op, TOp other, TransformSide side);

    /// <summary>One op with the effect of <paramref name="first"/> then <paramref name="second"/>.</summary>
    TOp Compose(TOp first, TOp second);

    /// <summary>True when the op changes nothing.</summary>
    bool IsNoop(TOp op);

    /// <summary>
    /// Moves a cursor position (in the type's units, as <see cref="LengthOf"/>) through an op. <paramref name="isOwnOp"/>:
    /// the op was made by the cursor's owner (cursor goes after its own insert).
    /// </summary>
    int TransformCursor(int cursor, TOp op, bool isOwnOp);

    /// <summary>Approximate in-memory/encoded size in bytes, for bounding the history window.</summary>
    int SizeOf(TOp op);

    /// <summary>Length of the snapshot in the type's own units (code points for text-unicode, UTF-16 units for rich-text).</summary>
    long LengthOf(TSnapshot snapshot);

    /// <summary>Compact binary encoding, used on the wire and in the op log.</summary>
    void Encode(TOp op, IBufferWriter<byte> output);

    /// <summary>Decodes <see cref="Encode"/>'s output; throws <see cref="OtException"/> (Malformed) on bad bytes without allocating unboundedly.</summary>
    TOp Decode(ReadOnlySpan<byte> input);

    /// <summary>
    /// The snapshot serialized as a string, for snapshots on the wire and in storage (single pass): the plain text for
    /// text-unicode, the document's Delta ops as JSON for rich-text (what Quill's <c>setContents</c> takes).
    /// </summary>
    string ToText(TSnapshot snapshot);

    /// <summary>Builds a snapshot from <see cref="ToText"/>'s output; throws <see cref="OtException"/> for a string that is not one.</summary>
    TSnapshot FromText(string text);
}
