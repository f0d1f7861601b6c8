using System.Buffers;
using Collab.Engine;
using Collab.Engine.RichText;
using Collab.Engine.Sequencing;
using Collab.Engine.Text;
using Collab.Protocol.V1;
using Collab.Server.Storage;
using Google.Protobuf;

namespace Collab.Server.Sessions;

/// <summary>
/// An OT type this server hosts documents of (decision P6: a document's type is fixed when it is created), with what the
/// server needs of it beyond <see cref="IOtType{TSnapshot, TOp}"/>: how a client's op is decoded and checked against the
/// announced limits, and how a snapshot travels in <see cref="Snapshot"/>. Everything else (sequencing, history window,
/// dedupe, storage, replication, presence) is the one generic code path, instantiated per type.
/// </summary>
internal abstract class DocumentKind
{
    /// <summary>The type's name on the wire and in the documents catalogue.</summary>
    public abstract string Name { get; }

    /// <summary>Opens a document of this type from what the store holds (null: nothing yet); see <see cref="DocumentRegistry"/>.</summary>
    internal abstract DocumentHub Open(DocumentRegistry registry, string docId, DocumentLoad? load, IDocumentReplication? replication);

    /// <summary>Rebuilds a document outside any hub (the HTTP API's reads): from a stored snapshot's text (null: empty), then ops.</summary>
    public abstract DocumentReplay Replay(string? snapshotText);
}

/// <summary>A document being rebuilt from stored ops; <see cref="ToText"/> is the type's stored form (the text; the Delta JSON).</summary>
internal abstract class DocumentReplay
{
    /// <summary>Applies a stored op (its binary encoding); throws <see cref="OtException"/> when it does not decode or fit.</summary>
    public abstract void Apply(ReadOnlySpan<byte> op);

    public abstract string ToText();
}

/// <inheritdoc cref="DocumentKind"/>
internal abstract class DocumentKind<TSnapshot, TOp> : DocumentKind
    where TSnapshot : notnull
    where TOp : notnull
{
    public abstract IOtType<TSnapshot, TOp> Type { get; }

    public override string Name => Type.Name;

    /// <summary>A client's op bytes as the op, checked against the type's submit limits; throws <see cref="OtException"/> with a clear message.</summary>
    public abstract TOp DecodeSubmission(ReadOnlySpan<byte> bytes);

    /// <summary>How much <paramref name="op"/> changes the document's length (target − base, in the type's units).</summary>
    public abstract long LengthChange(TOp op);

    /// <summary>The snapshot message for <paramref name="snapshot"/> at <paramref name="version"/>.</summary>
    public abstract Snapshot ToMessage(string docId, long version, TSnapshot snapshot);

    /// <summary>The op's binary encoding (forwarding to the owner, the HTTP API's writes).</summary>
    public ByteString Encode(TOp op)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        Type.Encode(op, buffer);
        return UnsafeByteOperations.UnsafeWrap(buffer.WrittenMemory);
    }

    public override DocumentReplay Replay(string? snapshotText) => new TypedReplay<TSnapshot, TOp>(Type, snapshotText is null ? Type.Empty : Type.FromText(snapshotText));

    internal override DocumentHub Open(DocumentRegistry registry, string docId, DocumentLoad? load, IDocumentReplication? replication)
    {
        DocumentState<TSnapshot, TOp> state = load is null
            ? DocumentState.Empty(Type, registry.SequencerOptions)
            : DocumentState.Load(Type, load.Snapshot, load.Ops, registry.SequencerOptions);
        var hub = new DocumentHub<TSnapshot, TOp>(registry, this, docId, load?.Snapshot?.Version ?? 0, replication);
        hub.Attach(new DocumentSequencer<TSnapshot, TOp>(
            docId, Type, state, replication?.Stage ?? registry.Stage, registry.History, hub, registry.SequencerOptions, registry.Time));
        return hub;
    }
}

/// <summary>The replay of one type: the snapshot as the type holds it.</summary>
internal sealed class TypedReplay<TSnapshot, TOp>(IOtType<TSnapshot, TOp> type, TSnapshot start) : DocumentReplay
    where TSnapshot : notnull
    where TOp : notnull
{
    public TSnapshot Document { get; private set; } = start;

    public override void Apply(ReadOnlySpan<byte> op) => Document = type.Apply(Document, type.Decode(op));

    public override string ToText() => type.ToText(Document);
}

/// <summary>ShareDB's <c>text-unicode</c>: plain text, positions in code points, the snapshot's text in <see cref="Snapshot.Text"/>.</summary>
internal sealed class TextDocumentKind : DocumentKind<Rope, TextOp>
{
    public static TextDocumentKind Instance { get; } = new();

    public override IOtType<Rope, TextOp> Type => TextType.Instance;

    public override TextOp DecodeSubmission(ReadOnlySpan<byte> bytes) => TextOpCodec.Decode(bytes);

    public override long LengthChange(TextOp op) => op.TargetLength - op.BaseLength;

    public override Snapshot ToMessage(string docId, long version, Rope snapshot) =>
        new() { DocId = docId, Version = version, Type = TextType.TypeName, Text = snapshot.ToString() };
}

/// <summary>
/// <c>rich-text</c> (Quill Delta): positions in UTF-16 units with an embed counting 1; the snapshot travels as one
/// insert-only op in the type's binary encoding in <see cref="Snapshot.Content"/> (docs/OT.md §20), and a client's op
/// must keep the limits of <see cref="RichTextOptions"/> (attribute count, name and value size, embed size and type).
/// </summary>
internal sealed class RichDocumentKind(RichTextOptions options) : DocumentKind<RichDocument, RichOp>
{
    private readonly RichTextType _type = new(options);

    public override IOtType<RichDocument, RichOp> Type => _type;

    public override RichOp DecodeSubmission(ReadOnlySpan<byte> bytes) => _type.DecodeSubmission(bytes);

    /// <summary>Enforces the submit limits on an op that did not come as bytes (the HTTP API's JSON).</summary>
    public void ValidateLimits(RichOp op) => _type.ValidateLimits(op);

    public override long LengthChange(RichOp op) => op.TargetLength - op.BaseLength;

    public override Snapshot ToMessage(string docId, long version, RichDocument snapshot) =>
        new() { DocId = docId, Version = version, Type = RichTextType.TypeName, Content = UnsafeByteOperations.UnsafeWrap(RichOpCodec.Encode(snapshot.ToOp())) };
}

/// <summary>The types this node hosts, by name (<see cref="DocumentTypes"/> lists the names).</summary>
internal sealed class DocumentKinds(RichTextOptions richText)
{
    public DocumentKinds()
        : this(new RichTextOptions())
    {
    }

    public static TextDocumentKind Text => TextDocumentKind.Instance;

    public RichDocumentKind Rich { get; } = new(richText);

    /// <summary>The kind named <paramref name="name"/> ("" is <c>text-unicode</c>); null for a type this server does not host.</summary>
    public DocumentKind? Find(string? name) => name switch
    {
        null or "" or DocumentTypes.TextUnicode => Text,
        DocumentTypes.RichText => Rich,
        _ => null,
    };
}
