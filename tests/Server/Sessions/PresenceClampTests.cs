using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Server.Tests.Sessions;

/// <summary>
/// Issue 13 §5: presence selections were relayed without clamping (a selection (1000000, 3) on a 5-code-point document
/// reached the other clients verbatim). The server clamps each end to the document's length at the selection's version,
/// then moves it to the current version.
/// </summary>
public sealed class PresenceClampTests : IAsyncLifetime
{
    private SessionHarness _harness = null!;

    public async Task InitializeAsync() => _harness = await SessionHarness.StartAsync(auth: a => a.Mode = AuthMode.Anonymous);

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    [Theory]
    [InlineData(1_000_000, 3, 5, 3)]
    [InlineData(3, 1_000_000, 3, 5)]
    [InlineData(long.MaxValue, long.MinValue, 5, 0)]
    [InlineData(-7, 2, 0, 2)]
    [InlineData(5, 5, 5, 5)]
    public async Task A_selection_outside_the_document_is_clamped_to_its_length_before_anyone_sees_it(long anchor, long head, int expectedAnchor, int expectedHead)
    {
        (FakeConnection writer, FakeConnection watcher) = await TwoClientsOnAsync("clamp/1", "hello");

        await writer.SendAsync(Presence("clamp/1", 1, anchor, head));

        ServerMessage shown = await watcher.NextAsync(m => m.Presence is { Selection: not null });
        Assert.Equal((1L, expectedAnchor, expectedHead), (shown.Presence.Version, (int)shown.Presence.Selection.Anchor, (int)shown.Presence.Selection.Head));

        // A client subscribing later gets the stored (clamped) selection in its presence snapshot too.
        FakeConnection late = await _harness.OpenAsync(SessionPrincipal.Anonymous);
        await late.SubscribeAndWaitAsync("clamp/1");
        ServerMessage snapshot = await late.NextAsync(m => m.Presence is { Selection: not null });
        Assert.Equal((expectedAnchor, expectedHead), ((int)snapshot.Presence.Selection.Anchor, (int)snapshot.Presence.Selection.Head));
    }

    [Fact]
    public async Task A_selection_made_at_an_older_version_is_clamped_to_that_version_s_length_then_moved()
    {
        (FakeConnection writer, FakeConnection watcher) = await TwoClientsOnAsync("clamp/2", "hello");
        await watcher.SubmitAsync("clamp/2", 1, 1, SessionHarness.Insert(0, ">> "));
        await watcher.NextAsync(m => m.Ack is not null);

        // Made at version 1 (length 5): the end is 5 there, which the insert at 0 moves to 8 (the caret at 0 stays before
        // another client's insert there).
        await writer.SendAsync(Presence("clamp/2", 1, 1_000_000, 0));

        ServerMessage shown = await watcher.NextAsync(m => m.Presence is { Selection: not null });
        Assert.Equal((2L, 8, 0), (shown.Presence.Version, (int)shown.Presence.Selection.Anchor, (int)shown.Presence.Selection.Head));
    }

    private async Task<(FakeConnection Writer, FakeConnection Watcher)> TwoClientsOnAsync(string docId, string text)
    {
        FakeConnection writer = await _harness.OpenAsync(SessionPrincipal.Anonymous);
        FakeConnection watcher = await _harness.OpenAsync(SessionPrincipal.Anonymous);
        await writer.SubscribeAndWaitAsync(docId);
        await writer.SubmitAsync(docId, 1, 0, SessionHarness.Insert(0, text));
        await writer.NextAsync(m => m.Ack is not null);
        await watcher.SubscribeAndWaitAsync(docId);
        return (writer, watcher);
    }

    private static ClientMessage Presence(string docId, long baseVersion, long anchor, long head) => new()
    {
        Presence = new PresenceUpdate { DocId = docId, BaseVersion = baseVersion, Selection = new Selection { Anchor = anchor, Head = head } },
    };
}
