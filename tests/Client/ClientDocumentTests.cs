using System.Net.WebSockets;
using Collab.Engine.Text;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Client.Tests;

/// <summary>The SDK's documents against a scripted server: in memory here, over each real transport in the subclasses.</summary>
public class ClientDocumentTests
{
    private const string Doc = "doc-1";
    private static readonly Uri Seed = new("ws://seed.test/ws");
    private readonly FakeWire _wire;

    public ClientDocumentTests()
        : this(FakeWire.InMemory)
    {
    }

    protected ClientDocumentTests(FakeWire wire) => _wire = wire;

    private FakeServer NewServer() => new(_wire);

    /// <summary>A connected client with <see cref="Doc"/> open at <paramref name="version"/> with <paramref name="text"/>.</summary>
    private async Task<Harness> OpenAsync(string text = "hello", long version = 5)
    {
        var server = NewServer();
        Task<CollabClient> connecting = CollabClient.ConnectAsync(Seed, FakeServer.Options(server));
        (FakeConnection connection, _) = await server.AcceptAndWelcomeAsync();
        CollabClient client = await connecting;
        Task<CollabDocument> opening = client.OpenDocumentAsync(Doc);
        Subscribe subscribe = await connection.ExpectSubscribeAsync(Doc);
        Assert.True(subscribe.Snapshot);
        connection.SendSnapshot(Doc, version, text);
        CollabDocument document = await opening;
        return new Harness(server, client, connection, document);
    }

    private sealed class Harness(FakeServer server, CollabClient client, FakeConnection connection, CollabDocument document) : IAsyncDisposable
    {
        public FakeServer Server { get; } = server;
        public CollabClient Client { get; } = client;
        public FakeConnection Connection { get; set; } = connection;
        public CollabDocument Document { get; } = document;

        /// <summary>Drops the connection and accepts the reconnect (same client id).</summary>
        public async Task<Hello> ReconnectAsync()
        {
            Connection.Drop();
            (FakeConnection next, Hello hello) = await Server.AcceptAndWelcomeAsync();
            Connection = next;
            return hello;
        }

        public ValueTask DisposeAsync() => Client.DisposeAsync();
    }

    private static string Apply(string text, Submit submit) => TextType.Apply(text, FakeConnection.Decode(submit));

    [Fact]
    public async Task Open_LoadsTheSnapshot()
    {
        await using Harness h = await OpenAsync("héllo 🌍", 5);
        Assert.Equal("héllo 🌍", h.Document.Text);
        Assert.Equal(5, h.Document.Version);
        Assert.False(h.Document.HasPendingOps);
        Assert.Equal(7, h.Document.Snapshot.Length);
    }

    [Fact]
    public async Task Open_FailsWhenTheServerRefusesAndCanBeRetried()
    {
        var server = NewServer();
        Task<CollabClient> connecting = CollabClient.ConnectAsync(Seed, FakeServer.Options(server));
        (FakeConnection connection, _) = await server.AcceptAndWelcomeAsync();
        await using CollabClient client = await connecting;

        Task<CollabDocument> opening = client.OpenDocumentAsync(Doc);
        await connection.ExpectSubscribeAsync(Doc);
        connection.SendError(ErrorCode.Forbidden, retryable: false, Doc, requestId: connection.LastRequestId);
        var error = await Assert.ThrowsAsync<CollabServerException>(() => opening);
        Assert.Equal(CollabErrorCode.Forbidden, error.Code);

        Task<CollabDocument> again = client.OpenDocumentAsync(Doc);
        await connection.ExpectSubscribeAsync(Doc);
        connection.SendSnapshot(Doc, 0, "");
        await using CollabDocument document = await again;
        await Assert.ThrowsAsync<InvalidOperationException>(() => client.OpenDocumentAsync(Doc));
    }

    [Fact]
    public async Task Open_RetriesARetryableRefusal()
    {
        var server = NewServer();
        Task<CollabClient> connecting = CollabClient.ConnectAsync(Seed, FakeServer.Options(server));
        (FakeConnection connection, _) = await server.AcceptAndWelcomeAsync();
        await using CollabClient client = await connecting;
        Task<CollabDocument> opening = client.OpenDocumentAsync(Doc);
        await connection.ExpectSubscribeAsync(Doc);
        connection.SendError(ErrorCode.Unavailable, retryable: true, Doc, requestId: connection.LastRequestId);
        Assert.True((await connection.ExpectSubscribeAsync(Doc)).Snapshot);
        connection.SendSnapshot(Doc, 1, "x");
        Assert.Equal("x", (await opening).Text);
    }

