using Collab.Engine.RichText;
using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Tests.Security.Infrastructure;
using Google.Protobuf;

namespace Collab.Server.Tests.Sessions;

/// <summary>
/// Rich-text documents over the real session layer (decision P6, issue 17): the type fixed at creation, the checks a
/// client's rich op passes before it is sequenced (each limit refused with INVALID_OP and a message naming it, nothing
/// sequenced), and presence in UTF-16 units.
/// </summary>
public sealed class RichDocumentSessionTests : IAsyncLifetime
{
    private SessionHarness _harness = null!;

    public async Task InitializeAsync() => _harness = await SessionHarness.StartAsync(
        auth: a => a.Mode = AuthMode.Anonymous,
        documents: d =>
        {
            d.RichTextMaxAttributes = 3;
            d.RichTextMaxAttributeValueBytes = 64;
            d.RichTextMaxEmbedBytes = 256;
        });

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    public static TheoryData<string, string> RefusedOps => new()
    {
        // More attributes on one component than Documents:RichTextMaxAttributes (3).
        { "[{\"insert\":\"x\",\"attributes\":{\"bold\":true,\"italic\":true,\"underline\":true,\"strike\":true}}]", "limit is 3" },
        // An attribute value larger than Documents:RichTextMaxAttributeValueBytes (64).
        { "[{\"insert\":\"x\",\"attributes\":{\"link\":\"https://example.com/" + new string('a', 80) + "\"}}]", "more than 64 bytes" },
        // An embed larger than Documents:RichTextMaxEmbedBytes (256).
        { "[{\"insert\":{\"image\":\"data:image/png;base64," + new string('A', 400) + "\"}}]", "more than 256 bytes" },
        // An embed type Quill does not have.
        { "[{\"insert\":{\"iframe\":\"https://evil.example\"}}]", "embed type 'iframe' is not allowed" },
    };

    [Theory]
    [MemberData(nameof(RefusedOps))]
    public async Task A_rich_op_past_a_limit_is_refused_with_invalid_op_and_a_clear_message_and_nothing_is_sequenced(string delta, string expected)
    {
        string docId = "rich/limits/" + Math.Abs(delta.GetHashCode(StringComparison.Ordinal));
        FakeConnection client = await SubscribeAsync(docId, "rich-text");

        await client.SubmitAsync(docId, 1, 0, Encode(RichOp.Parse(delta)));

        Error error = (await client.NextErrorAsync()).Error;
        Assert.Equal((ErrorCode.InvalidOp, 1ul, false), (error.Code, error.ClientSeq, error.Retryable));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        await AssertAtVersionAsync(docId, 0);
    }

    [Fact]
    public async Task An_attribute_value_of_an_unknown_kind_is_refused_as_malformed()
    {
        FakeConnection client = await SubscribeAsync("rich/kind", "rich-text");
        byte[] bytes = RichOpCodec.Encode(RichOp.Insert(0, "x", AttributeMap.Of("bold", true)));
        Assert.Equal(0x10, bytes[^1]); // the value's header: literal (type 0) number 2, true
        bytes[^1] = 0x06; // value type 6 is reserved

        await client.SubmitAsync("rich/kind", 1, 0, ByteString.CopyFrom(bytes));

        Error error = (await client.NextErrorAsync()).Error;
        Assert.Equal(ErrorCode.InvalidOp, error.Code);
        Assert.Contains("reserved value type", error.Message, StringComparison.Ordinal);
        await AssertAtVersionAsync("rich/kind", 0);
    }

    [Fact]
    public async Task An_op_that_would_split_a_surrogate_pair_is_refused_and_one_at_its_boundary_is_sequenced()
    {
        FakeConnection client = await SubscribeAsync("rich/pair", "rich-text");
        await client.SubmitAsync("rich/pair", 1, 0, Encode(RichOp.Insert(0, "a😀b")));
        Assert.Equal(1, (await client.NextAsync(m => m.Ack is not null)).Ack.Version);

        // Position 2 is between the two halves of U+1F600 (UTF-16 units: a, high, low, b).
        await client.SubmitAsync("rich/pair", 2, 1, Encode(RichOp.Delete(2, 1)));
        Error error = (await client.NextErrorAsync()).Error;
        Assert.Equal((ErrorCode.InvalidOp, 2ul), (error.Code, error.ClientSeq));
        Assert.Contains("surrogate", error.Message, StringComparison.OrdinalIgnoreCase);

        await client.SubmitAsync("rich/pair", 3, 1, Encode(RichOp.Delete(1, 2)));
        Assert.Equal(2, (await client.NextAsync(m => m.Ack is { ClientSeq: 3 })).Ack.Version);
        Snapshot snapshot = await SnapshotAsync("rich/pair");
        Assert.Equal("""[{"insert":"ab"}]""", RichJson.Write(RichOpCodec.Decode(snapshot.Content.Span)));
    }

