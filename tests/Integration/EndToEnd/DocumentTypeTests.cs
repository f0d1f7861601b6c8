using Collab.Integration.Tests.Infrastructure;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>
/// Decision P6 and issue 17 ("exactly as for text"): one scenario over both OT types and both op stores, through the real
/// server and raw protobuf clients. The type is fixed at creation by Subscribe.type and reported in Snapshot.type and
/// Subscribed.type; concurrent ops are transformed, acknowledged, broadcast and deduplicated; FetchOps returns them; a
/// restart reloads the document from the stored snapshots and op log; a client resumes with from_version; a subscribe
/// naming the other type is refused with TYPE_MISMATCH.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class DocumentTypeTests(PostgresFixture postgres)
{
    public static TheoryData<string, string> Cases => new()
    {
        { "sqlite", "text-unicode" },
        { "sqlite", "rich-text" },
        { "postgres", "text-unicode" },
        { "postgres", "rich-text" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task A_document_of_either_type_sequences_stores_reloads_resumes_and_deduplicates_alike(string store, string typeName)
    {
        TypedDocument type = TypedDocument.Of(typeName);
        var settings = new Dictionary<string, string?> { ["Storage:SnapshotEveryOps"] = "4" };
        if (store == "postgres")
        {
            settings["Storage:Provider"] = "Postgres";
            settings["Storage:PostgresConnectionString"] = await postgres.CreateDatabaseAsync();
        }

        await using InProcessServer server = await InProcessServer.StartAsync(settings: settings);
        string docId = $"types/{store}/{typeName}";
        string authorId;
        object document;
        await using (RawProtocolClient author = await RawProtocolClient.ConnectAsync(server.WebSocketUri))
        await using (RawProtocolClient other = await RawProtocolClient.ConnectAsync(server.WebSocketUri))
        {
            authorId = author.ClientId;

            // Created with the type asked for; a second subscriber that names no type gets whatever the document is.
            Snapshot created = await SubscribeSnapshotAsync(author, docId, typeName);
            Assert.Equal((0L, type.Empty), (created.Version, type.Canonical(type.FromSnapshot(created))));
            Snapshot seen = await SubscribeSnapshotAsync(other, docId, "");
            Assert.Equal(typeName, seen.Type);

            // Nine ops in sequence from the author, each on the version before it.
            document = type.EmptyState;
            var sent = new List<ByteString>();
            for (int i = 0; i < 9; i++)
            {
                ByteString op = type.MakeOp(i, type.Length(document));
                sent.Add(op);
                await SubmitAsync(author, docId, (ulong)i + 1, i, op);
                Ack ack = (await author.ReceiveAsync(ServerMessage.BodyOneofCase.Ack)).Ack;
                Assert.Equal((i + 1L, false), (ack.Version, ack.Duplicate));
                document = type.Apply(document, op);
            }

            // A resend of an op already sequenced is acknowledged as a duplicate with its original version (P1).
            await SubmitAsync(author, docId, 3, 2, sent[2]);
            Ack duplicate = (await author.ReceiveAsync(ServerMessage.BodyOneofCase.Ack)).Ack;
            Assert.Equal((3L, true), (duplicate.Version, duplicate.Duplicate));

            // The other client edits on a stale base (version 0): the server transforms it past the nine ops.
            await SubmitAsync(other, docId, 1, 0, type.MakeOp(0, 0));
            Assert.Equal(10, (await ReceiveUntilAckAsync(other)).Version);

            // FetchOps returns the ten ops; replayed they give the document the author ends with after the broadcast.
            IReadOnlyList<SequencedOp> history = await FetchAsync(author, docId, 0, 10);
            Assert.Equal(Enumerable.Range(1, 10).Select(v => (long)v), history.Select(o => o.Version));
            Assert.Equal(authorId, history[0].ClientId);
            document = type.ApplyAll(type.EmptyState, history);
        }

        // A restart reloads from the stored snapshots and op log: same document, same version, same type.
        await server.StopAsync();
        await server.StartAgainAsync();
        await using (RawProtocolClient reader = await RawProtocolClient.ConnectAsync(server.WebSocketUri))
        {
            Snapshot reloaded = await SubscribeSnapshotAsync(reader, docId, typeName);
            Assert.Equal(10, reloaded.Version);
            Assert.Equal(type.Canonical(document), type.Canonical(type.FromSnapshot(reloaded)));

            // The other type is refused, and not retryable.
            await reader.SendAsync(new ClientMessage { RequestId = 9, Subscribe = new Subscribe { DocId = docId, Snapshot = true, Type = type.Other.Name } });
            Error mismatch = (await reader.ReceiveAsync(ServerMessage.BodyOneofCase.Error)).Error;
            Assert.Equal((ErrorCode.TypeMismatch, false), (mismatch.Code, mismatch.Retryable));
            Assert.Contains(typeName, mismatch.Message, StringComparison.Ordinal);
        }

        // The author's client id resumes from version 5: Subscribed names the type, the catch-up carries its own earlier
        // ops as ops (P3), and they rebuild the document from the version-5 state.
        await using RawProtocolClient resumed = await RawProtocolClient.ConnectAsync(server.WebSocketUri, clientId: authorId);
        Assert.True(resumed.Resumed);
        await resumed.SendAsync(new ClientMessage { RequestId = 2, Subscribe = new Subscribe { DocId = docId, FromVersion = 5, Type = typeName } });
        Subscribed subscribed = (await resumed.ReceiveAsync(ServerMessage.BodyOneofCase.Subscribed)).Subscribed;
        Assert.Equal((5L, 10L, typeName), (subscribed.FromVersion, subscribed.CurrentVersion, subscribed.Type));
        var catchUp = new List<SequencedOp>();
        while (catchUp.Count < 5)
        {
            catchUp.AddRange((await resumed.ReceiveAsync(ServerMessage.BodyOneofCase.Ops)).Ops.Ops_);
        }

        IReadOnlyList<SequencedOp> first5 = await FetchAsync(resumed, docId, 0, 5);
        Assert.Equal(type.Canonical(document), type.Canonical(type.ApplyAll(type.ApplyAll(type.EmptyState, first5), catchUp)));
    }

    private static async Task<Snapshot> SubscribeSnapshotAsync(RawProtocolClient client, string docId, string type)
    {
        await client.SendAsync(new ClientMessage { RequestId = 1, Subscribe = new Subscribe { DocId = docId, Snapshot = true, Type = type } });
        ServerMessage message = await client.ReceiveAsync();
        while (message.BodyCase is not (ServerMessage.BodyOneofCase.Snapshot or ServerMessage.BodyOneofCase.Error))
        {
            message = await client.ReceiveAsync();
        }

        Assert.Null(message.Error);
        return message.Snapshot;
    }

    private static Task SubmitAsync(RawProtocolClient client, string docId, ulong seq, long baseVersion, ByteString op) =>
        client.SendAsync(new ClientMessage { Submit = new Submit { DocId = docId, ClientSeq = seq, BaseVersion = baseVersion, Op = op } });

    private static async Task<Ack> ReceiveUntilAckAsync(RawProtocolClient client)
    {
        while (true)
        {
            ServerMessage message = await client.ReceiveAsync();
            Assert.Null(message.Error);
            if (message.Ack is { } ack)
            {
                return ack;
            }
        }
    }

    private static async Task<IReadOnlyList<SequencedOp>> FetchAsync(RawProtocolClient client, string docId, long from, long to)
    {
        await client.SendAsync(new ClientMessage { RequestId = 77, FetchOps = new FetchOps { DocId = docId, FromVersion = from, ToVersion = to } });
        while (true)
        {
            ServerMessage message = await client.ReceiveAsync();
            Assert.Null(message.Error);
            if (message is { RequestId: 77, Ops: { } ops })
            {
                return ops.Ops_;
            }
        }
    }
}
