using System.Text;
using System.Text.Json;
using Collab.Engine.Text;
using Collab.LoadTest.Client;

namespace Collab.LoadTest.Tests;

/// <summary>
/// The light client's ShareDB protocol against messages captured from a real ShareDB 7.0.0 server
/// (loadtest/peers/sharedb-server.js, two `ws` clients, 2026-12-07), and the messages it writes against what
/// ShareDB's own client sends (sharedb/lib/client/connection.js).
/// </summary>
public sealed class ShareDbWireTests
{
    private const string ClientA = "e1fc2d2cc088aa618c6ca505762a11f3";
    private const string ClientB = "0ce08e46c3d4d073f298062c7de2c034";

    [Fact]
    public void Init_and_handshake_reply_give_the_protocol_and_the_client_id()
    {
        ShareDbMessage init = Parse("""{"a":"init","protocol":1,"protocolMinor":2,"id":"0ce08e46c3d4d073f298062c7de2c034","type":"http://sharejs.org/types/JSONv0"}""");
        Assert.Equal(ShareDbAction.Init, init.Action);
        Assert.Equal(1, init.Protocol);

        ShareDbMessage hs = Parse("""{"a":"hs","protocol":1,"protocolMinor":2,"id":"e1fc2d2cc088aa618c6ca505762a11f3","type":"http://sharejs.org/types/JSONv0"}""");
        Assert.Equal(ShareDbAction.Handshake, hs.Action);
        Assert.Equal(ClientA, hs.Id);
        Assert.Null(hs.ErrorCode);
    }

    [Fact]
    public void Subscribe_reply_of_a_document_nobody_created_is_version_0_without_type()
    {
        ShareDbMessage reply = Parse("""{"data":{"v":0,"type":null},"a":"s","c":"loadtest","d":"doc-1"}""");
        Assert.Equal(ShareDbAction.Subscribe, reply.Action);
        Assert.True(reply.HasSnapshot);
        Assert.Equal(0, reply.SnapshotVersion);
        Assert.Null(reply.SnapshotText);
        Assert.Null(reply.SnapshotType);
        Assert.Equal("doc-1", Encoding.UTF8.GetString(reply.DocId));
    }

    [Fact]
    public void Subscribe_reply_with_a_snapshot_and_a_resubscribe_reply_without_one()
    {
        ShareDbMessage snapshot = Parse("""{"data":{"v":3,"data":".AB.","type":"http://sharejs.org/types/text-unicode"},"a":"s","c":"loadtest","d":"doc-1"}""");
        Assert.True(snapshot.HasSnapshot);
        Assert.Equal(3, snapshot.SnapshotVersion);
        Assert.Equal(".AB.", snapshot.SnapshotText);
        Assert.Equal(ShareDbWire.TextUnicodeUri, snapshot.SnapshotType);

        ShareDbMessage resubscribed = Parse("""{"a":"s","c":"loadtest","d":"doc-1"}""");
        Assert.Equal(ShareDbAction.Subscribe, resubscribed.Action);
        Assert.False(resubscribed.HasSnapshot);
    }

    [Fact]
    public void Ack_is_an_op_message_without_a_body()
    {
        ShareDbMessage ack = Parse("""{"src":"e1fc2d2cc088aa618c6ca505762a11f3","seq":2,"v":1,"a":"op","c":"loadtest","d":"doc-1"}""");
        Assert.Equal(ShareDbAction.Op, ack.Action);
        Assert.Equal(ShareDbOpBody.None, ack.Body);
        Assert.Equal(ClientA, Encoding.UTF8.GetString(ack.Src));
        Assert.Equal(2UL, ack.Seq);
        Assert.Equal(1, ack.Version);
        Assert.True(ack.OpJson.IsEmpty);
    }

    [Fact]
    public void Broadcast_op_carries_author_seq_version_and_the_raw_op()
    {
        ShareDbMessage op = Parse("""{"a":"op","c":"loadtest","d":"doc-1","v":2,"src":"0ce08e46c3d4d073f298062c7de2c034","seq":1,"op":[1,{"d":1},2,{"d":1}]}""");
        Assert.Equal(ShareDbOpBody.Edit, op.Body);
        Assert.Equal(ClientB, Encoding.UTF8.GetString(op.Src));
        Assert.Equal(1UL, op.Seq);
        Assert.Equal(2, op.Version);
        Assert.Equal("""[1,{"d":1},2,{"d":1}]""", Encoding.UTF8.GetString(op.OpJson));
        Assert.Equal(-2, ShareDbWire.LengthDelta(op.OpJson));
    }

