using Collab.Engine.Client;
using Collab.Engine.Text;

namespace Collab.Engine.Tests.Sequencing;

public sealed class OtClientStateTests
{
    private static OtClientState<Rope, TextOp> Client(string text = "", long version = 0, string id = "me") =>
        new(TextType.Instance, id, Rope.FromString(text), version);

    [Fact]
    public void Local_edit_goes_in_flight_and_later_edits_are_buffered_into_one_op()
    {
        var client = Client("ab", 3);

        Assert.True(client.ApplyLocal(TextOp.Insert(2, "c")));
        Assert.True(client.TryTakeOutgoing(out OutgoingOp<TextOp> sent));
        Assert.False(client.TryTakeOutgoing(out _));
        Assert.Equal((1L, 3L, TextOp.Insert(2, "c")), (sent.ClientSeq, sent.BaseVersion, sent.Op));

        Assert.False(client.ApplyLocal(TextOp.Insert(3, "d")));
        Assert.False(client.ApplyLocal(TextOp.Insert(4, "e")));
        Assert.False(client.ApplyLocal(TextOp.Empty));
        Assert.False(client.TryTakeOutgoing(out _));
        Assert.Equal("abcde", client.Snapshot.ToString());
        Assert.True(client.HasBuffer);

        Assert.True(client.OnAck(4));
        Assert.True(client.TryTakeOutgoing(out OutgoingOp<TextOp> buffered));
        Assert.Equal((2L, 4L, TextOp.Insert(3, "de")), (buffered.ClientSeq, buffered.BaseVersion, buffered.Op));
        Assert.False(client.HasBuffer);

        Assert.True(client.OnAck(5));
        Assert.False(client.HasPending);
        Assert.Equal(5, client.Version);
        Assert.Equal(3, client.NextClientSeq);
    }

    [Fact]
    public void Invalid_local_edit_is_refused_and_changes_nothing()
    {
        var client = Client("ab");
        OtException error = Assert.Throws<OtException>(() => client.ApplyLocal(TextOp.Delete(1, 5)));
        Assert.Equal(OtErrorCode.OpTooLong, error.Code);
        Assert.Equal("ab", client.Snapshot.ToString());
        Assert.False(client.HasPending);
    }

    [Fact]
    public void Remote_op_is_transformed_past_inflight_and_buffer_mirroring_the_server()
    {
        var client = Client("xy", 1);
        client.ApplyLocal(TextOp.Insert(1, "A"));   // inflight: xAy
        client.TryTakeOutgoing(out _);
        client.ApplyLocal(TextOp.Insert(3, "B"));   // buffer:   xAyB

        // Someone else inserted at 1 too: the server puts our pending insert (Left) before theirs.
        Assert.True(client.OnRemoteOp(2, TextOp.Insert(1, "R"), "other", 1, out TextOp local));

        Assert.Equal(TextOp.Insert(2, "R"), local);
        Assert.Equal("xARyB", client.Snapshot.ToString());
        Assert.Equal(2, client.Version);

        // What the server would sequence for our inflight op, made at version 1, after op 2.
        Assert.True(client.OnAck(3));
        Assert.True(client.TryTakeOutgoing(out OutgoingOp<TextOp> buffered));
        Assert.Equal(3, buffered.BaseVersion);
        Assert.Equal(TextOp.Insert(4, "B"), buffered.Op);
    }

    [Fact]
    public void Own_op_in_the_stream_counts_as_the_acknowledgement_and_a_later_ack_is_ignored()
    {
        var client = Client();
        client.ApplyLocal(TextOp.Insert(0, "a"));
        client.TryTakeOutgoing(out OutgoingOp<TextOp> sent);
        client.ApplyLocal(TextOp.Insert(1, "b"));

        Assert.False(client.OnRemoteOp(1, sent.Op, "me", sent.ClientSeq, out _));
        Assert.Equal(1, client.Version);
        Assert.Equal(2, client.InflightSeq);

        Assert.False(client.OnAck(1));
        Assert.Equal(2, client.InflightSeq);
        Assert.Equal("ab", client.Snapshot.ToString());
    }

