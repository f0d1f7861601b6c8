using System.Buffers;
using System.Net.WebSockets;
using Collab.Engine.Text;
using Collab.Integration.Tests.Infrastructure;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>
/// Whatever a client sends, it gets a clear error with a code, the document is untouched and other
/// sessions are unaffected. The connection is closed only when its stream cannot be trusted (docs/PROTOCOL.md
/// section 10: text 1003, an undecodable envelope 1007, no Hello or a wrong version 1002) or abuse persists (1008).
/// </summary>
public sealed class BadInputTests : IAsyncLifetime
{
    private InProcessServer _server = null!;

    public async Task InitializeAsync() => _server = await InProcessServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Malformed_protobuf_gets_BAD_MESSAGE_then_close_1007()
    {
        await using RawProtocolClient bystander = await RawProtocolClient.ConnectAsync(_server.WebSocketUri);
        await using RawProtocolClient client = await RawProtocolClient.ConnectAsync(_server.WebSocketUri);
        await client.SendBytesAsync([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
        ServerMessage error = await client.ReceiveAsync();
        Assert.Equal(ErrorCode.BadMessage, error.Error.Code);
        Assert.False(error.Error.Retryable);
        Assert.Equal(WebSocketCloseStatus.InvalidPayloadData, await client.ReceiveCloseAsync());
        await AssertAliveAsync(bystander);
    }

    [Fact]
    public async Task A_message_kind_the_server_does_not_know_gets_UNKNOWN_MESSAGE()
    {
        await using RawProtocolClient client = await RawProtocolClient.ConnectAsync(_server.WebSocketUri);
        // Field 99 (length-delimited): what a newer client's new message kind looks like to this server.
        await client.SendBytesAsync([0x08, 0x07, 0x9a, 0x06, 0x02, 0x08, 0x01]);
        ServerMessage error = await client.ReceiveAsync();
        Assert.Equal(ErrorCode.UnknownMessage, error.Error.Code);
        Assert.Equal(7ul, error.RequestId);
        await AssertAliveAsync(client);
    }

    [Fact]
    public async Task A_text_frame_closes_1003()
    {
        await using RawProtocolClient client = await RawProtocolClient.ConnectAsync(_server.WebSocketUri);
        await client.SendBytesAsync("{\"hello\":1}"u8.ToArray(), WebSocketMessageType.Text);
        Assert.Equal(WebSocketCloseStatus.InvalidMessageType, await client.ReceiveCloseAsync());
    }

    [Fact]
    public async Task Anything_before_Hello_gets_NOT_HELLO_then_close_1002()
    {
        await using RawProtocolClient client = await RawProtocolClient.ConnectAsync(_server.WebSocketUri, hello: false);
        await client.SendAsync(new ClientMessage { Subscribe = new Subscribe { DocId = "a", Snapshot = true } });
        Assert.Equal(ErrorCode.NotHello, (await client.ReceiveAsync()).Error.Code);
        Assert.Equal(WebSocketCloseStatus.ProtocolError, await client.ReceiveCloseAsync());
    }

    [Fact]
    public async Task An_unsupported_protocol_version_gets_PROTOCOL_VERSION_then_close_1002()
    {
        await using RawProtocolClient client = await RawProtocolClient.ConnectAsync(_server.WebSocketUri, hello: false);
        await client.SendAsync(new ClientMessage { Hello = new Hello { ProtocolVersion = 99 } });
        Assert.Equal(ErrorCode.ProtocolVersion, (await client.ReceiveAsync()).Error.Code);
        Assert.Equal(WebSocketCloseStatus.ProtocolError, await client.ReceiveCloseAsync());
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("/leading-slash")]
    [InlineData("a/../b")]
    [InlineData("emoji😀")]
    public async Task A_malformed_document_id_gets_INVALID_DOC_ID(string docId)
    {
        await using RawProtocolClient client = await RawProtocolClient.ConnectAsync(_server.WebSocketUri);
        await client.SendAsync(new ClientMessage { RequestId = 3, Subscribe = new Subscribe { DocId = docId, Snapshot = true } });
        ServerMessage error = await client.ReceiveAsync();
        Assert.Equal(ErrorCode.InvalidDocId, error.Error.Code);
        Assert.Equal(3ul, error.RequestId);
        await AssertAliveAsync(client);
    }

    [Fact]
    public async Task Submitting_to_a_document_not_subscribed_gets_NOT_SUBSCRIBED()
    {
        await using RawProtocolClient client = await RawProtocolClient.ConnectAsync(_server.WebSocketUri);
        await client.SendAsync(Submit("bad/notsub", 1, 0, TextOp.Insert(0, "x")));
        Assert.Equal(ErrorCode.NotSubscribed, (await client.ReceiveAsync()).Error.Code);
    }

    [Fact]
    public async Task Ops_that_do_not_fit_or_come_from_the_future_or_do_not_decode_leave_the_document_untouched()
    {
        const string doc = "bad/untouched";
        await using RawProtocolClient writer = await SubscribedAsync(doc);
        await writer.SendAsync(Submit(doc, 1, 0, TextOp.Insert(0, "hello")));
        Assert.Equal(1, (await writer.ReceiveAsync(ServerMessage.BodyOneofCase.Ack)).Ack.Version);

        // Longer than the document at its base version (wrong base length).
        await writer.SendAsync(Submit(doc, 2, 1, TextOp.Delete(3, 10)));
        ServerMessage tooLong = await writer.ReceiveAsync(ServerMessage.BodyOneofCase.Error);
        Assert.Equal(ErrorCode.OpDoesNotFit, tooLong.Error.Code);
        Assert.Equal(2ul, tooLong.Error.ClientSeq);

        // A base version the document has not reached.
        await writer.SendAsync(Submit(doc, 3, 7, TextOp.Insert(0, "x")));
        Assert.Equal(ErrorCode.VersionFromFuture, (await writer.ReceiveAsync(ServerMessage.BodyOneofCase.Error)).Error.Code);

        // Bytes that are not an op at all.
        await writer.SendAsync(new ClientMessage { Submit = new Submit { DocId = doc, ClientSeq = 4, BaseVersion = 1, Op = ByteString.CopyFrom(0xff, 0xff, 0xff) } });
        Assert.Equal(ErrorCode.InvalidOp, (await writer.ReceiveAsync(ServerMessage.BodyOneofCase.Error)).Error.Code);

        // Subscribing from a future version.
        await writer.SendAsync(new ClientMessage { Subscribe = new Subscribe { DocId = doc, FromVersion = 50 } });
        Assert.Equal(ErrorCode.VersionFromFuture, (await writer.ReceiveAsync(ServerMessage.BodyOneofCase.Error)).Error.Code);

        await using RawProtocolClient reader = await SubscribedAsync(doc);
        ServerMessage snapshot = await reader.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot);
        Assert.Equal(1, snapshot.Snapshot.Version);
        Assert.Equal("hello", snapshot.Snapshot.Text);
    }

    [Fact]
    public async Task An_oversized_op_gets_OP_TOO_LARGE()
    {
        const string doc = "bad/large";
        await using RawProtocolClient client = await SubscribedAsync(doc);
        await client.SendAsync(Submit(doc, 1, 0, TextOp.Insert(0, new string('x', 300 * 1024))));
        Assert.Equal(ErrorCode.OpTooLarge, (await client.ReceiveAsync(ServerMessage.BodyOneofCase.Error)).Error.Code);
    }

    [Fact]
    public async Task A_resent_op_is_acknowledged_again_as_a_duplicate_and_applied_once()
    {
        const string doc = "bad/resend";
        await using RawProtocolClient client = await SubscribedAsync(doc);
        ClientMessage submit = Submit(doc, 1, 0, TextOp.Insert(0, "once"));
        await client.SendAsync(submit);
        ServerMessage first = await client.ReceiveAsync(ServerMessage.BodyOneofCase.Ack);
        await client.SendAsync(submit);
        ServerMessage second = await client.ReceiveAsync(ServerMessage.BodyOneofCase.Ack);
        Assert.False(first.Ack.Duplicate);
        Assert.True(second.Ack.Duplicate);
        Assert.Equal(first.Ack.Version, second.Ack.Version);

        await using RawProtocolClient reader = await SubscribedAsync(doc);
        Assert.Equal("once", (await reader.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot)).Snapshot.Text);
    }