    [Fact]
    public void Create_broadcast_is_the_documents_initial_text()
    {
        ShareDbMessage create = Parse("""{"a":"op","c":"loadtest","d":"doc-1","v":0,"src":"e1fc2d2cc088aa618c6ca505762a11f3","seq":1,"create":{"type":"http://sharejs.org/types/text-unicode","data":"...."}}""");
        Assert.Equal(ShareDbOpBody.Create, create.Body);
        Assert.Equal(0, create.Version);
        Assert.Equal(4, ShareDbWire.CreateLength(create.OpJson));
        Assert.Equal(TextOp.Insert(0, "...."), ShareDbWire.DecodeCreate(create.OpJson));
    }

    [Fact]
    public void Create_of_another_type_is_refused()
    {
        Assert.Throws<WireFormatException>(() => ShareDbWire.DecodeCreate("""{"type":"http://sharejs.org/types/JSONv0","data":{}}"""u8));
    }

    [Fact]
    public void Refused_submit_echoes_the_request_with_the_error()
    {
        ShareDbMessage refused = Parse("""{"a":"op","c":"loadtest","d":"doc-1","v":0,"seq":2,"x":{},"op":["x"],"error":{"code":"ERR_DOC_ALREADY_CREATED","message":"Document was created remotely"}}""");
        Assert.Equal(ShareDbAction.Op, refused.Action);
        Assert.Equal("ERR_DOC_ALREADY_CREATED", refused.ErrorCode);
        Assert.Equal("Document was created remotely", refused.ErrorMessage);
        Assert.Equal(2UL, refused.Seq);
        Assert.True(refused.Src.IsEmpty);
    }

    [Fact]
    public void Ping_pong_and_fetch_reply()
    {
        Assert.Equal(ShareDbAction.PingPong, Parse("""{"a":"pp"}""").Action);
        ShareDbMessage fetched = Parse("""{"a":"f","c":"loadtest","d":"doc-1"}""");
        Assert.Equal(ShareDbAction.Fetch, fetched.Action);
        Assert.False(fetched.HasSnapshot);
        Assert.Equal(ShareDbAction.Other, Parse("""{"a":"q","id":1,"diff":[]}""").Action);
    }

    [Fact]
    public void Escaped_strings_are_unescaped()
    {
        ShareDbMessage op = Parse("""{"a":"op","c":"load\u0074est","d":"doc\/1","v":5,"src":"a\u0062","seq":3,"op":["\u00e9\ud83d\ude00"]}""");
        Assert.Equal("loadtest", Encoding.UTF8.GetString(op.Collection));
        Assert.Equal("doc/1", Encoding.UTF8.GetString(op.DocId));
        Assert.Equal("ab", Encoding.UTF8.GetString(op.Src));
        Assert.Equal(2, ShareDbWire.LengthDelta(op.OpJson)); // é and 😀: two code points
    }

    [Fact]
    public void Not_an_object_is_a_wire_error_and_broken_json_a_json_error()
    {
        Assert.Throws<WireFormatException>(() => ShareDbWire.Parse("[1,2]"u8));
        Assert.ThrowsAny<JsonException>(() => ShareDbWire.Parse("""{"a":"op","v":"""u8));
    }

    [Fact]
    public void Captured_ops_decode_to_what_text_unicode_computes()
    {
        // ShareDB applied client A's [2,"AB"] to "....", then B's [1,{"d":2}] transformed by the server into
        // [1,{"d":1},2,{"d":1}]; ot-text-unicode's apply gives ".AB." (checked with node).
        Rope text = Rope.FromString("....");
        text = TextType.Apply(text, ShareDbWire.DecodeOp("""[2,"AB"]"""u8));
        text = TextType.Apply(text, ShareDbWire.DecodeOp("""[1,{"d":1},2,{"d":1}]"""u8));
        Assert.True(text.ContentEquals(".AB."));

        // Deletes by count and by content, escapes and astral code points, as ot-text-unicode applies them (node:
        // type.apply("héllo 😀 wörld", [6,{d:"😀"},1,"\"q\\né",{d:2}]) === 'héllo  "q\\nérld').
        byte[] op = """[6,{"d":"😀"},1,"\"q\\n\u00e9",{"d":2}]"""u8.ToArray();
        Rope unicode = TextType.Apply(Rope.FromString("héllo 😀 wörld"), ShareDbWire.DecodeOp(op));
        Assert.True(unicode.ContentEquals("héllo  \"q\\nérld"));
        Assert.Equal(5 - 3, ShareDbWire.LengthDelta(op));
    }

