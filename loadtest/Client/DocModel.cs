using System.Text;
using Collab.Engine;
using Collab.Engine.RichText;

namespace Collab.LoadTest.Client;

/// <summary>The OT type of the documents a run edits (<c>--type</c>).</summary>
internal enum DocumentKind
{
    /// <summary>text-unicode: 4-character ASCII inserts written in place, no allocation per op (the capacity figures).</summary>
    Text,

    /// <summary>rich-text (Quill Delta): formatted inserts, format retains, deletes, line formats and embeds.</summary>
    Rich,
}

/// <summary>
/// What a <see cref="LightClient"/> needs to know about its documents' OT type: the name it subscribes with, how its
/// ops travel, how long a snapshot is, its replica, and (for types other than the text fast path) the ops a writer makes.
/// One instance per type; <see cref="LightClient"/> itself is the same for every type.
/// </summary>
internal abstract class DocModel
{
    public static DocModel For(DocumentKind kind) => kind == DocumentKind.Rich ? RichModel.Instance : TextModel.Instance;

    /// <summary>Subscribe.type: the type to create a missing document with (P6); empty accepts the document's type.</summary>
    public abstract string SubscribeType { get; }

    /// <summary>How this type's ops arrive in Collab's <c>SequencedOp.op</c>.</summary>
    public abstract WireOpFormat CollabFormat { get; }

    /// <summary>The length of a snapshot in the type's units: <paramref name="text"/> (text-unicode) or <paramref name="content"/> (rich-text).</summary>
    public abstract long SnapshotLength(string text, ReadOnlySpan<byte> content);

    public abstract IReplica NewReplica();

    /// <summary>An op for a document of <paramref name="length"/> units, or null when the client writes its token insert in place (text).</summary>
    public abstract OwnOp? NewOp(ref ulong random, long length);

    /// <summary>The setup op inserting <paramref name="text"/> at the start, or null for the text fast path.</summary>
    public abstract OwnOp? InitialText(string text);

    /// <summary>xorshift64* over a client's state (positions, kinds, attributes; no crypto strength needed).</summary>
    public static ulong Next(ref ulong state)
    {
        ulong x = state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state = x;
        return x * 0x2545F4914F6CDD1DUL;
    }

    /// <summary>A number in [0, <paramref name="bound"/>).</summary>
    public static int Below(ref ulong state, long bound) => bound <= 0 ? 0 : (int)(Next(ref state) % (ulong)bound);
}

/// <summary>text-unicode: the generator's original fast path (ops are written into the send buffer by <see cref="CollabWire"/>).</summary>
internal sealed class TextModel : DocModel
{
    public static readonly TextModel Instance = new();

    // Empty: accept whatever the document is (the text scenarios ran so before Subscribe.type existed).
    public override string SubscribeType => string.Empty;

    public override WireOpFormat CollabFormat => WireOpFormat.Protobuf;

    public override long SnapshotLength(string text, ReadOnlySpan<byte> content) => CollabWire.CountCodePoints(Encoding.UTF8.GetBytes(text));

    public override IReplica NewReplica() => new TextReplica();

    public override OwnOp? NewOp(ref ulong random, long length) => null;

    public override OwnOp? InitialText(string text) => null;
}

/// <summary>
/// An op a client submitted, as the server will sequence it: made against its base version, then transformed (side Left,
/// as the sequencer does) against every op sequenced after that base as it arrives, its own earlier ops included. At its
/// ack it is exactly the op the server applied, so the client knows the document's new length without a replica.
/// </summary>
internal abstract class OwnOp(byte[] encoded)
{
    /// <summary>The op as submitted (a resend after a reconnect sends these bytes again, with the same base).</summary>
    public byte[] Encoded { get; } = encoded;

    /// <summary>Units the op adds (or removes, negative) in its current, transformed form.</summary>
    public abstract long LengthDelta { get; }

    /// <summary>Another client's op was sequenced before this one.</summary>
    public abstract void TransformAgainst(WireOp sequenced);

    /// <summary>This client's earlier op (<paramref name="earlier"/>, as sequenced) came before this one.</summary>
    public abstract void TransformAgainst(OwnOp earlier);
}

/// <summary>An own op of any Engine type; the subclass says how the type's ops come off the wire.</summary>
internal abstract class OwnOp<TSnapshot, TOp>(IOtType<TSnapshot, TOp> type, TOp op, byte[] encoded) : OwnOp(encoded)
    where TSnapshot : notnull
    where TOp : notnull
{
    public TOp Current { get; private set; } = op;

    public override void TransformAgainst(WireOp sequenced) => Current = type.Transform(Current, Decode(sequenced), TransformSide.Left);

    public override void TransformAgainst(OwnOp earlier) => Current = type.Transform(Current, ((OwnOp<TSnapshot, TOp>)earlier).Current, TransformSide.Left);

    protected abstract TOp Decode(WireOp op);
}