    [Fact]
    public async Task A_client_that_keeps_sending_invalid_requests_is_closed_1008_and_others_are_unaffected()
    {
        await using RawProtocolClient bystander = await RawProtocolClient.ConnectAsync(_server.WebSocketUri);
        await using RawProtocolClient abuser = await RawProtocolClient.ConnectAsync(_server.WebSocketUri);

        // Each one decodes but is refused (INVALID_DOC_ID): tolerated a few dozen times, then the connection is closed.
        int errors = 0;
        for (int i = 0; i < 100; i++)
        {
            try
            {
                await abuser.SendAsync(new ClientMessage { RequestId = (ulong)i, Subscribe = new Subscribe { DocId = "../" + i, Snapshot = true } });
            }
            catch (WebSocketException)
            {
                break;
            }
        }

        while (true)
        {
            ServerMessage message;
            try
            {
                message = await abuser.ReceiveAsync();
            }
            catch (WebSocketException)
            {
                break; // the server's close
            }

            Assert.Equal(ErrorCode.InvalidDocId, message.Error.Code);
            errors++;
        }

        Assert.Equal(WebSocketCloseStatus.PolicyViolation, abuser.CloseStatus);
        Assert.InRange(errors, 2, 99);
        await AssertAliveAsync(bystander);
    }

    private async Task<RawProtocolClient> SubscribedAsync(string docId)
    {
        RawProtocolClient client = await RawProtocolClient.ConnectAsync(_server.WebSocketUri);
        await client.SendAsync(new ClientMessage { Subscribe = new Subscribe { DocId = docId, Snapshot = true } });
        return client;
    }

    private static ClientMessage Submit(string docId, ulong clientSeq, long baseVersion, TextOp op)
    {
        var buffer = new ArrayBufferWriter<byte>();
        TextOpCodec.Encode(op, buffer);
        return new ClientMessage
        {
            Submit = new Submit { DocId = docId, ClientSeq = clientSeq, BaseVersion = baseVersion, Op = ByteString.CopyFrom(buffer.WrittenSpan) },
        };
    }

    private static async Task AssertAliveAsync(RawProtocolClient client)
    {
        await client.SendAsync(new ClientMessage { Ping = new Ping { Nonce = 42 } });
        Assert.Equal(42ul, (await client.ReceiveAsync(ServerMessage.BodyOneofCase.Pong)).Pong.Nonce);
    }
}
