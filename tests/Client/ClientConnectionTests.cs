using System.Net.WebSockets;
using Collab.Client.Transport;
using Collab.Protocol.V1;

namespace Collab.Client.Tests;

/// <summary>The SDK's connection life cycle against a scripted server: in memory here, over each real transport in the subclasses.</summary>
public class ClientConnectionTests
{
    private static readonly Uri Seed = new("ws://seed.test/ws");
    private readonly FakeWire _wire;

    public ClientConnectionTests()
        : this(FakeWire.InMemory)
    {
    }

    protected ClientConnectionTests(FakeWire wire) => _wire = wire;

    private FakeServer NewServer() => new(_wire);

    private static async Task<(CollabClient Client, FakeConnection Connection, Hello Hello)> ConnectAsync(FakeServer server, CollabClientOptions options)
    {
        Task<CollabClient> connecting = CollabClient.ConnectAsync(Seed, options);
        (FakeConnection connection, Hello hello) = await server.AcceptAndWelcomeAsync();
        return (await connecting, connection, hello);
    }

    private static CollabClientOptions Options(FakeServer server, ReconnectPolicy? policy = null, Func<CancellationToken, ValueTask<string?>>? tokens = null) => new()
    {
        TransportFactory = server,
        Reconnect = policy ?? new ReconnectPolicy { MinDelay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromMilliseconds(5) },
        PingInterval = Timeout.InfiniteTimeSpan,
        AccessTokenProvider = tokens,
    };

    private static Func<CancellationToken, ValueTask<string?>> Tokens(params string[] tokens)
    {
        int next = 0;
        return _ => ValueTask.FromResult<string?>(tokens[Math.Min(Interlocked.Increment(ref next) - 1, tokens.Length - 1)]);
    }

    [Fact]
    public async Task Connect_SaysHelloAndAdoptsTheAssignedClientId()
    {
        var server = NewServer();
        (CollabClient client, FakeConnection connection, Hello hello) = await ConnectAsync(server, Options(server, tokens: Tokens("t1")));
        await using (client)
        {
            Assert.Equal(server.Wire != FakeWire.InMemory, connection.SocketEnd is not null);
            if (connection.SocketEnd is { } wire)
            {
                // Over a socket the request really went out as an RFC 6455 upgrade with the token and the subprotocol.
                Assert.Equal("Bearer t1", wire.Headers["Authorization"]);
                Assert.Equal(CollabClientOptions.DefaultSubProtocol, wire.Headers["Sec-WebSocket-Protocol"]);
            }

            Assert.Equal(1u, hello.ProtocolVersion);
            Assert.Equal(string.Empty, hello.ClientId);
            Assert.Equal("collab-dotnet/1.0", hello.ClientName);
            Assert.Equal("c1", client.ClientId);
            Assert.Equal(CollabConnectionState.Connected, client.State);
            Assert.Equal("fake", client.ServerId);
            TransportConnectRequest request = Assert.Single(server.Requests);
            Assert.Equal(Seed, request.Uri);
            Assert.Equal("t1", request.AccessToken);
            Assert.Equal(CollabClientOptions.DefaultSubProtocol, request.SubProtocol);
        }
    }

    [Fact]
    public async Task Connect_ResumesTheConfiguredClientIdAndContinuesItsSeqs()
    {
        var server = NewServer();
        var options = new CollabClientOptions { TransportFactory = server, ClientId = "c1", LastClientSeq = 41, PingInterval = Timeout.InfiniteTimeSpan };
        (CollabClient client, _, Hello hello) = await ConnectAsync(server, options);
        await using (client)
        {
            Assert.Equal("c1", hello.ClientId);
            Assert.Equal(41L, client.LastClientSeq);
        }
    }

    [Fact]
    public async Task Connect_FailsWithTheServersHandshakeError()
    {
        var server = NewServer();
        Task<CollabClient> connecting = CollabClient.ConnectAsync(Seed, Options(server));
        FakeConnection connection = await server.AcceptAsync();
        await connection.ReceiveAsync(ClientMessage.BodyOneofCase.Hello);
        connection.SendError(ErrorCode.ProtocolVersion, retryable: false);
        var error = await Assert.ThrowsAsync<CollabServerException>(() => connecting);
        Assert.Equal(CollabErrorCode.ProtocolVersion, error.Code);
    }

    [Fact]
    public async Task Connect_ReportsARejectedUpgrade()
    {
        var server = NewServer();
        server.FailNextConnect(new TransportConnectException(401, null));
        var error = await Assert.ThrowsAsync<CollabConnectionException>(() => CollabClient.ConnectAsync(Seed, Options(server)));
        Assert.Equal(401, error.HttpStatusCode);
    }

