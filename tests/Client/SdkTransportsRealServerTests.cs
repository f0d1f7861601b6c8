using System.Buffers;
using System.Collections.Concurrent;
using System.Net.Security;
using System.Net.WebSockets;
using Collab.Client.Transport;
using Collab.Server.Tests.Security.Infrastructure;
using Collab.Server.Tests.Transport.Infrastructure;

namespace Collab.Client.Tests;

/// <summary>
/// The SDK over each transport against the whole real server (CollabServerHost on a loopback port): concurrent
/// editing, big messages both ways, the server's WebSocket keep-alive, a dropped connection, presence, and wss://.
/// </summary>
public sealed class SdkTransportsRealServerTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static TheoryData<TransportKind> Transports => new() { TransportKind.Pipelines, TransportKind.ClientWebSocket };

    private static Dictionary<string, string?> Settings(params (string Key, string Value)[] extra)
    {
        var settings = new Dictionary<string, string?>
        {
            // The tests submit in bursts; the per-connection rate limits are not what they are about.
            ["Limits:OpsPerSecond"] = "100000",
            ["Limits:OpsBurst"] = "100000",
            ["Limits:UserOpsPerSecond"] = "100000",
            ["Limits:UserOpsBurst"] = "100000",
            ["Limits:MessagesPerSecond"] = "100000",
            ["Limits:MessageBurst"] = "100000",
        };
        foreach ((string key, string value) in extra)
        {
            settings[key] = value;
        }

        return settings;
    }

    private static CollabClientOptions Options(TransportKind transport, IClientTransportFactory? factory = null) => new()
    {
        Transport = transport,
        TransportFactory = factory!,
        Reconnect = new ReconnectPolicy { MinDelay = TimeSpan.FromMilliseconds(10), MaxDelay = TimeSpan.FromMilliseconds(100) },
    };

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task ConcurrentEditorsConverge(TransportKind transport)
    {
        using var cts = new CancellationTokenSource(Timeout);
        await using SecureServer server = await SecureServer.StartAsync(Settings());
        var clients = new List<CollabClient>();
        var documents = new List<CollabDocument>();
        for (int i = 0; i < 3; i++)
        {
            clients.Add(await CollabClient.ConnectAsync(server.WebSocketUri, Options(transport), cts.Token));
            documents.Add(await clients[i].OpenDocumentAsync("converge", cts.Token));
        }

        try
        {
            var random = new Random(17);
            for (int round = 0; round < 200; round++)
            {
                CollabDocument document = documents[round % documents.Count];
                int length = document.Snapshot.Length;
                if (length > 0 && random.Next(4) == 0)
                {
                    int at = random.Next(length);
                    document.Delete(at, Math.Min(3, length - at));
                }
                else
                {
                    document.Insert(random.Next(length + 1), $"<{round}>");
                }

                if (round % 25 == 0)
                {
                    await Task.Delay(1, cts.Token);
                }
            }

            documents[1].Insert(0, "[end]");
            foreach (CollabDocument document in documents)
            {
                await document.WhenSyncedAsync(cts.Token);
            }

            await WaitUntilAsync(() => documents.All(d => d.Version == documents[0].Version && d.Text == documents[0].Text), cts.Token);
            // Edits made while one is in flight are composed into the next submit, so versions count submits, not edits.
            Assert.True(documents[0].Version >= documents.Count, $"version {documents[0].Version}");
            Assert.Contains("[end]", documents[0].Text, StringComparison.Ordinal); // no concurrent delete can have known it
        }
        finally
        {
            foreach (CollabClient client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task LargeOpsAndALargeSnapshotCrossIntact(TransportKind transport)
    {
        using var cts = new CancellationTokenSource(Timeout);
        await using SecureServer server = await SecureServer.StartAsync(Settings());
        await using CollabClient writer = await CollabClient.ConnectAsync(server.WebSocketUri, Options(transport), cts.Token);
        await using CollabDocument written = await writer.OpenDocumentAsync("big", cts.Token);
        var random = new Random(3);
        for (int i = 0; i < 4; i++)
        {
            // ~200 KB per op: frames with the 8-byte length spanning many pipe segments; 800 KB in the snapshot.
            written.Insert(written.Snapshot.Length, new string((char)('a' + random.Next(26)), 200_000) + "é🌍");
            await written.WhenSyncedAsync(cts.Token);
        }

        await using CollabClient reader = await CollabClient.ConnectAsync(server.WebSocketUri, Options(transport), cts.Token);
        await using CollabDocument read = await reader.OpenDocumentAsync("big", cts.Token);
        Assert.Equal(written.Text, read.Text);
        Assert.Equal(4, read.Version);
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task TheServersWebSocketPingsAreAnswered(TransportKind transport)
    {
        // The server pings every 100 ms and drops a connection after 2 unanswered pings; the SDK's own Ping is off,
        // so only the transport's pongs can keep this connection alive for 2 s.
        using var cts = new CancellationTokenSource(Timeout);
        await using SecureServer server = await SecureServer.StartAsync(Settings(
            ("Transport:PingInterval", "00:00:00.100"), ("Transport:MaxMissedPongs", "2"), ("Transport:HeartbeatInterval", "00:00:00.050")));
        CollabClientOptions options = Options(transport);
        await using CollabClient client = await CollabClient.ConnectAsync(server.WebSocketUri, new CollabClientOptions
        {
            Transport = options.Transport,
            Reconnect = options.Reconnect,
            PingInterval = System.Threading.Timeout.InfiniteTimeSpan,
        }, cts.Token);
        var disconnects = new ConcurrentQueue<DisconnectedEventArgs>();
        client.Disconnected += (_, e) => disconnects.Enqueue(e);
        await using CollabDocument document = await client.OpenDocumentAsync("pinged", cts.Token);
        await Task.Delay(TimeSpan.FromSeconds(2), cts.Token);
        document.Insert(0, "still here");
        await document.WhenSyncedAsync(cts.Token);
        Assert.Empty(disconnects);
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task ADroppedConnectionResumesWithoutLosingOrRepeatingEdits(TransportKind transport)
    {
        using var cts = new CancellationTokenSource(Timeout);
        await using SecureServer server = await SecureServer.StartAsync(Settings());
        var killable = new KillableFactory(SelectingTransportFactory.For(transport));
        await using CollabClient client = await CollabClient.ConnectAsync(server.WebSocketUri, Options(transport, killable), cts.Token);
        var reconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Connected += (_, e) => reconnected.TrySetResult();
        await using CollabDocument document = await client.OpenDocumentAsync("dropped", cts.Token);
        for (int i = 0; i < 50; i++)
        {
            document.Insert(document.Snapshot.Length, $"{i},");
            if (i == 25)
            {
                killable.AbortAll();
            }
        }

        await reconnected.Task.WaitAsync(cts.Token);
        await document.WhenSyncedAsync(cts.Token);
        string expected = string.Concat(Enumerable.Range(0, 50).Select(i => $"{i},"));
        Assert.Equal(expected, document.Text);

        await using CollabClient observer = await CollabClient.ConnectAsync(server.WebSocketUri, Options(transport), cts.Token);
        await using CollabDocument observed = await observer.OpenDocumentAsync("dropped", cts.Token);
        Assert.Equal(expected, observed.Text);
        Assert.Equal(2, killable.Connects);
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task PresenceTravels(TransportKind transport)
    {
        using var cts = new CancellationTokenSource(Timeout);
        await using SecureServer server = await SecureServer.StartAsync(Settings());
        await using CollabClient alice = await CollabClient.ConnectAsync(server.WebSocketUri, Options(transport), cts.Token);
        await using CollabClient bob = await CollabClient.ConnectAsync(server.WebSocketUri, Options(transport), cts.Token);
        await using CollabDocument aliceDocument = await alice.OpenDocumentAsync("presence", cts.Token);
        await using CollabDocument bobDocument = await bob.OpenDocumentAsync("presence", cts.Token);
        aliceDocument.Insert(0, "hello");
        await aliceDocument.WhenSyncedAsync(cts.Token);
        aliceDocument.SetPresence(1, 4, "alice"u8.ToArray());
        await WaitUntilAsync(() => bobDocument.GetPresences().Any(p => p.Head == 4 && p.UserData.Span.SequenceEqual("alice"u8)), cts.Token);
    }

    [Fact]
    public async Task Wss_WithTheTestCertificate()
    {
        using var certificate = TestCertificate.Create();
        using var cts = new CancellationTokenSource(Timeout);
        await using SecureServer server = await SecureServer.StartAsync(Settings(
            ("Transport:CertificatePath", certificate.PfxPath), ("Transport:CertificatePassword", certificate.Password)));
        var wss = new Uri($"wss://localhost:{server.Port}/ws");
        RemoteCertificateValidationCallback pinned = (_, presented, _, _) =>
            presented is not null && presented.GetCertHashString() == certificate.Certificate.GetCertHashString();

        var factory = new PipelinesTransportFactory(pinned);
        await using (CollabClient client = await CollabClient.ConnectAsync(wss, Options(TransportKind.Pipelines, factory), cts.Token))
        {
            await using CollabDocument document = await client.OpenDocumentAsync("tls", cts.Token);
            document.Insert(0, new string('t', 100_000));
            await document.WhenSyncedAsync(cts.Token);
            Assert.Equal(1, document.Version);
        }

        // The system's validation refuses the self-signed certificate: a clean connection failure, no hang.
        var refused = await Assert.ThrowsAsync<CollabConnectionException>(() =>
            CollabClient.ConnectAsync(wss, Options(TransportKind.Pipelines), cts.Token));
        Assert.IsType<System.Security.Authentication.AuthenticationException>(Assert.IsType<WebSocketException>(refused.InnerException).InnerException);

        // Plain ws:// to the TLS port is not a WebSocket either.
        await Assert.ThrowsAsync<CollabConnectionException>(() =>
            CollabClient.ConnectAsync(new Uri($"ws://127.0.0.1:{server.Port}/ws"), Options(TransportKind.Pipelines), cts.Token));
    }

    private static async Task WaitUntilAsync(Func<bool> condition, CancellationToken cancellationToken)
    {
        while (!condition())
        {
            await Task.Delay(10, cancellationToken);
        }
    }

    /// <summary>A transport factory whose connections a test can break mid-flight, as a network failure does.</summary>
    private sealed class KillableFactory(IClientTransportFactory inner) : IClientTransportFactory
    {
        private readonly ConcurrentDictionary<IClientTransport, byte> _live = new();
        private int _connects;

        public int Connects => Volatile.Read(ref _connects);

        public async ValueTask<IClientTransport> ConnectAsync(TransportConnectRequest request, CancellationToken cancellationToken)
        {
            IClientTransport transport = await inner.ConnectAsync(request, cancellationToken);
            Interlocked.Increment(ref _connects);
            _live[transport] = 0;
            return new Tracked(transport, this);
        }

        public void AbortAll()
        {
            foreach (IClientTransport transport in _live.Keys)
            {
                transport.Abort();
                _live.TryRemove(transport, out _);
            }
        }

        private sealed class Tracked(IClientTransport inner, KillableFactory owner) : IClientTransport
        {
            public WebSocketCloseStatus? CloseStatus => inner.CloseStatus;

            public string? CloseStatusDescription => inner.CloseStatusDescription;

            public ValueTask SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken) => inner.SendAsync(message, cancellationToken);

            public ValueTask<bool> ReceiveAsync(IBufferWriter<byte> destination, CancellationToken cancellationToken) => inner.ReceiveAsync(destination, cancellationToken);

            public ValueTask CloseAsync(WebSocketCloseStatus status, string? description, CancellationToken cancellationToken) => inner.CloseAsync(status, description, cancellationToken);

            public void Abort() => inner.Abort();

            public ValueTask DisposeAsync()
            {
                owner._live.TryRemove(inner, out _);
                return inner.DisposeAsync();
            }
        }
    }
}
