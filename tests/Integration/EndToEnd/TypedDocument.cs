using System.Buffers;
using Collab.Engine.RichText;
using Collab.Engine.Text;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>
/// One OT type as a raw protobuf client sees it, so one test runs over every type the server hosts: the ops it makes,
/// how it applies sequenced ops, and how it reads a <see cref="Snapshot"/> (text for text-unicode, the encoded
/// insert-only op in <see cref="Snapshot.Content"/> for rich-text, decision P6). Documents are compared by their
/// canonical form (the text; the Delta JSON).
/// </summary>
public abstract class TypedDocument
{
    public static readonly TypedDocument Text = new TextDocument();

    public static readonly TypedDocument Rich = new RichDocumentType();

    public abstract string Name { get; }

    public abstract TypedDocument Other { get; }

    /// <summary>The empty document, in canonical form.</summary>
    public string Empty => Canonical(EmptyState);

    public static TypedDocument Of(string name) => name == Text.Name ? Text : Rich;

    /// <summary>A varied op number <paramref name="i"/> on a document of <paramref name="length"/> units (inserts, formats or deletes).</summary>
    public abstract ByteString MakeOp(int i, int length);

    /// <summary>The document after <paramref name="op"/>.</summary>
    public abstract object Apply(object document, ByteString op);

    public abstract object EmptyState { get; }

    public abstract int Length(object document);

    public abstract string Canonical(object document);

    /// <summary>The document a snapshot carries; asserts it is of this type and uses only its own field.</summary>
    public abstract object FromSnapshot(Snapshot snapshot);

    /// <summary>Applies <paramref name="ops"/> (in order) to <paramref name="document"/>.</summary>
    public object ApplyAll(object document, IEnumerable<SequencedOp> ops)
    {
        foreach (SequencedOp op in ops)
        {
            document = Apply(document, op.Op);
        }

        return document;
    }

    public override string ToString() => Name;

    private sealed class TextDocument : TypedDocument
    {
        public override string Name => TextType.TypeName;

        public override TypedDocument Other => Rich;

        public override object EmptyState => Rope.Empty;

        public override ByteString MakeOp(int i, int length)
        {
            TextOp op = (i % 3 == 2 && length > 2) ? TextOp.Delete(1, 1) : TextOp.Insert(length / 2, $"t{i}😀");
            var buffer = new ArrayBufferWriter<byte>();
            TextOpCodec.Encode(op, buffer);
            return ByteString.CopyFrom(buffer.WrittenSpan);
        }

        public override object Apply(object document, ByteString op) => TextType.Apply((Rope)document, TextOpCodec.Decode(op.Span));

        public override int Length(object document) => (int)((Rope)document).Length;

        public override string Canonical(object document) => ((Rope)document).ToString();

        public override object FromSnapshot(Snapshot snapshot)
        {
            Assert.Equal(Name, snapshot.Type);
            Assert.True(snapshot.Content.IsEmpty);
            return Rope.FromString(snapshot.Text);
        }
    }

    private sealed class RichDocumentType : TypedDocument
    {
        public override string Name => RichTextType.TypeName;

        public override TypedDocument Other => Text;

        public override object EmptyState => RichDocument.Empty;

        public override ByteString MakeOp(int i, int length)
        {
            RichOp op = (i % 4) switch
            {
                0 => RichOp.Insert(length / 2, $"r{i}😀", AttributeMap.Of("bold", true)),
                1 when length > 0 => RichOp.Format(0, length, AttributeMap.Of("italic", true)),
                2 when length > 2 => RichOp.Delete(1, 1),
                3 when length > 1 => RichOp.Create(RichComponent.Retain(length / 2), RichComponent.Insert(new RichEmbed("image", "https://example.com/" + i + ".png"))),
                3 => RichOp.Create(RichComponent.Insert(new RichEmbed("image", "https://example.com/" + i + ".png"))),
                _ => RichOp.Insert(0, "\n", AttributeMap.Of("header", 1)),
            };

            return ByteString.CopyFrom(RichOpCodec.Encode(op));
        }

        public override object Apply(object document, ByteString op) => RichTextType.Apply((RichDocument)document, RichOpCodec.Decode(op.Span));

        public override int Length(object document) => ((RichDocument)document).Length;

        public override string Canonical(object document) => ((RichDocument)document).ToString();

        public override object FromSnapshot(Snapshot snapshot)
        {
            Assert.Equal(Name, snapshot.Type);
            Assert.Equal(string.Empty, snapshot.Text);
            return snapshot.Content.IsEmpty ? RichDocument.Empty : RichDocument.FromOp(RichOpCodec.Decode(snapshot.Content.Span));
        }
    }
}