/// <summary>A rich-text own op.</summary>
internal sealed class RichOwnOp(RichOp op) : OwnOp<RichDocument, RichOp>(RichTextType.Default, op, RichOpCodec.Encode(op))
{
    public override long LengthDelta => Current.TargetLength - Current.BaseLength;

    protected override RichOp Decode(WireOp op) => RichOpCodec.Decode(op.Bytes);
}

/// <summary>
/// rich-text (Quill Delta, binary encoding of docs/OT.md §20): a mix of what people do in a formatted editor. Per op:
/// 45 % typing (1–8 characters, plain or bold/italic/coloured/linked), 20 % formatting a range of up to 24 units (bold,
/// italic, colour, a link, or removing bold/italic with null), 15 % deleting up to 6 units, 10 % a new line with a line
/// format (header, list, blockquote), 5 % an image embed, 5 % an inline formula embed; inserts only on an empty document.
/// </summary>
internal sealed class RichModel : DocModel
{
    public static readonly RichModel Instance = new();

    private static readonly string[] s_words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "lorem", "ipsum", "dolor", "sit"];
    private static readonly string[] s_colors = ["#e60000", "#0066cc", "#008a00", "#9933ff", "#ff9900"];
    private static readonly AttributeMap[] s_inline =
    [
        AttributeMap.Of("bold", true),
        AttributeMap.Of("italic", true),
        AttributeMap.Create(new("bold", true), new("italic", true))!,
        AttributeMap.Of("underline", true),
        AttributeMap.Of("color", s_colors[0]),
        AttributeMap.Of("color", s_colors[1]),
        AttributeMap.Create(new("color", s_colors[2]), new("bold", true))!,
        AttributeMap.Of("link", "https://example.com/docs/page"),
    ];

    private static readonly AttributeMap[] s_formats =
    [
        .. s_inline,
        AttributeMap.Of("bold", RichValue.Null),
        AttributeMap.Create(new("italic", RichValue.Null), new("underline", RichValue.Null))!,
        AttributeMap.Of("background", "#ffff00"),
    ];

    private static readonly AttributeMap[] s_lines =
    [
        AttributeMap.Of("header", 1),
        AttributeMap.Of("header", 2),
        AttributeMap.Of("list", "bullet"),
        AttributeMap.Of("list", "ordered"),
        AttributeMap.Of("blockquote", true),
    ];

    public override string SubscribeType => RichTextType.TypeName;

    public override WireOpFormat CollabFormat => WireOpFormat.RichText;

    public override long SnapshotLength(string text, ReadOnlySpan<byte> content) =>
        content.IsEmpty ? 0 : RichOpCodec.Decode(content).TargetLength;

    public override IReplica NewReplica() => new RichReplica();

    public override OwnOp? InitialText(string text) => new RichOwnOp(text.Length == 0 ? RichOp.Empty : RichOp.Insert(0, text));

    public override OwnOp NewOp(ref ulong random, long length)
    {
        int kind = length == 0 ? 0 : Below(ref random, 100);
        int position = Below(ref random, length + 1);
        int rest = (int)length - position;
        var op = new RichOpBuilder();
        try
        {
            op.Retain(position);
            if (kind < 45 || rest == 0 && kind < 80)
            {
                string word = s_words[Below(ref random, s_words.Length)];
                int count = 1 + Below(ref random, 8);
                string text = count <= word.Length ? word[..count] : word + new string(' ', count - word.Length);
                op.Insert(text, Below(ref random, 2) == 0 ? null : s_inline[Below(ref random, s_inline.Length)]);
            }
            else if (kind < 65)
            {
                op.Retain(1 + Below(ref random, Math.Min(24, rest)), s_formats[Below(ref random, s_formats.Length)]);
            }
            else if (kind < 80)
            {
                op.Delete(1 + Below(ref random, Math.Min(6, rest)));
            }
            else if (kind < 90)
            {
                op.Insert("\n", s_lines[Below(ref random, s_lines.Length)]);
            }
            else if (kind < 95)
            {
                op.Insert(new RichEmbed("image", $"https://example.com/img/{Below(ref random, 1000)}.png"), Below(ref random, 4) == 0 ? AttributeMap.Of("width", "240") : null);
            }
            else
            {
                op.Insert(new RichEmbed("formula", "e=mc^2"));
            }

            return new RichOwnOp(op.ToOp());
        }
        finally
        {
            op.Dispose();
        }
    }
}