    [Fact]
    public async Task LocalEdit_IsSubmittedAndAcknowledged()
    {
        await using Harness h = await OpenAsync();
        h.Document.Insert(5, " world");
        Assert.Equal("hello world", h.Document.Text);
        Assert.True(h.Document.HasPendingOps);
        Task synced = h.Document.WhenSyncedAsync();
        Assert.False(synced.IsCompleted);

        Submit submit = await h.Connection.ExpectSubmitAsync(Doc);
        Assert.Equal(5, submit.BaseVersion);
        Assert.Equal(1ul, submit.ClientSeq);
        Assert.Equal("hello world", Apply("hello", submit));

        h.Connection.SendAck(Doc, submit.ClientSeq, 6);
        await synced;
        Assert.Equal(6, h.Document.Version);
        Assert.False(h.Document.HasPendingOps);
        Assert.Equal(1L, h.Client.LastClientSeq);
    }

    [Fact]
    public async Task EditsWhileAnOpIsInFlight_AreComposedIntoTheNextSubmit()
    {
        await using Harness h = await OpenAsync("abc", 1);
        h.Document.Insert(0, "1");
        h.Document.Insert(1, "2");
        h.Document.Delete(2, 1);
        h.Document.Insert(4, "3");
        Assert.Equal("12bc3", h.Document.Text);

        Submit first = await h.Connection.ExpectSubmitAsync(Doc);
        Assert.True(await h.Connection.IsQuietAsync(), "only one op may be in flight");
        h.Connection.SendAck(Doc, first.ClientSeq, 2);

        Submit second = await h.Connection.ExpectSubmitAsync(Doc);
        Assert.Equal(first.ClientSeq + 1, second.ClientSeq);
        Assert.Equal(2, second.BaseVersion);
        Assert.Equal("12bc3", Apply(Apply("abc", first), second));
        h.Connection.SendAck(Doc, second.ClientSeq, 3);
        await h.Document.WhenSyncedAsync();
        Assert.Equal(3, h.Document.Version);
    }

    [Fact]
    public async Task RemoteOps_AreTransformedPastPendingEdits()
    {
        await using Harness h = await OpenAsync("abc", 1);
        var changes = new EventRecorder<DocumentChangedEventArgs>();
        h.Document.Changed += changes.Handler;

        h.Document.Insert(1, "L");
        Submit inflight = await h.Connection.ExpectSubmitAsync(Doc);
        h.Document.Insert(4, "!");

        // Another client inserted at the same position first: the server put its op at version 2.
        h.Connection.SendOps(Doc, FakeConnection.Op(2, TextOp.Insert(1, "R"), "other", 9));
        DocumentChangedEventArgs change = await changes.NextAsync();
        Assert.Equal(2, change.Version);
        Assert.Equal("other", change.ClientId);
        Assert.False(change.IsResync);
        // Server convention: the client op (Left) lands before the sequenced one.
        Assert.Equal("aLRbc!", change.Text);
        Assert.Equal("aLRbc!", h.Document.Text);

        h.Connection.SendAck(Doc, inflight.ClientSeq, 3);
        Submit buffered = await h.Connection.ExpectSubmitAsync(Doc);
        Assert.Equal(3, buffered.BaseVersion);
        Assert.Equal("aLRbc!", Apply("aLRbc", buffered));
    }

    [Fact]
    public async Task ClientSeqs_IncreaseAcrossDocuments()
    {
        await using Harness h = await OpenAsync();
        Task<CollabDocument> opening = h.Client.OpenDocumentAsync("doc-2");
        await h.Connection.ExpectSubscribeAsync("doc-2");
        h.Connection.SendSnapshot("doc-2", 0, "");
        await using CollabDocument other = await opening;

        h.Document.Insert(0, "a");
        Submit a = await h.Connection.ExpectSubmitAsync(Doc);
        other.Insert(0, "b");
        Submit b = await h.Connection.ExpectSubmitAsync("doc-2");
        h.Connection.SendAck(Doc, a.ClientSeq, 6);
        h.Document.Insert(0, "c");
        Submit c = await h.Connection.ExpectSubmitAsync(Doc);
        Assert.Equal([1ul, 2ul, 3ul], new[] { a.ClientSeq, b.ClientSeq, c.ClientSeq });
    }

