using Collab.Client.Sync;
using Collab.Engine.RichText;
using Collab.Engine.Text;
using Collab.Protocol.V1;
using CsCheck;

namespace Collab.Client.Tests;

/// <summary>
/// Rich-text documents in the C# SDK (issue 17), against the scripted server: the same sync state machine as text
/// documents, P6's Subscribe.type / Snapshot.content, presence in UTF-16 units, and TYPE_MISMATCH as a typed error.
/// </summary>
public sealed class RichDocumentTests
{
    private const string Doc = "rich-1";
    private static readonly Uri Seed = new("ws://seed.test/ws");
    private static readonly AttributeMap Bold = AttributeMap.Of("bold", RichValue.True);

    private static async Task<(FakeServer Server, CollabClient Client, FakeConnection Connection)> ConnectAsync()
    {
        var server = new FakeServer();
        Task<CollabClient> connecting = CollabClient.ConnectAsync(Seed, FakeServer.Options(server));
        (FakeConnection connection, _) = await server.AcceptAndWelcomeAsync();
        return (server, await connecting, connection);
    }

    private static async Task<(CollabClient Client, FakeConnection Connection, CollabRichDocument Document)> OpenAsync(RichDocument initial, long version = 7)
    {
        (_, CollabClient client, FakeConnection connection) = await ConnectAsync();
        Task<CollabRichDocument> opening = client.OpenRichDocumentAsync(Doc);
        Subscribe subscribe = await connection.ExpectSubscribeAsync(Doc);
        Assert.Equal(RichTextType.TypeName, subscribe.Type);
        Assert.True(subscribe.Snapshot);
        connection.SendRichSnapshot(Doc, version, initial);
        return (client, connection, await opening);
    }

    private static RichDocument Doc_(string text, AttributeMap? attributes = null) => RichDocument.FromOp(RichOp.Insert(0, text, attributes));

    [Fact]
    public async Task Open_DecodesTheSnapshotContent_AndTextDocumentsAskForTheirType()
    {
        RichDocument initial = RichDocument.FromOp(RichOp.Create(
            RichComponent.Insert("Title", Bold), RichComponent.Insert(new RichEmbed("image", RichValue.FromString("https://x/y.png"))), RichComponent.Insert("\n")));
        (CollabClient client, _, CollabRichDocument document) = await OpenAsync(initial);
        await using CollabClient owned = client;
        Assert.Equal(initial, document.Document);
        Assert.Equal(7, document.Version);
        Assert.Equal(7, document.Length);

        (_, CollabClient textClient, FakeConnection textConnection) = await ConnectAsync();
        await using CollabClient ownedText = textClient;
        Task<CollabDocument> opening = textClient.OpenDocumentAsync("plain");
        Assert.Equal(TextType.TypeName, (await textConnection.ExpectSubscribeAsync("plain")).Type);
        textConnection.SendSnapshot("plain", 1, "x");
        Assert.Equal("x", (await opening).Text);
    }

    [Fact]
    public async Task LocalEdits_AreSentInTheRichEncoding_AndRemoteOpsTransformPastThem()
    {
        (CollabClient client, FakeConnection connection, CollabRichDocument document) = await OpenAsync(Doc_("hello"));
        await using CollabClient owned = client;
        var changed = new EventRecorder<RichDocumentChangedEventArgs>();
        var acked = new EventRecorder<OpAcknowledgedEventArgs>();
        document.Changed += changed.Handler;
        document.Acknowledged += acked.Handler;

        document.Format(0, 5, Bold);
        Submit first = await connection.ExpectSubmitAsync(Doc);
        Assert.Equal(RichOp.Format(0, 5, Bold), FakeConnection.DecodeRich(first));
        Assert.Equal(7, first.BaseVersion);
        document.Insert(5, "!");    // buffered behind the op in flight
        Assert.True(document.HasPendingOps);

        // Another client inserted at the start concurrently; the server sequenced it first.
        RichOp remote = RichOp.Insert(0, "😀 ");
        connection.SendOps(Doc, FakeConnection.RichSequencedOp(8, remote));
        RichDocumentChangedEventArgs change = await changed.NextAsync();
        Assert.Equal(remote, change.Op);
        Assert.Equal("😀 hello!", document.Document.ToPlainText());
        Assert.Equal(9, document.Length);   // UTF-16 units: the emoji counts 2

        connection.SendAck(Doc, first.ClientSeq, 9);
        Assert.Equal(9, (await acked.NextAsync()).Version);
        Submit second = await connection.ExpectSubmitAsync(Doc);
        Assert.Equal(9, second.BaseVersion);
        Assert.Equal(RichOp.Insert(8, "!"), FakeConnection.DecodeRich(second));
        connection.SendAck(Doc, second.ClientSeq, 10);
        await document.WhenSyncedAsync();

        // What the server holds after the three ops equals the replica.
        RichDocument server = RichTextType.Apply(RichTextType.Apply(RichTextType.Apply(Doc_("hello"), remote),
            RichTextType.Transform(RichOp.Format(0, 5, Bold), remote, Engine.TransformSide.Left)), RichOp.Insert(8, "!"));
        Assert.Equal(server, document.Document);
    }

