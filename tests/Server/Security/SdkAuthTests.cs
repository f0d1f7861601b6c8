using System.Collections.Concurrent;
using Collab.Client;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Server.Tests.Security;

/// <summary>
/// The C# SDK against the real server in JWT mode: the token provider on every (re)connect, refresh over the
/// open connection on AuthExpiring, reconnect after 4001, read-only documents, and giving up on 401.
/// Expiry here runs on the real clock, so these tests use tokens of a few seconds. Over the Pipelines transport here,
/// over ClientWebSocket in <see cref="SdkAuthTestsOverClientWebSocket"/>.
/// </summary>
[Trait("Category", "Slow")]
public class SdkAuthTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private readonly TokenFactory _tokens = new();
    private readonly TransportKind _transport;
    private SecureServer _server = null!;

    public SdkAuthTests()
        : this(TransportKind.Pipelines)
    {
    }

    protected SdkAuthTests(TransportKind transport) => _transport = transport;

    public async Task InitializeAsync() => _server = await SecureServer.StartAsync(TokenFactory.Hs256Settings(new()
    {
        ["Auth:ClockSkew"] = "00:00:00",
        ["Auth:ExpiryWarning"] = "00:00:04", // generous: the refresh round trip must fit even on a loaded CI machine
    }));

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Theory]
    [InlineData(TokenDelivery.AuthorizationHeader)]
    [InlineData(TokenDelivery.SubProtocol)]
    [InlineData(TokenDelivery.QueryParameter)]
    public async Task TheSdkAuthenticatesWithEachDelivery(TokenDelivery delivery)
    {
        using var cts = new CancellationTokenSource(Timeout);
        await using CollabClient client = await CollabClient.ConnectAsync(_server.WebSocketUri, Options(_ => _tokens.Create("alice"), delivery), cts.Token);
        await using CollabDocument document = await client.OpenDocumentAsync("sdk/" + delivery, cts.Token);
        document.Insert(0, "hello");
        await document.WhenSyncedAsync(cts.Token);
        Assert.Equal(1, document.Version);
    }

    [Fact]
    public async Task TheSdkRefreshesItsTokenOverTheOpenConnection()
    {
        using var cts = new CancellationTokenSource(Timeout);
        int calls = 0;
        var disconnects = new ConcurrentQueue<DisconnectedEventArgs>();
        CollabClientOptions options = Options(_ =>
        {
            Interlocked.Increment(ref calls);
            return _tokens.Create("alice", expires: DateTimeOffset.UtcNow.AddSeconds(6));
        });
        await using CollabClient client = await CollabClient.ConnectAsync(_server.WebSocketUri, options, cts.Token);
        client.Disconnected += (_, e) => disconnects.Enqueue(e);
        await using CollabDocument document = await client.OpenDocumentAsync("sdk/refresh", cts.Token);

        // Well past the first token's expiry the connection is the same one, kept alive by Reauthenticate.
        await Task.Delay(TimeSpan.FromSeconds(7), cts.Token);
        Assert.Empty(disconnects);
        Assert.True(Volatile.Read(ref calls) >= 3, $"the token provider was called {calls} times");
        document.Insert(0, "still connected");
        await document.WhenSyncedAsync(cts.Token);
    }

    [Fact]
    public async Task WithoutAFreshTokenTheConnectionClosesWith4001AndTheSdkReconnects()
    {
        using var cts = new CancellationTokenSource(Timeout);
        string shortLived = _tokens.Create("alice", expires: DateTimeOffset.UtcNow.AddSeconds(3));
        int calls = 0;
        var disconnected = new TaskCompletionSource<DisconnectedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        var reconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // The provider hands out the same short token (a stale cache) for the connect and the refresh the server
        // asks for; a re-sent token does not move the deadline, so the server closes with 4001 at its expiry and
        // the reconnect gets a fresh token.
        CollabClientOptions options = Options(_ => Interlocked.Increment(ref calls) <= 2
            ? shortLived
            : _tokens.Create("alice", expires: DateTimeOffset.UtcNow.AddMinutes(10)));
        await using CollabClient client = await CollabClient.ConnectAsync(_server.WebSocketUri, options, cts.Token);
        client.Disconnected += (_, e) => disconnected.TrySetResult(e);
        client.Connected += (_, _) =>
        {
            if (disconnected.Task.IsCompleted)
            {
                reconnected.TrySetResult();
            }
        };
        await using CollabDocument document = await client.OpenDocumentAsync("sdk/expire", cts.Token);
        document.Insert(0, "before");
        await document.WhenSyncedAsync(cts.Token);

        DisconnectedEventArgs lost = await disconnected.Task.WaitAsync(cts.Token);
        Assert.Equal(DisconnectReason.AuthExpired, lost.Reason);
        Assert.Equal(CloseCodes.AuthExpired, lost.CloseStatus);
        Assert.True(lost.WillReconnect);
        await reconnected.Task.WaitAsync(cts.Token);

        document.Insert(6, " after");
        await document.WhenSyncedAsync(cts.Token);
        Assert.Equal("before after", document.Text);
    }

    [Fact]
    public async Task AReadOnlyClientsEditsAreRefusedAndRolledBack()
    {
        using var cts = new CancellationTokenSource(Timeout);
        await using CollabClient writer = await CollabClient.ConnectAsync(_server.WebSocketUri, Options(_ => _tokens.Create("writer", """{"write":["ro/*"]}""")), cts.Token);
        await using CollabDocument writable = await writer.OpenDocumentAsync("ro/1", cts.Token);
        writable.Insert(0, "original");
        await writable.WhenSyncedAsync(cts.Token);

        await using CollabClient reader = await CollabClient.ConnectAsync(_server.WebSocketUri, Options(_ => _tokens.Create("reader", """{"read":["ro/*"]}""")), cts.Token);
        var errors = new ConcurrentQueue<CollabErrorEventArgs>();
        await using CollabDocument readOnly = await reader.OpenDocumentAsync("ro/1", cts.Token);
        readOnly.Error += (_, e) => errors.Enqueue(e);
        Assert.Equal("original", readOnly.Text);

        readOnly.Insert(0, "vandalised ");
        await readOnly.WhenSyncedAsync(cts.Token);
        Assert.Contains(errors, e => e.Code == CollabErrorCode.Forbidden);
        Assert.Equal("original", readOnly.Text);
        Assert.Equal("original", writable.Text);
        Assert.Equal(1, writable.Version);
    }

    [Fact]
    public async Task TheSdkGivesUpOn401()
    {
        using var cts = new CancellationTokenSource(Timeout);
        CollabConnectionException error = await Assert.ThrowsAsync<CollabConnectionException>(() =>
            CollabClient.ConnectAsync(_server.WebSocketUri, Options(_ => _tokens.Create(expires: DateTimeOffset.UtcNow.AddMinutes(-5))), cts.Token));
        Assert.Equal(401, error.HttpStatusCode);
    }

    private CollabClientOptions Options(Func<CancellationToken, string> token, TokenDelivery delivery = TokenDelivery.AuthorizationHeader) => new()
    {
        Transport = _transport,
        AccessTokenProvider = ct => ValueTask.FromResult<string?>(token(ct)),
        TokenDelivery = delivery,
        Reconnect = new ReconnectPolicy { MinDelay = TimeSpan.FromMilliseconds(50), MaxDelay = TimeSpan.FromMilliseconds(200) },
    };
}

public sealed class SdkAuthTestsOverClientWebSocket() : SdkAuthTests(TransportKind.ClientWebSocket);