    [Fact]
    public async Task The_type_is_fixed_at_creation_an_empty_type_takes_it_another_is_a_mismatch_and_an_unknown_one_is_refused()
    {
        FakeConnection creator = await SubscribeAsync("rich/fixed", "rich-text");
        await creator.SubmitAsync("rich/fixed", 1, 0, Encode(RichOp.Insert(0, "hi", AttributeMap.Of("bold", true))));
        await creator.NextAsync(m => m.Ack is not null);

        Snapshot any = await SnapshotAsync("rich/fixed", type: "");
        Assert.Equal(("rich-text", "", 1L), (any.Type, any.Text, any.Version));
        Assert.Equal("""[{"insert":"hi","attributes":{"bold":true}}]""", RichJson.Write(RichOpCodec.Decode(any.Content.Span)));

        FakeConnection text = await _harness.OpenAsync(SessionPrincipal.Anonymous);
        await text.SendAsync(new ClientMessage { RequestId = 5, Subscribe = new Subscribe { DocId = "rich/fixed", Snapshot = true, Type = "text-unicode" } });
        Error mismatch = (await text.NextErrorAsync()).Error;
        Assert.Equal((ErrorCode.TypeMismatch, false, "rich/fixed"), (mismatch.Code, mismatch.Retryable, mismatch.DocId));

        await text.SendAsync(new ClientMessage { RequestId = 6, Subscribe = new Subscribe { DocId = "rich/other", Snapshot = true, Type = "json0" } });
        Error unknown = (await text.NextErrorAsync()).Error;
        Assert.Equal(ErrorCode.BadMessage, unknown.Code);
        Assert.Contains("json0", unknown.Message, StringComparison.Ordinal);

        // A text document created with an empty type is text-unicode, and refuses rich-text.
        Snapshot plain = await SnapshotAsync("rich/plain", type: "");
        Assert.Equal("text-unicode", plain.Type);
        await text.SendAsync(new ClientMessage { RequestId = 8, Subscribe = new Subscribe { DocId = "rich/plain", Snapshot = true, Type = "rich-text" } });
        Assert.Equal(ErrorCode.TypeMismatch, (await text.NextErrorAsync()).Error.Code);
    }

    [Fact]
    public async Task Presence_on_a_rich_document_counts_utf16_units_clamps_to_them_and_moves_through_ops()
    {
        FakeConnection writer = await SubscribeAsync("rich/presence", "rich-text");
        FakeConnection watcher = await SubscribeAsync("rich/presence", "rich-text");
        await writer.SubmitAsync("rich/presence", 1, 0, Encode(RichOp.Insert(0, "😀😀x")));
        await writer.NextAsync(m => m.Ack is not null);

        // 5 UTF-16 units (a code-point count would say 3): an end past it is clamped to 5.
        await writer.SendAsync(new ClientMessage { Presence = new PresenceUpdate { DocId = "rich/presence", BaseVersion = 1, Selection = new Selection { Anchor = 4, Head = 99 } } });
        ServerMessage shown = await watcher.NextAsync(m => m.Presence is { Selection: not null });
        Assert.Equal((4L, 5L), (shown.Presence.Selection.Anchor, shown.Presence.Selection.Head));

        // An embed inserted at 0 moves both ends by one unit.
        await watcher.SubmitAsync("rich/presence", 1, 1, Encode(RichOp.Create(RichComponent.Insert(new RichEmbed("image", "https://example.com/a.png")))));
        await watcher.NextAsync(m => m.Ack is not null);
        await writer.SendAsync(new ClientMessage { Presence = new PresenceUpdate { DocId = "rich/presence", BaseVersion = 1, Selection = new Selection { Anchor = 4, Head = 5 } } });
        ServerMessage moved = await watcher.NextAsync(m => m.Presence is { Version: 2, Selection: not null });
        Assert.Equal((5L, 6L), (moved.Presence.Selection.Anchor, moved.Presence.Selection.Head));
    }

    private static ByteString Encode(RichOp op) => ByteString.CopyFrom(RichOpCodec.Encode(op));

    private async Task<FakeConnection> SubscribeAsync(string docId, string type)
    {
        FakeConnection client = await _harness.OpenAsync(SessionPrincipal.Anonymous);
        await client.SendAsync(new ClientMessage { RequestId = 3, Subscribe = new Subscribe { DocId = docId, Snapshot = true, Type = type } });
        ServerMessage answer = await client.NextAsync(m => m.RequestId == 3 && m.BodyCase is ServerMessage.BodyOneofCase.Snapshot or ServerMessage.BodyOneofCase.Error);
        Assert.Equal(type, answer.Snapshot?.Type);
        return client;
    }

    private async Task<Snapshot> SnapshotAsync(string docId, string type = "rich-text")
    {
        FakeConnection reader = await _harness.OpenAsync(SessionPrincipal.Anonymous);
        await reader.SendAsync(new ClientMessage { RequestId = 4, Subscribe = new Subscribe { DocId = docId, Snapshot = true, Type = type } });
        return (await reader.NextAsync(m => m.RequestId == 4 && m.Snapshot is not null)).Snapshot;
    }

    private async Task AssertAtVersionAsync(string docId, long version) => Assert.Equal(version, (await SnapshotAsync(docId)).Version);
}