    [Fact]
    public async Task Connect_FollowsARedirectDuringTheHandshake()
    {
        var server = NewServer();
        Task<CollabClient> connecting = CollabClient.ConnectAsync(Seed, Options(server));
        FakeConnection first = await server.AcceptAsync();
        await first.ReceiveAsync(ClientMessage.BodyOneofCase.Hello);
        first.Send(new ServerMessage { Redirect = new Redirect { Url = "ws://node2.test/ws", RetryAfterMs = 1, Reason = "draining" } });
        (FakeConnection second, _) = await server.AcceptAndWelcomeAsync();
        await using CollabClient client = await connecting;
        Assert.Equal(new Uri("ws://node2.test/ws"), second.Request.Uri);
    }

    [Fact]
    public async Task Connect_GivesUpAfterTooManyRedirects()
    {
        var server = NewServer();
        var options = new CollabClientOptions { TransportFactory = server, MaxRedirects = 1, PingInterval = Timeout.InfiniteTimeSpan };
        Task<CollabClient> connecting = CollabClient.ConnectAsync(Seed, options);
        for (int i = 0; i < 2; i++)
        {
            FakeConnection connection = await server.AcceptAsync();
            await connection.ReceiveAsync(ClientMessage.BodyOneofCase.Hello);
            connection.Send(new ServerMessage { Redirect = new Redirect { RetryAfterMs = 0 } });
        }

        await Assert.ThrowsAsync<CollabConnectionException>(() => connecting);
    }

    [Fact]
    public async Task Drop_ReconnectsWithTheSameClientIdAndAFreshToken()
    {
        var server = NewServer();
        (CollabClient client, FakeConnection connection, _) = await ConnectAsync(server, Options(server, tokens: Tokens("t1", "t2")));
        await using (client)
        {
            var disconnected = new EventRecorder<DisconnectedEventArgs>();
            var reconnecting = new EventRecorder<ReconnectingEventArgs>();
            var connected = new EventRecorder<ConnectedEventArgs>();
            client.Disconnected += disconnected.Handler;
            client.Reconnecting += reconnecting.Handler;
            client.Connected += connected.Handler;

            connection.Drop();
            (FakeConnection second, Hello hello) = await server.AcceptAndWelcomeAsync();

            DisconnectedEventArgs lost = await disconnected.NextAsync();
            Assert.Equal(DisconnectReason.TransportError, lost.Reason);
            Assert.True(lost.WillReconnect);
            ReconnectingEventArgs attempt = await reconnecting.NextAsync();
            Assert.Equal(1, attempt.Attempt);
            Assert.InRange(attempt.Delay, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(5));
            Assert.True((await connected.NextAsync()).Resumed);
            Assert.Equal("c1", hello.ClientId);
            Assert.Equal("t2", second.Request.AccessToken);
            Assert.Equal(CollabConnectionState.Connected, client.State);
        }
    }

    [Fact]
    public async Task Reconnect_BacksOffThroughFailedAttempts()
    {
        var server = NewServer();
        (CollabClient client, FakeConnection connection, _) = await ConnectAsync(server, Options(server));
        await using (client)
        {
            var reconnecting = new EventRecorder<ReconnectingEventArgs>();
            client.Reconnecting += reconnecting.Handler;
            server.FailNextConnect(new WebSocketException("refused"));
            server.FailNextConnect(new TransportConnectException(503, null));
            connection.Close(WebSocketCloseStatus.EndpointUnavailable, "going away");
            await server.AcceptAndWelcomeAsync();

            Assert.Equal(1, (await reconnecting.NextAsync()).Attempt);
            Assert.Equal(2, (await reconnecting.NextAsync()).Attempt);
            Assert.Equal(3, (await reconnecting.NextAsync()).Attempt);
            Assert.Equal(4, server.ConnectAttempts);
        }
    }

    [Fact]
    public async Task Reconnect_GivesUpWhenAttemptsAreExhausted()
    {
        var server = NewServer();
        var policy = new ReconnectPolicy { MinDelay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromMilliseconds(2), MaxAttempts = 2 };
        (CollabClient client, FakeConnection connection, _) = await ConnectAsync(server, Options(server, policy));
        await using (client)
        {
            var disconnected = new EventRecorder<DisconnectedEventArgs>();
            client.Disconnected += disconnected.Handler;
            server.FailNextConnect(new WebSocketException("refused"));
            server.FailNextConnect(new WebSocketException("refused"));
            connection.Drop();

            Assert.True((await disconnected.NextAsync()).WillReconnect);
            DisconnectedEventArgs final = await disconnected.NextAsync();
            Assert.Equal(DisconnectReason.RetriesExhausted, final.Reason);
            Assert.False(final.WillReconnect);
            Assert.Equal(CollabConnectionState.Closed, client.State);
            Assert.Equal(3, server.ConnectAttempts);
            await Assert.ThrowsAsync<CollabConnectionException>(() => client.OpenDocumentAsync("d"));
        }
    }

