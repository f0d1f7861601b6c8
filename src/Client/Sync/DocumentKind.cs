using System.Buffers;
using Collab.Engine;
using Collab.Engine.Text;
using Collab.Protocol.V1;

namespace Collab.Client.Sync;

/// <summary>
/// What the document sync state machine needs of an OT type beyond <see cref="IOtType{TSnapshot, TOp}"/>: the undo
/// inverse, the wire encodings of ops and snapshots, and a diff to rebase local edits onto a snapshot whose history is
/// unknown (docs/PROTOCOL.md section 7.3). One instance per type; the state machine (<see cref="DocumentSync{TSnapshot, TOp}"/>)
/// is written once against this.
/// </summary>
internal abstract class DocumentKind<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    /// <summary>The type's name on the wire (Subscribe.type, Snapshot.type).</summary>
    public abstract string TypeName { get; }

    /// <summary>The type's algorithms, for <see cref="Collab.Engine.Client.OtClientState{TSnapshot, TOp}"/>.</summary>
    public abstract IOtType<TSnapshot, TOp> Type { get; }

    /// <summary>The op that changes nothing.</summary>
    public abstract TOp EmptyOp { get; }

    public bool IsNoop(TOp op) => Type.IsNoop(op);

    public void Validate(TOp op, TSnapshot snapshot) => Type.Validate(op, snapshot);

    public TSnapshot Apply(TSnapshot snapshot, TOp op) => Type.Apply(snapshot, op);

    public TOp Transform(TOp op, TOp other, TransformSide side) => Type.Transform(op, other, side);

    public TOp Compose(TOp first, TOp second) => Type.Compose(first, second);

    public int TransformCursor(int cursor, TOp op, bool isOwnOp) => Type.TransformCursor(cursor, op, isOwnOp);

    /// <summary>The snapshot's length in the type's units (code points for text, UTF-16 units for rich text).</summary>
    public int Length(TSnapshot snapshot) => (int)Type.LengthOf(snapshot);

    public void Encode(TOp op, IBufferWriter<byte> output) => Type.Encode(op, output);

    public TOp Decode(ReadOnlySpan<byte> bytes) => Type.Decode(bytes);

    /// <summary>The op that undoes <paramref name="op"/> applied to <paramref name="before"/>.</summary>
    public abstract TOp Invert(TOp op, TSnapshot before);

    /// <summary>Bytes of the op's wire encoding (checked against the server's <c>max_op_bytes</c>).</summary>
    public abstract int GetEncodedLength(TOp op);

    /// <summary>The document a Snapshot message carries; throws <see cref="OtException"/> when its content does not decode.</summary>
    public abstract TSnapshot ReadSnapshot(Snapshot snapshot);

    /// <summary>
    /// An op turning <paramref name="before"/> into <paramref name="after"/>: the common prefix and suffix kept, the middle
    /// replaced. Not minimal, but exact, which is all a rebase needs.
    /// </summary>
    public abstract TOp Diff(TSnapshot before, TSnapshot after);
}

/// <summary>The <c>text-unicode</c> type: ropes of code points.</summary>
internal sealed class TextKind : DocumentKind<Rope, TextOp>
{
    public static TextKind Instance { get; } = new();

    public override string TypeName => TextType.TypeName;

    public override IOtType<Rope, TextOp> Type => TextType.Instance;

    public override TextOp EmptyOp => TextOp.Empty;

    public override TextOp Invert(TextOp op, Rope before) => TextType.Invert(op, before);

    public override int GetEncodedLength(TextOp op) => TextOpCodec.GetEncodedLength(op);

    public override Rope ReadSnapshot(Snapshot snapshot) => Rope.FromString(snapshot.Text);

    public override TextOp Diff(Rope before, Rope after) => TextDiff.Between(before.ToString(), after.ToString());
}
