using Collab.Engine.RichText;
using Collab.Engine.Text;

namespace Collab.LoadTest.Client;

/// <summary>How an op is encoded on the wire.</summary>
internal enum WireOpFormat
{
    /// <summary>Collab: the protobuf <c>TextOp</c> of a <c>SequencedOp</c>.</summary>
    Protobuf,

    /// <summary>Collab, a rich-text document: the rich type's binary op encoding (docs/OT.md §20).</summary>
    RichText,

    /// <summary>ShareDB: a text-unicode op in its JSON form (<c>[5, "abcd", {"d": 2}]</c>).</summary>
    TextUnicodeJson,

    /// <summary>ShareDB: a create (<c>{"type": …, "data": "initial text"}</c>), an insert into the empty document.</summary>
    ShareDbCreate,
}

/// <summary>
/// An op as it came off the wire, undecoded: the receive path only needs its length change (and a hash of its
/// bytes); it is decoded into an Engine <see cref="TextOp"/> only for a text replica.
/// </summary>
internal readonly ref struct WireOp(ReadOnlySpan<byte> bytes, WireOpFormat format)
{
    public ReadOnlySpan<byte> Bytes { get; } = bytes;

    public WireOpFormat Format { get; } = format;

    /// <summary>No op: an acknowledgement, which carries none.</summary>
    public bool IsEmpty => Bytes.IsEmpty;

    /// <summary>Units (code points; UTF-16 units and embeds for rich-text) the op adds (positive) or removes (negative).</summary>
    public long LengthDelta() => Format switch
    {
        WireOpFormat.Protobuf => CollabWire.LengthDelta(Bytes),
        WireOpFormat.RichText => RichLengthDelta(Bytes),
        WireOpFormat.TextUnicodeJson => ShareDbWire.LengthDelta(Bytes),
        _ => ShareDbWire.CreateLength(Bytes),
    };

    private static long RichLengthDelta(ReadOnlySpan<byte> bytes)
    {
        RichOp op = RichOpCodec.Decode(bytes);
        return op.TargetLength - op.BaseLength;
    }

    /// <summary>The op as a text-unicode op (not for <see cref="WireOpFormat.RichText"/>, whose replica decodes the bytes itself).</summary>
    public TextOp Decode() => Format switch
    {
        WireOpFormat.Protobuf => TextOpCodec.Decode(Bytes),
        WireOpFormat.TextUnicodeJson => ShareDbWire.DecodeOp(Bytes),
        WireOpFormat.ShareDbCreate => ShareDbWire.DecodeCreate(Bytes),
        _ => throw new InvalidOperationException($"A {Format} op is not a text-unicode op."),
    };
}