    [Fact]
    public void Reconnect_resends_the_inflight_op_with_the_same_seq_rebased_on_the_current_version()
    {
        var client = Client("", 0);
        client.ApplyLocal(TextOp.Insert(0, "a"));
        client.TryTakeOutgoing(out OutgoingOp<TextOp> first);
        client.OnRemoteOp(1, TextOp.Insert(0, "zz"), "other", 1, out _);

        client.OnReconnect();
        Assert.True(client.TryTakeOutgoing(out OutgoingOp<TextOp> resend));

        Assert.Equal(first.ClientSeq, resend.ClientSeq);
        Assert.Equal(1, resend.BaseVersion);
        Assert.Equal(TextOp.Insert(0, "a"), resend.Op);
        Assert.False(client.TryTakeOutgoing(out _));
    }

    [Fact]
    public void Gaps_and_foreign_use_of_the_client_id_are_protocol_errors()
    {
        var client = Client();
        Assert.Throws<InvalidOperationException>(() => client.OnRemoteOp(2, TextOp.Insert(0, "a"), "other", 1, out _));
        Assert.Throws<InvalidOperationException>(() => client.OnAck(1));
        Assert.Throws<InvalidOperationException>(() => client.OnRemoteOp(1, TextOp.Insert(0, "a"), "me", 7, out _));

        client.ApplyLocal(TextOp.Insert(0, "a"));
        Assert.Throws<InvalidOperationException>(() => client.OnAck(2));
        Assert.False(client.OnRemoteOp(0, TextOp.Insert(0, "a"), "other", 1, out _));
        Assert.Equal(0, client.Version);
    }

    [Fact]
    public void Reset_drops_pending_edits_but_never_reuses_a_seq()
    {
        var client = Client();
        client.ApplyLocal(TextOp.Insert(0, "a"));
        client.ApplyLocal(TextOp.Insert(1, "b"));

        client.Reset(Rope.FromString("server"), 9);

        Assert.False(client.HasPending);
        Assert.Equal(("server", 9L), (client.Snapshot.ToString(), client.Version));
        client.ApplyLocal(TextOp.Insert(0, "!"));
        Assert.True(client.TryTakeOutgoing(out OutgoingOp<TextOp> next));
        Assert.Equal(2, next.ClientSeq);
    }

    [Fact]
    public void Remote_cursors_move_through_recent_server_ops_and_local_pending_edits()
    {
        var client = new OtClientState<Rope, TextOp>(TextType.Instance, "me", Rope.FromString("hello"), 10, presenceHistory: 2);
        client.OnRemoteOp(11, TextOp.Insert(0, "++"), "other", 1, out _); // ++hello
        client.OnRemoteOp(12, TextOp.Insert(7, "!"), "peer", 1, out _);   // ++hello!
        client.ApplyLocal(TextOp.Insert(0, "<"));                          // <++hello!

        // Peer's cursor after "hello" at version 10 → after the "!" it typed itself (own op) → after our "<".
        Assert.True(client.TryTransformRemoteCursor(10, 5, "peer", out int peerCursor));
        Assert.Equal(9, peerCursor);
        Assert.True(client.TryTransformRemoteCursor(12, 0, "peer", out int atStart));
        Assert.Equal(0, atStart);
        Assert.False(client.TryTransformRemoteCursor(9, 0, "peer", out _));
        Assert.False(client.TryTransformRemoteCursor(13, 0, "peer", out _));

        Assert.False(client.TryGetServerCursor(3, out _, out _));
        client.OnAck(13);
        Assert.True(client.TryGetServerCursor(3, out long version, out int cursor));
        Assert.Equal((13L, 3), (version, cursor));
    }

    [Fact]
    public void Constructor_validates_its_arguments()
    {
        Assert.Throws<ArgumentException>(() => new OtClientState<Rope, TextOp>(TextType.Instance, "", Rope.Empty, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new OtClientState<Rope, TextOp>(TextType.Instance, "a", Rope.Empty, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new OtClientState<Rope, TextOp>(TextType.Instance, "a", Rope.Empty, 0, firstClientSeq: 0));
    }
}
