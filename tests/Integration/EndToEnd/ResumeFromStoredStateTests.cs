using Collab.Client;
using Collab.Engine.Text;
using Collab.Integration.Tests.Infrastructure;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 13 §2b, decision P3: a new process that stored its client id and an old version resumes with
/// Subscribe{from_version} and rebuilds the text from the catch-up alone, because its own earlier ops come as
/// SequencedOps (they used to come as acks, which carry no op).
/// </summary>
public sealed class ResumeFromStoredStateTests
{
    [Fact]
    public async Task A_new_process_with_a_stored_client_id_and_an_old_version_rebuilds_the_text_from_the_catch_up()
    {
        await using InProcessServer server = await InProcessServer.StartAsync();
        const string DocId = "resume/stored";
        string storedClientId;
        await using (RawProtocolClient first = await RawProtocolClient.ConnectAsync(server.WebSocketUri))
        {
            storedClientId = first.ClientId;
            await first.SendAsync(new ClientMessage { RequestId = 1, Subscribe = new Subscribe { DocId = DocId, Snapshot = true } });
            await first.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot);
            await SubmitAsync(first, 1, 0, TextOp.Insert(0, "hello"));
            Assert.Equal(1, (await first.ReceiveAsync(ServerMessage.BodyOneofCase.Ack)).Ack.Version);

            await using (CollabClient other = await CollabClient.ConnectAsync(server.WebSocketUri, new CollabClientOptions()))
            await using (CollabDocument document = await other.OpenDocumentAsync(DocId))
            {
                document.Insert(5, " world");
                await document.WhenSyncedAsync();
            }

            await SubmitAsync(first, 2, 2, TextOp.Insert(0, ">> "));
            Assert.Equal(3, (await first.ReceiveAsync(ServerMessage.BodyOneofCase.Ack)).Ack.Version);
        }

        // The "new process": it kept only (client id, version 0, empty text).
        await using RawProtocolClient resumed = await RawProtocolClient.ConnectAsync(server.WebSocketUri, clientId: storedClientId);
        Assert.True(resumed.Resumed);
        await resumed.SendAsync(new ClientMessage { RequestId = 2, Subscribe = new Subscribe { DocId = DocId, FromVersion = 0 } });
        ServerMessage subscribed = await resumed.ReceiveAsync(ServerMessage.BodyOneofCase.Subscribed);
        Assert.Equal(3, subscribed.Subscribed.CurrentVersion);

        Rope text = Rope.Empty;
        long version = 0;
        var own = new List<ulong>();
        while (version < 3)
        {
            ServerMessage message = await resumed.ReceiveAsync();
            Assert.Null(message.Ack); // nothing was submitted on this connection
            foreach (SequencedOp op in message.Ops?.Ops_ ?? [])
            {
                Assert.Equal(version + 1, op.Version);
                text = TextType.Apply(text, TextOpCodec.Decode(op.Op.Span));
                version = op.Version;
                if (op.ClientId == storedClientId)
                {
                    own.Add(op.ClientSeq);
                }
            }
        }

        Assert.Equal(">> hello world", text.ToString());
        Assert.Equal([1ul, 2ul], own);
    }

    private static Task SubmitAsync(RawProtocolClient client, ulong seq, long baseVersion, TextOp op)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        TextOpCodec.Encode(op, buffer);
        return client.SendAsync(new ClientMessage
        {
            Submit = new Submit { DocId = "resume/stored", ClientSeq = seq, BaseVersion = baseVersion, Op = ByteString.CopyFrom(buffer.WrittenSpan) },
        });
    }
}