    [Fact]
    public async Task Presence_CountsUtf16Units()
    {
        (CollabClient client, FakeConnection connection, CollabRichDocument document) = await OpenAsync(Doc_("😀ab"));
        await using CollabClient owned = client;
        var presence = new EventRecorder<PresenceChangedEventArgs>();
        document.PresenceChanged += presence.Handler;

        document.SetPresence(2, 4);     // after the emoji (2 units) to the end (4): out of range in code points
        ClientMessage sent = await connection.ReceiveAsync(ClientMessage.BodyOneofCase.Presence);
        Assert.Equal((2L, 4L), (sent.Presence.Selection.Anchor, sent.Presence.Selection.Head));
        Assert.Throws<ArgumentOutOfRangeException>(() => document.SetPresence(5, 5));

        connection.Send(new ServerMessage { Presence = new Presence { DocId = Doc, ClientId = "other", Version = 7, Selection = new Selection { Anchor = 3, Head = 3 } } });
        Assert.Equal(3, (await presence.NextAsync()).Presence!.Anchor);

        // A remote insert of an emoji before the caret moves it by 2 units.
        connection.SendOps(Doc, FakeConnection.RichSequencedOp(8, RichOp.Insert(0, "🌍"), clientId: "third"));
        Assert.Equal(5, (await presence.NextAsync()).Presence!.Anchor);
    }

    [Fact]
    public async Task TypeMismatch_FromTheServer_IsATypedError()
    {
        (_, CollabClient client, FakeConnection connection) = await ConnectAsync();
        await using CollabClient owned = client;
        Task<CollabRichDocument> opening = client.OpenRichDocumentAsync(Doc);
        await connection.ExpectSubscribeAsync(Doc);
        connection.SendError(ErrorCode.TypeMismatch, retryable: false, Doc, requestId: connection.LastRequestId);
        CollabTypeMismatchException error = await Assert.ThrowsAsync<CollabTypeMismatchException>(() => opening);
        Assert.Equal((Doc, RichTextType.TypeName, null), (error.DocId, error.RequestedType, error.ActualType));

        // The document is not left open: it can be opened again, here as what it is.
        Task<CollabDocument> reopening = client.OpenDocumentAsync(Doc);
        await connection.ExpectSubscribeAsync(Doc);
        connection.SendSnapshot(Doc, 1, "plain");
        Assert.Equal("plain", (await reopening).Text);
    }

    [Fact]
    public async Task ASnapshotOfAnotherType_IsRefusedWithTheTypeItHas()
    {
        (_, CollabClient client, FakeConnection connection) = await ConnectAsync();
        await using CollabClient owned = client;
        Task<CollabDocument> opening = client.OpenDocumentAsync(Doc);
        await connection.ExpectSubscribeAsync(Doc);
        connection.SendRichSnapshot(Doc, 3, Doc_("rich"));
        CollabTypeMismatchException error = await Assert.ThrowsAsync<CollabTypeMismatchException>(() => opening);
        Assert.Equal((TextType.TypeName, RichTextType.TypeName), (error.RequestedType, error.ActualType));
    }

    [Fact]
    public async Task RejectedSubmit_ResyncsTheRichDocument_KeepingTheBufferedEdit()
    {
        (CollabClient client, FakeConnection connection, CollabRichDocument document) = await OpenAsync(Doc_("hello"));
        await using CollabClient owned = client;
        document.Insert(0, "X");
        Submit first = await connection.ExpectSubmitAsync(Doc);
        document.Format(1, 5, Bold);   // buffered: bold "hello"

        connection.SendError(ErrorCode.InvalidOp, retryable: false, Doc, first.ClientSeq);
        Assert.True((await connection.ExpectSubscribeAsync(Doc)).Snapshot);
        connection.SendRichSnapshot(Doc, 9, Doc_("hello world"));

        // X is dropped; the bold survives the rebase onto the server's new text.
        Submit rebased = await connection.ExpectSubmitAsync(Doc);
        Assert.Equal(9, rebased.BaseVersion);
        Assert.Equal(RichOp.Format(0, 5, Bold), FakeConnection.DecodeRich(rebased));
        Assert.Equal(RichDocument.FromOp(RichOp.Create(RichComponent.Insert("hello", Bold), RichComponent.Insert(" world"))), document.Document);
    }

    [Fact]
    public void RichDiff_TurnsAnyDocumentIntoAnyOther()
    {
        string[] pieces = ["a", "b", "ab", "😀", "\n", "xyz"];
        AttributeMap?[] formats = [null, Bold, AttributeMap.Of("color", RichValue.FromString("red"))];
        Gen<RichDocument> documents = Gen.Select(Gen.Int[0, pieces.Length], Gen.Int[0, formats.Length - 1]).Array[0, 8].Select(parts =>
        {
            var components = parts.Select(p => p.Item1 == pieces.Length
                ? RichComponent.Insert(new RichEmbed("image", RichValue.FromString("i")), formats[p.Item2])
                : RichComponent.Insert(pieces[p.Item1], formats[p.Item2])).ToArray();
            return components.Length == 0 ? RichDocument.Empty : RichDocument.FromOp(RichOp.Create(components));
        });

        Gen.Select(documents, documents).Sample((before, after) =>
        {
            RichOp diff = RichDiff.Between(before, after);
            RichTextType.Validate(diff, before);
            Assert.Equal(after, RichTextType.Apply(before, diff));
            Assert.Equal(before.Equals(after), diff.IsNoop);
        }, iter: 3000);
    }
}