    [Fact]
    public async Task Reconnect_ResubscribesFromTheLastVersionAndResendsTheInFlightOpWithItsSeq()
    {
        await using Harness h = await OpenAsync();
        h.Document.Insert(0, ">");
        Submit sent = await h.Connection.ExpectSubmitAsync(Doc);
        h.Document.Insert(1, ">");

        Hello hello = await h.ReconnectAsync();
        Assert.Equal("c1", hello.ClientId);
        Subscribe resume = await h.Connection.ExpectSubscribeAsync(Doc);
        Assert.False(resume.Snapshot);
        Assert.Equal(5, resume.FromVersion);
        Assert.True(await h.Connection.IsQuietAsync(), "the resend waits for Subscribed");

        h.Connection.SendSubscribed(Doc, 5, 5);
        Submit resent = await h.Connection.ExpectSubmitAsync(Doc);
        Assert.Equal(sent.ClientSeq, resent.ClientSeq);
        Assert.Equal(sent.BaseVersion, resent.BaseVersion);
        Assert.Equal(sent.Op, resent.Op);

        h.Connection.SendAck(Doc, resent.ClientSeq, 6, duplicate: true);
        Submit buffered = await h.Connection.ExpectSubmitAsync(Doc);
        Assert.Equal(sent.ClientSeq + 1, buffered.ClientSeq);
        h.Connection.SendAck(Doc, buffered.ClientSeq, 7);
        await h.Document.WhenSyncedAsync();
        Assert.Equal(">>hello", h.Document.Text);
    }

    [Fact]
    public async Task Changed_IsRaisedForRemoteEditsNotForLocalOnes()
    {
        // As README.md and the Changed docs say: the application made its own edits (Text has them at once); Changed
        // tells it about everyone else's.
        await using Harness h = await OpenAsync("hello", 5);
        var changes = new EventRecorder<DocumentChangedEventArgs>();
        h.Document.Changed += changes.Handler;

        h.Document.Insert(5, "!");
        Assert.Equal("hello!", h.Document.Text);
        Submit submit = await h.Connection.ExpectSubmitAsync(Doc);
        h.Connection.SendAck(Doc, submit.ClientSeq, 6);
        await h.Document.WhenSyncedAsync();

        h.Connection.SendOps(Doc, FakeConnection.Op(7, TextOp.Insert(0, ">"), "other", 1));
        DocumentChangedEventArgs change = await changes.NextAsync();
        Assert.Equal(">hello!", change.Text);
        Assert.Equal("other", change.ClientId);
        Assert.False(change.IsResync);
        Assert.Single(changes.All); // the local insert and its ack raised nothing
    }