    [Fact]
    public async Task Reconnect_StopsOnAnUnauthorizedUpgrade()
    {
        var server = NewServer();
        (CollabClient client, FakeConnection connection, _) = await ConnectAsync(server, Options(server));
        await using (client)
        {
            var disconnected = new EventRecorder<DisconnectedEventArgs>();
            client.Disconnected += disconnected.Handler;
            server.FailNextConnect(new TransportConnectException(401, null));
            connection.Drop();

            await disconnected.NextAsync();
            DisconnectedEventArgs final = await disconnected.NextAsync();
            Assert.Equal(DisconnectReason.Rejected, final.Reason);
            Assert.False(final.WillReconnect);
            Assert.Equal(2, server.ConnectAttempts);
        }
    }

    [Fact]
    public async Task Close4003_IsFinal()
    {
        var server = NewServer();
        (CollabClient client, FakeConnection connection, _) = await ConnectAsync(server, Options(server));
        await using (client)
        {
            var disconnected = new EventRecorder<DisconnectedEventArgs>();
            client.Disconnected += disconnected.Handler;
            connection.Close((WebSocketCloseStatus)CloseCodes.Forbidden, "forbidden");

            DisconnectedEventArgs lost = await disconnected.NextAsync();
            Assert.Equal(DisconnectReason.Rejected, lost.Reason);
            Assert.Equal(CloseCodes.Forbidden, lost.CloseStatus);
            Assert.False(lost.WillReconnect);
            Assert.Equal(CollabConnectionState.Closed, client.State);
            Assert.Equal(1, server.ConnectAttempts);
        }
    }

    [Fact]
    public async Task Close4001_ReconnectsAtOnceWithAFreshToken()
    {
        var server = NewServer();
        (CollabClient client, FakeConnection connection, _) = await ConnectAsync(server, Options(server, tokens: Tokens("old", "new")));
        await using (client)
        {
            var disconnected = new EventRecorder<DisconnectedEventArgs>();
            var reconnecting = new EventRecorder<ReconnectingEventArgs>();
            client.Disconnected += disconnected.Handler;
            client.Reconnecting += reconnecting.Handler;
            connection.Close((WebSocketCloseStatus)CloseCodes.AuthExpired, "token expired");

            (FakeConnection second, _) = await server.AcceptAndWelcomeAsync();
            Assert.Equal(DisconnectReason.AuthExpired, (await disconnected.NextAsync()).Reason);
            Assert.Equal(TimeSpan.Zero, (await reconnecting.NextAsync()).Delay);
            Assert.Equal("new", second.Request.AccessToken);
        }
    }

    [Fact]
    public async Task AuthExpiring_IsAnsweredWithReauthenticate()
    {
        var server = NewServer();
        (CollabClient client, FakeConnection connection, _) = await ConnectAsync(server, Options(server, tokens: Tokens("old", "fresh")));
        await using (client)
        {
            connection.Send(new ServerMessage { AuthExpiring = new AuthExpiring { ExpiresAtMs = 1 } });
            ClientMessage reauth = await connection.ReceiveAsync(ClientMessage.BodyOneofCase.Reauth);
            Assert.Equal("fresh", reauth.Reauth.Token);
        }
    }

    [Fact]
    public async Task Redirect_ClosesAndReconnectsToTheTarget()
    {
        var server = NewServer();
        (CollabClient client, FakeConnection connection, _) = await ConnectAsync(server, Options(server));
        await using (client)
        {
            var disconnected = new EventRecorder<DisconnectedEventArgs>();
            client.Disconnected += disconnected.Handler;
            connection.Send(new ServerMessage { Redirect = new Redirect { Url = "/other", RetryAfterMs = 0, Reason = "ownership moved" } });

            (FakeConnection second, Hello hello) = await server.AcceptAndWelcomeAsync();
            Assert.Equal(WebSocketCloseStatus.NormalClosure, connection.ClientCloseStatus);
            Assert.Equal(new Uri("ws://seed.test/other"), second.Request.Uri);
            Assert.Equal("c1", hello.ClientId);
            DisconnectedEventArgs lost = await disconnected.NextAsync();
            Assert.Equal(DisconnectReason.Redirected, lost.Reason);
            Assert.Equal("ownership moved", lost.Description);
        }
    }