    [Fact]
    public void Messages_the_client_writes_are_what_sharedbs_client_sends()
    {
        byte[] buffer = new byte[512];
        Assert.Equal("""{"a":"hs","id":null,"protocol":1,"protocolMinor":2}""", Written(buffer, ShareDbWire.WriteHandshake(buffer, [])));
        Assert.Equal($$"""{"a":"hs","id":"{{ClientA}}","protocol":1,"protocolMinor":2}""", Written(buffer, ShareDbWire.WriteHandshake(buffer, Encoding.UTF8.GetBytes(ClientA))));
        Assert.Equal("""{"a":"s","c":"loadtest","d":"doc-1","v":null}""", Written(buffer, ShareDbWire.WriteDocRequest(buffer, ShareDbAction.Subscribe, ShareDbWire.Collection, "doc-1"u8, -1)));
        Assert.Equal("""{"a":"s","c":"loadtest","d":"doc-1","v":17}""", Written(buffer, ShareDbWire.WriteDocRequest(buffer, ShareDbAction.Subscribe, ShareDbWire.Collection, "doc-1"u8, 17)));
        Assert.Equal("""{"a":"f","c":"loadtest","d":"doc-1","v":1}""", Written(buffer, ShareDbWire.WriteDocRequest(buffer, ShareDbAction.Fetch, ShareDbWire.Collection, "doc-1"u8, 1)));
        Assert.Equal(
            $$"""{"a":"op","c":"loadtest","d":"doc-1","v":1,"src":"{{ClientA}}","seq":2,"x":{},"op":[2,"AB"]}""",
            Written(buffer, ShareDbWire.WriteInsertOp(buffer, ShareDbWire.Collection, "doc-1"u8, 1, Encoding.UTF8.GetBytes(ClientA), 2, 2, "AB"u8)));
        // text-unicode's normal form: no leading retain of 0.
        Assert.Equal(
            $$"""{"a":"op","c":"loadtest","d":"doc-1","v":0,"src":"{{ClientB}}","seq":9,"x":{},"op":["x"]}""",
            Written(buffer, ShareDbWire.WriteInsertOp(buffer, ShareDbWire.Collection, "doc-1"u8, 0, Encoding.UTF8.GetBytes(ClientB), 9, 0, "x"u8)));
        Assert.Equal(
            $$$"""{"a":"op","c":"loadtest","d":"doc-1","v":0,"src":"{{{ClientA}}}","seq":1,"x":{},"create":{"type":"http://sharejs.org/types/text-unicode","data":"...."}}""",
            Written(buffer, ShareDbWire.WriteCreate(buffer, ShareDbWire.Collection, "doc-1"u8, Encoding.UTF8.GetBytes(ClientA), 1, "...."u8)));
        Assert.Equal("""{"a":"pp"}""", Encoding.UTF8.GetString(ShareDbWire.Ping));
    }

    [Fact]
    public void Written_op_parses_back_and_ids_are_escaped_once()
    {
        byte[] buffer = new byte[256];
        byte[] doc = ShareDbWire.Escape("lt-1/\"doc\"");
        int length = ShareDbWire.WriteInsertOp(buffer, ShareDbWire.Collection, doc, long.MaxValue, ShareDbWire.Escape("c"), ulong.MaxValue, int.MaxValue - 4, "TOKN"u8);
        ShareDbMessage parsed = ShareDbWire.Parse(buffer.AsSpan(0, length));
        Assert.Equal("lt-1/\"doc\"", Encoding.UTF8.GetString(parsed.DocId));
        Assert.Equal(long.MaxValue, parsed.Version);
        Assert.Equal(ulong.MaxValue, parsed.Seq);
        Assert.Equal(TextOp.Insert(int.MaxValue - 4, "TOKN"), ShareDbWire.DecodeOp(parsed.OpJson));
    }

    private static ShareDbMessage Parse(string json) => ShareDbWire.Parse(Encoding.UTF8.GetBytes(json));

    private static string Written(byte[] buffer, int length) => Encoding.UTF8.GetString(buffer, 0, length);
}