    [Fact]
    public async Task Reconnect_OwnOpInTheCatchUpCountsAsItsAck()
    {
        await using Harness h = await OpenAsync();
        var changes = new EventRecorder<DocumentChangedEventArgs>();
        h.Document.Changed += changes.Handler;
        h.Document.Insert(5, "!");
        Submit sent = await h.Connection.ExpectSubmitAsync(Doc);

        await h.ReconnectAsync();
        await h.Connection.ExpectSubscribeAsync(Doc);
        h.Connection.SendSubscribed(Doc, 5, 7);
        Submit resent = await h.Connection.ExpectSubmitAsync(Doc);
        Assert.Equal(sent.ClientSeq, resent.ClientSeq);

        // The catch-up holds our op (sequenced before the drop) and a later one.
        h.Connection.SendOps(Doc,
            FakeConnection.Op(6, TextOp.Insert(5, "!"), "c1", sent.ClientSeq),
            FakeConnection.Op(7, TextOp.Insert(0, "_"), "other", 1));
        DocumentChangedEventArgs change = await changes.NextAsync();
        Assert.Equal(7, change.Version);
        h.Connection.SendAck(Doc, sent.ClientSeq, 6, duplicate: true);

        await h.Document.WhenSyncedAsync();
        Assert.Equal("_hello!", h.Document.Text);
        Assert.Equal(7, h.Document.Version);
        Assert.Single(changes.All);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Close4009_DropsTheClientIdAndMovesThePendingEditToAFreshOne(bool inflightWasSequenced)
    {
        await using Harness h = await OpenAsync("hello", 5);
        var disconnected = new EventRecorder<DisconnectedEventArgs>();
        h.Client.Disconnected += disconnected.Handler;
        h.Document.Insert(5, "!");
        Submit sent = await h.Connection.ExpectSubmitAsync(Doc);

        // Another connection took the session of "c1" over.
        h.Connection.Close((WebSocketCloseStatus)CloseCodes.SessionReplaced, "session replaced");
        (FakeConnection next, Hello hello) = await h.Server.AcceptAndWelcomeAsync(clientId: "c2", resumed: false);
        h.Connection = next;
        DisconnectedEventArgs lost = await disconnected.NextAsync();
        Assert.Equal((DisconnectReason.SessionReplaced, true), (lost.Reason, lost.WillReconnect));
        Assert.Equal(string.Empty, hello.ClientId); // the replaced id is not offered again

        // Pending edits move to the new id (docs/PROTOCOL.md §7): no resend under "c2" of the op made under "c1" before the
        // catch-up reached the current version; the op is recognised there under "c1" if it was sequenced.
        Subscribe resume = await next.ExpectSubscribeAsync(Doc);
        Assert.Equal(5, resume.FromVersion);
        next.SendSubscribed(Doc, 5, inflightWasSequenced ? 6 : 5);
        if (inflightWasSequenced)
        {
            Assert.True(await next.IsQuietAsync(), "nothing is sent before the catch-up");
            next.SendOps(Doc, FakeConnection.Op(6, TextOp.Insert(5, "!"), "c1", sent.ClientSeq));
            await h.Document.WhenSyncedAsync();
            Assert.True(await next.IsQuietAsync(), "the op was already sequenced: nothing to resend");
        }
        else
        {
            Submit moved = await next.ExpectSubmitAsync(Doc);
            Assert.True(moved.ClientSeq > sent.ClientSeq);
            Assert.Equal("hello!", Apply("hello", moved));
            next.SendAck(Doc, moved.ClientSeq, 6);
            await h.Document.WhenSyncedAsync();
        }

        Assert.Equal("hello!", h.Document.Text);
        Assert.Equal("c2", h.Client.ClientId);
    }

    [Fact]
    public async Task EditsWhileDisconnected_AreSentAfterTheResume()
    {
        await using Harness h = await OpenAsync();
        var disconnected = new EventRecorder<DisconnectedEventArgs>();
        h.Client.Disconnected += disconnected.Handler;
        var policyServer = h.Server;
        policyServer.FailNextConnect(new WebSocketException("down"));
        h.Connection.Drop();
        await disconnected.NextAsync();
        h.Document.Insert(0, "offline ");
        Assert.Equal("offline hello", h.Document.Text);

        (FakeConnection next, _) = await h.Server.AcceptAndWelcomeAsync();
        h.Connection = next;
        await next.ExpectSubscribeAsync(Doc);
        next.SendSubscribed(Doc, 5, 5);
        Submit submit = await next.ExpectSubmitAsync(Doc);
        Assert.Equal("offline hello", Apply("hello", submit));
    }

    [Fact]
    public async Task VersionTooOld_FetchesTheMissingOpsThenResubscribes()
    {
        await using Harness h = await OpenAsync("abc", 5);
        h.Document.Insert(3, "!");
        Submit sent = await h.Connection.ExpectSubmitAsync(Doc);
        await h.ReconnectAsync();

        await h.Connection.ExpectSubscribeAsync(Doc);
        h.Connection.SendError(ErrorCode.VersionTooOld, retryable: false, Doc, requestId: h.Connection.LastRequestId);
        ClientMessage fetch = await h.Connection.ReceiveAsync(ClientMessage.BodyOneofCase.FetchOps);
        Assert.Equal(5, fetch.FetchOps.FromVersion);
        Assert.Equal(0, fetch.FetchOps.ToVersion);
        h.Connection.SendOps(Doc, fetch.RequestId, FakeConnection.Op(6, TextOp.Insert(0, "x")), FakeConnection.Op(7, TextOp.Insert(0, "y")));

        Subscribe resume = await h.Connection.ExpectSubscribeAsync(Doc);
        Assert.Equal(7, resume.FromVersion);
        h.Connection.SendSubscribed(Doc, 7, 7);
        Submit resent = await h.Connection.ExpectSubmitAsync(Doc);
        Assert.Equal(sent.ClientSeq, resent.ClientSeq);
        Assert.Equal(7, resent.BaseVersion);
        Assert.Equal("yxabc!", Apply("yxabc", resent));
        Assert.Equal("yxabc!", h.Document.Text);
    }

    [Theory]
    [InlineData("not sequenced")]
    [InlineData("duplicate")]
    [InlineData("already committed")]
    public async Task VersionTooOld_WithoutHistory_RebasesPendingEditsOntoASnapshot(string probeAnswer)
    {
        bool inflightWasSequenced = probeAnswer != "not sequenced";
        await using Harness h = await OpenAsync("hello", 5);
        var changes = new EventRecorder<DocumentChangedEventArgs>();
        h.Document.Changed += changes.Handler;
        h.Document.Insert(5, "!");
        Submit sent = await h.Connection.ExpectSubmitAsync(Doc);
        h.Document.Insert(0, ">");
        await h.ReconnectAsync();

        await h.Connection.ExpectSubscribeAsync(Doc);
        h.Connection.SendError(ErrorCode.VersionTooOld, retryable: false, Doc, requestId: h.Connection.LastRequestId);
        ClientMessage fetch = await h.Connection.ReceiveAsync(ClientMessage.BodyOneofCase.FetchOps);
        h.Connection.SendError(ErrorCode.VersionTooOld, retryable: false, Doc, requestId: fetch.RequestId);
        Assert.True((await h.Connection.ExpectSubscribeAsync(Doc)).Snapshot);
        string serverText = inflightWasSequenced ? "hello world!" : "hello world";
        h.Connection.SendSnapshot(Doc, 20, serverText);

        // The probe: the op exactly as sent, so the server's dedupe tells whether the snapshot holds it.
        Submit probe = await h.Connection.ExpectSubmitAsync(Doc);
        Assert.Equal(sent.ClientSeq, probe.ClientSeq);
        Assert.Equal(sent.BaseVersion, probe.BaseVersion);
        Assert.Equal(sent.Op, probe.Op);
        if (probeAnswer == "duplicate")
        {
            h.Connection.SendAck(Doc, sent.ClientSeq, 12, duplicate: true);
        }
        else if (probeAnswer == "already committed")
        {
            // Committed long ago, the log pruned past it: not a rejection, the snapshot holds it.
            h.Connection.SendError(ErrorCode.AlreadyCommitted, retryable: false, Doc, sent.ClientSeq);
        }
        else
        {
            h.Connection.SendError(ErrorCode.VersionTooOld, retryable: false, Doc, sent.ClientSeq);
        }

        // Not sequenced: "!" is re-applied; it ties with the unknown " world" at offset 5 and, as a client op, goes first.
        string expected = inflightWasSequenced ? ">hello world!" : ">hello! world";
        DocumentChangedEventArgs resync = await changes.WaitForAsync(c => c.IsResync);
        Assert.Equal(20, resync.Version);
        Assert.Equal(expected, resync.Text);
        Assert.Equal(expected, h.Document.Text);

        Submit rebased = await h.Connection.ExpectSubmitAsync(Doc);
        Assert.True(rebased.ClientSeq > sent.ClientSeq);
        Assert.Equal(20, rebased.BaseVersion);
        Assert.Equal(expected, Apply(serverText, rebased));
    }

    [Fact]
    public async Task RetryableSubmitError_ResendsTheSameSeqAfterABackoff()
    {
        await using Harness h = await OpenAsync();
        h.Document.Insert(0, "a");
        Submit sent = await h.Connection.ExpectSubmitAsync(Doc);
        h.Connection.SendError(ErrorCode.Overloaded, retryable: true, Doc, sent.ClientSeq);
        Submit resent = await h.Connection.ExpectSubmitAsync(Doc);
        Assert.Equal(sent.ClientSeq, resent.ClientSeq);
        Assert.Equal(sent.Op, resent.Op);
        h.Connection.SendAck(Doc, sent.ClientSeq, 6);
        await h.Document.WhenSyncedAsync();
    }

    [Fact]
    public async Task FatalSubmitError_DropsTheOpKeepsLaterEditsAndResyncs()
    {
        await using Harness h = await OpenAsync("hello", 5);
        Submit survivor = await SubmitErrorThenSnapshotAsync(h, "bad ", ErrorCode.Forbidden, 6, "Oh hello");

        Assert.Equal("Oh hello!", h.Document.Text);
        Assert.Equal("Oh hello!", Apply("Oh hello", survivor));
        h.Connection.SendAck(Doc, survivor.ClientSeq, 7);
        await h.Document.WhenSyncedAsync();
    }

    [Fact]
    public async Task AlreadyCommitted_IsNotARejection_TheOpIsKeptAndLaterEditsSurviveTheResync()
    {
        // The server knows the op was committed earlier but no longer has it in its log: the snapshot holds it, and only the
        // buffered "!" is new ("kept " is not applied a second time).
        await using Harness h = await OpenAsync("hello", 5);
        Submit survivor = await SubmitErrorThenSnapshotAsync(h, "kept ", ErrorCode.AlreadyCommitted, 9, "kept hello");

        Assert.Equal("kept hello!", h.Document.Text);
        Assert.Equal("kept hello!", Apply("kept hello", survivor));
        h.Connection.SendAck(Doc, survivor.ClientSeq, 10);
        await h.Document.WhenSyncedAsync();
    }

    /// <summary>
    /// Inserts <paramref name="prefix"/> (submitted) then "!" at the end (buffered) into "hello"; the server answers the
    /// submit with the non-retryable <paramref name="code"/>, the client resyncs, gets the snapshot and submits what
    /// survives the rebase, which is returned.
    /// </summary>
    private static async Task<Submit> SubmitErrorThenSnapshotAsync(Harness h, string prefix, ErrorCode code, long version, string text)
    {
        var errors = new EventRecorder<CollabErrorEventArgs>();
        h.Document.Error += errors.Handler;
        h.Document.Insert(0, prefix);
        Submit first = await h.Connection.ExpectSubmitAsync(Doc);
        h.Document.Insert(prefix.Length + 5, "!");
        Assert.Equal(prefix + "hello!", h.Document.Text);

        h.Connection.SendError(code, retryable: false, Doc, first.ClientSeq);
        CollabErrorEventArgs error = await errors.NextAsync();
        Assert.Equal(((CollabErrorCode)(int)code, (long)first.ClientSeq), (error.Code, error.ClientSeq));

        Assert.True((await h.Connection.ExpectSubscribeAsync(Doc)).Snapshot);
        h.Connection.SendSnapshot(Doc, version, text);
        Submit survivor = await h.Connection.ExpectSubmitAsync(Doc);
        Assert.True(survivor.ClientSeq > first.ClientSeq);
        Assert.Equal(version, survivor.BaseVersion);
        return survivor;
    }

    [Fact]
    public async Task VersionGap_ResubscribesFromTheLastVersion()
    {
        await using Harness h = await OpenAsync("abc", 5);
        h.Connection.SendOps(Doc, FakeConnection.Op(7, TextOp.Insert(0, "x")));
        Subscribe resume = await h.Connection.ExpectSubscribeAsync(Doc);
        Assert.False(resume.Snapshot);
        Assert.Equal(5, resume.FromVersion);
        Assert.Equal("abc", h.Document.Text);
    }

    [Fact]
    public async Task DuplicateOps_AreIgnored()
    {
        await using Harness h = await OpenAsync("abc", 5);
        var changes = new EventRecorder<DocumentChangedEventArgs>();
        h.Document.Changed += changes.Handler;
        h.Connection.SendOps(Doc, FakeConnection.Op(5, TextOp.Insert(0, "old")), FakeConnection.Op(6, TextOp.Insert(0, "x")));
        h.Connection.SendOps(Doc, FakeConnection.Op(6, TextOp.Insert(0, "x")), FakeConnection.Op(7, TextOp.Insert(0, "y")));
        await changes.WaitForAsync(c => c.Version == 7);
        Assert.Equal("yxabc", h.Document.Text);
        Assert.Equal(2, changes.All.Count);
    }

    [Theory]
    [InlineData(0u, 1024)] // not announced: the protocol's default, 1 KiB
    [InlineData(100u, 100)]
    [InlineData(4096u, 4096)]
    public async Task Presence_UserDataIsBoundByTheAnnouncedLimit(uint announced, int limit)
    {
        var server = new FakeServer();
        Task<CollabClient> connecting = CollabClient.ConnectAsync(Seed, FakeServer.Options(server));
        (FakeConnection connection, _) = await server.AcceptAndWelcomeAsync(maxPresenceBytes: announced);
        await using CollabClient client = await connecting;
        Task<CollabDocument> opening = client.OpenDocumentAsync(Doc);
        await connection.ExpectSubscribeAsync(Doc);
        connection.SendSnapshot(Doc, 1, "hello");
        CollabDocument document = await opening;

        Assert.Throws<ArgumentOutOfRangeException>(() => document.SetPresence(1, 1, new byte[limit + 1]));
        document.SetPresence(1, 2, new byte[limit]);
        ClientMessage update = await connection.ReceiveAsync(ClientMessage.BodyOneofCase.Presence);
        Assert.Equal(limit, update.Presence.UserData.Length);
    }

    [Theory]
    [InlineData(0u, 256 * 1024)] // not announced: the protocol's default
    [InlineData(100u, 100)]
    public async Task Submit_OpsAreBoundByTheAnnouncedOpSize(uint announced, int limit)
    {
        var server = new FakeServer();
        Task<CollabClient> connecting = CollabClient.ConnectAsync(Seed, FakeServer.Options(server));
        (FakeConnection connection, _) = await server.AcceptAndWelcomeAsync(maxOpBytes: announced);
        await using CollabClient client = await connecting;
        Task<CollabDocument> opening = client.OpenDocumentAsync(Doc);
        await connection.ExpectSubscribeAsync(Doc);
        connection.SendSnapshot(Doc, 1, "");
        CollabDocument document = await opening;

        // An insert of n ASCII characters encodes to n bytes plus a varint header.
        Assert.Throws<ArgumentException>(() => document.Insert(0, new string('x', limit)));
        Assert.Equal("", document.Text);
        document.Insert(0, new string('x', limit - 8));
        Assert.InRange((await connection.ExpectSubmitAsync(Doc)).Op.Length, limit - 8, limit);
    }

    [Fact]
    public async Task Presence_IsSentWhenSyncedAndDeferredWhilePending()
    {
        await using Harness h = await OpenAsync("hello", 5);
        h.Document.SetPresence(1, 3, new byte[] { 7 });
        ClientMessage update = await h.Connection.ReceiveAsync(ClientMessage.BodyOneofCase.Presence);
        Assert.Equal(5, update.Presence.BaseVersion);
        Assert.Equal(1, update.Presence.Selection.Anchor);
        Assert.Equal(3, update.Presence.Selection.Head);
        Assert.Equal(new byte[] { 7 }, update.Presence.UserData.ToByteArray());

        h.Document.Insert(0, "ab");
        Submit submit = await h.Connection.ExpectSubmitAsync(Doc);
        h.Document.SetPresence(4, 4);
        h.Document.SetPresence(5, 5);
        Assert.True(await h.Connection.IsQuietAsync(), "presence waits for the ack");
        h.Connection.SendAck(Doc, submit.ClientSeq, 6);
        ClientMessage deferred = await h.Connection.ReceiveAsync(ClientMessage.BodyOneofCase.Presence);
        Assert.Equal(6, deferred.Presence.BaseVersion);
        Assert.Equal(5, deferred.Presence.Selection.Head);
        Assert.True(await h.Connection.IsQuietAsync(), "updates are coalesced");

        h.Document.ClearPresence();
        ClientMessage cleared = await h.Connection.ReceiveAsync(ClientMessage.BodyOneofCase.Presence);
        Assert.Null(cleared.Presence.Selection);
    }

    [Fact]
    public async Task RemotePresence_IsMappedToLocalPositionsAndFollowsOps()
    {
        await using Harness h = await OpenAsync("hello", 5);
        var presence = new EventRecorder<PresenceChangedEventArgs>();
        h.Document.PresenceChanged += presence.Handler;
        h.Document.Insert(0, "12");
        await h.Connection.ExpectSubmitAsync(Doc);

        h.Connection.Send(new ServerMessage
        {
            Presence = new Presence { DocId = Doc, ClientId = "other", Version = 5, Selection = new Selection { Anchor = 1, Head = 4 }, UserData = ByteString.CopyFrom(1, 2) },
        });
        PresenceChangedEventArgs shown = await presence.NextAsync();
        Assert.Equal(new RemotePresence("other", 3, 6, shown.Presence!.UserData), shown.Presence);
        Assert.Equal(new byte[] { 1, 2 }, shown.Presence.UserData.ToArray());

        h.Connection.SendOps(Doc, FakeConnection.Op(6, TextOp.Insert(0, "xyz"), "third", 1));
        PresenceChangedEventArgs moved = await presence.NextAsync();
        Assert.Equal((6, 9), (moved.Presence!.Anchor, moved.Presence.Head));
        Assert.Equal(moved.Presence, Assert.Single(h.Document.GetPresences()));

        h.Connection.Send(new ServerMessage { Presence = new Presence { DocId = Doc, ClientId = "other", Version = 6 } });
        PresenceChangedEventArgs left = await presence.NextAsync();
        Assert.Null(left.Presence);
        Assert.Empty(h.Document.GetPresences());
    }

    [Fact]
    public async Task Presence_IsResentAfterAReconnect()
    {
        await using Harness h = await OpenAsync("hello", 5);
        h.Document.SetPresence(2, 2);
        await h.Connection.ReceiveAsync(ClientMessage.BodyOneofCase.Presence);
        await h.ReconnectAsync();
        await h.Connection.ExpectSubscribeAsync(Doc);
        h.Connection.SendSubscribed(Doc, 5, 5);
        ClientMessage again = await h.Connection.ReceiveAsync(ClientMessage.BodyOneofCase.Presence);
        Assert.Equal(2, again.Presence.Selection.Anchor);
    }

    [Fact]
    public async Task Submit_RejectsOpsThatDoNotFitAndAfterDispose()
    {
        await using Harness h = await OpenAsync("abc", 1);
        Assert.Throws<Collab.Engine.OtException>(() => h.Document.Delete(2, 5));
        Assert.Equal("abc", h.Document.Text);
        Assert.False(h.Document.HasPendingOps);

        await h.Document.DisposeAsync();
        ClientMessage unsubscribe = await h.Connection.ReceiveAsync(ClientMessage.BodyOneofCase.Unsubscribe);
        Assert.Equal(Doc, unsubscribe.Unsubscribe.DocId);
        Assert.Throws<ObjectDisposedException>(() => h.Document.Insert(0, "x"));
    }

    [Fact]
    public async Task ClosingTheClient_FaultsPendingSyncWaits()
    {
        Harness h = await OpenAsync();
        h.Document.Insert(0, "x");
        Task synced = h.Document.WhenSyncedAsync();
        await h.Client.DisposeAsync();
        await Assert.ThrowsAsync<CollabConnectionException>(() => synced);
    }

    [Theory]
    [InlineData(ErrorCode.Forbidden)]
    [InlineData(ErrorCode.DocDeleted)]
    public async Task UnsolicitedForbiddenOrDocDeleted_ClosesTheDocumentWithTheTypedCode(ErrorCode code)
    {
        await using Harness h = await OpenAsync();
        h.Document.Insert(0, "x");
        await h.Connection.ExpectSubmitAsync(Doc);
        Task synced = h.Document.WhenSyncedAsync();

        // The server ended the subscription on its own (rights revoked by a re-authentication, or the document deleted).
        h.Connection.SendError(code, retryable: false, Doc);
        CollabServerException error = await Assert.ThrowsAsync<CollabServerException>(() => synced);
        Assert.Equal((CollabErrorCode)(int)code, error.Code);
        Assert.Throws<ObjectDisposedException>(() => h.Document.Insert(0, "y"));

        // Nothing resubscribes it.
        Assert.True(await h.Connection.IsQuietAsync(100));
    }
}