    [Fact]
    public async Task Redirect_WithoutUrl_ReconnectsToTheSameAddress()
    {
        var server = NewServer();
        (CollabClient client, FakeConnection connection, _) = await ConnectAsync(server, Options(server));
        await using (client)
        {
            connection.Send(new ServerMessage { Redirect = new Redirect { RetryAfterMs = 20 } });
            (FakeConnection second, _) = await server.AcceptAndWelcomeAsync();
            Assert.Equal(Seed, second.Request.Uri);
        }
    }

    private static CollabClientOptions KeepAliveOptions(FakeServer server, int pongTimeoutMs) => new()
    {
        TransportFactory = server,
        PingInterval = TimeSpan.FromMilliseconds(20),
        PongTimeout = TimeSpan.FromMilliseconds(pongTimeoutMs),
        Reconnect = new ReconnectPolicy { MinDelay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromMilliseconds(2) },
    };

    [Fact]
    public async Task KeepAlive_PingsAndStaysConnectedWhileTheServerAnswers()
    {
        var server = NewServer();
        (CollabClient client, FakeConnection connection, _) = await ConnectAsync(server, KeepAliveOptions(server, pongTimeoutMs: 2000));
        await using (client)
        {
            var disconnected = new EventRecorder<DisconnectedEventArgs>();
            client.Disconnected += disconnected.Handler;
            ulong last = 0;
            for (int i = 0; i < 3; i++)
            {
                ClientMessage ping = await connection.ReceiveAsync(ClientMessage.BodyOneofCase.Ping);
                Assert.True(ping.Ping.Nonce > last);
                last = ping.Ping.Nonce;
                connection.Send(new ServerMessage { Pong = new Pong { Nonce = ping.Ping.Nonce } });
            }

            Assert.Empty(disconnected.All);
            Assert.Equal(CollabConnectionState.Connected, client.State);
        }
    }

    [Fact]
    public async Task KeepAlive_DropsASilentConnectionAndReconnects()
    {
        var server = NewServer();
        // The handler can only be attached once ConnectAsync returned: with a 20 ms pong timeout the drop came before that on a
        // loaded machine and the test waited for an event already raised. 500 ms leaves the attach that long to happen.
        (CollabClient client, _, _) = await ConnectAsync(server, KeepAliveOptions(server, pongTimeoutMs: 500));
        await using (client)
        {
            var disconnected = new EventRecorder<DisconnectedEventArgs>();
            client.Disconnected += disconnected.Handler;
            Assert.Equal(DisconnectReason.KeepAliveTimeout, (await disconnected.NextAsync()).Reason);
            await server.AcceptAndWelcomeAsync();
        }
    }

    [Fact]
    public async Task UndecodableServerMessage_ClosesWith1007AndReconnects()
    {
        var server = NewServer();
        (CollabClient client, FakeConnection connection, _) = await ConnectAsync(server, Options(server));
        await using (client)
        {
            connection.SendRaw([0xFF, 0xFF, 0xFF, 0xFF]);
            await server.AcceptAndWelcomeAsync();
            Assert.Equal(WebSocketCloseStatus.InvalidPayloadData, connection.ClientCloseStatus);
        }
    }

    [Fact]
    public async Task ServerError_IsRaised()
    {
        var server = NewServer();
        (CollabClient client, FakeConnection connection, _) = await ConnectAsync(server, Options(server));
        await using (client)
        {
            var errors = new EventRecorder<CollabErrorEventArgs>();
            client.Error += errors.Handler;
            connection.SendError(ErrorCode.RateLimited, retryable: true);
            CollabErrorEventArgs error = await errors.NextAsync();
            Assert.Equal(CollabErrorCode.RateLimited, error.Code);
            Assert.True(error.Retryable);
        }
    }

    [Fact]
    public async Task Dispose_ClosesNormallyAndEndsTheClient()
    {
        var server = NewServer();
        (CollabClient client, FakeConnection connection, _) = await ConnectAsync(server, Options(server));
        var disconnected = new EventRecorder<DisconnectedEventArgs>();
        client.Disconnected += disconnected.Handler;
        await client.DisposeAsync();

        Assert.Equal(WebSocketCloseStatus.NormalClosure, connection.ClientCloseStatus);
        Assert.Equal(CollabConnectionState.Closed, client.State);
        DisconnectedEventArgs final = Assert.Single(disconnected.All);
        Assert.Equal(DisconnectReason.ClientClosed, final.Reason);
        Assert.False(final.WillReconnect);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => client.OpenDocumentAsync("d"));
        Assert.False(server.HasPendingConnection);
    }

    [Fact]
    public void WebSocketTransport_AppendsTheTokenToTheQuery()
    {
        Uri uri = WebSocketTransportFactory.AppendQuery(new Uri("wss://h.test/ws?x=1"), "access_token", "a b");
        Assert.Equal("wss://h.test/ws?x=1&access_token=a%20b", uri.AbsoluteUri);
    }
}
