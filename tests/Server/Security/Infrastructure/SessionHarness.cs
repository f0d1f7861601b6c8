using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using Collab.Engine.Text;
using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Storage;
using Collab.Server.Transport;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Collab.Server.Tests.Security.Infrastructure;

/// <summary>
/// The real session layer (sessions, document hubs, sequencers, SQLite op log in a temp directory, security
/// services) without a socket: each <see cref="FakeConnection"/> records what the server sends and how it
/// closes, and tests feed client messages straight into <see cref="ClientSession.OnMessageAsync"/>. The
/// clock of the security layer is a <see cref="ManualTimeProvider"/>.
/// </summary>
public sealed class SessionHarness : IAsyncDisposable
{
    private readonly string _directory;
    private readonly IOpStore _store;
    private readonly GroupCommitStage _stage;
    private readonly DocumentRegistry _registry;
    private long _nextConnectionId;

    private SessionHarness(string directory, IOpStore store, GroupCommitStage stage, DocumentRegistry registry, SessionServices services, ManualTimeProvider time)
    {
        _directory = directory;
        _store = store;
        _stage = stage;
        _registry = registry;
        Services = services;
        Time = time;
    }

    internal SessionServices Services { get; }

    internal SecurityServices Security => Services.Security;

    internal DocumentRegistry Documents => _registry;

    public ManualTimeProvider Time { get; }

    public TokenFactory Tokens { get; } = new();

    /// <summary>Starts a harness; the options are production defaults unless the callbacks change them.</summary>
    public static async Task<SessionHarness> StartAsync(
        Action<AuthOptions>? auth = null,
        Action<LimitsOptions>? limits = null,
        Action<DocumentOptions>? documents = null,
        IRevocationBus? bus = null,
        Func<IOpStore, IOpStore>? wrapStore = null,
        ILogger? logger = null)
    {
        string directory = Directory.CreateTempSubdirectory("collab-security-").FullName;
        var storage = new StorageOptions { DataDirectory = directory, MaxBatchDelay = TimeSpan.Zero };
        IOpStore store = OpStoreFactory.Create(storage);
        store = wrapStore?.Invoke(store) ?? store;
        await store.InitializeAsync(CancellationToken.None);
        var stage = new GroupCommitStage(store, storage);
        var documentOptions = new DocumentOptions();
        documents?.Invoke(documentOptions);
        documentOptions.Validate();
        var registry = new DocumentRegistry(store, stage, new StoreHistorySource(store), documentOptions, storage.SnapshotEveryOps, logger ?? NullLogger.Instance);

        var authOptions = new AuthOptions
        {
            Mode = AuthMode.Jwt,
            Issuers = [TokenFactory.Issuer],
            Audiences = [TokenFactory.Audience],
            SigningKey = TokenFactory.SecretText,
        };
        auth?.Invoke(authOptions);
        var limitOptions = new LimitsOptions();
        limits?.Invoke(limitOptions);
        var time = new ManualTimeProvider();
        var security = SecurityServices.Create(authOptions, limitOptions, bus ?? new InProcessRevocationBus(), time, NullLogger.Instance);
        await security.StartAsync(CancellationToken.None);
        var services = new SessionServices(registry, documentOptions, "test-node", 1024 * 1024, security);
        return new SessionHarness(directory, store, stage, registry, services, time);
    }

    /// <summary>Validates a token the way the handshake does and opens a session for it (throws when refused).</summary>
    public async Task<FakeConnection> ConnectAsync(string token, bool hello = true)
    {
        AuthResult result = await Security.Validator!.ValidateAsync(token, CancellationToken.None);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"Token refused: {result.Failure} ({result.Description})");
        }

        return await OpenAsync(result.Principal!, hello);
    }

    /// <summary>Opens a session for a principal (and says Hello unless told not to).</summary>
    public async Task<FakeConnection> OpenAsync(SessionPrincipal principal, bool hello = true, string? resumeClientId = null)
    {
        var connection = new FakeConnection(Interlocked.Increment(ref _nextConnectionId));
        connection.Attach(new ClientSession(connection, Services, principal));
        if (hello)
        {
            await connection.SendAsync(new ClientMessage
            {
                RequestId = 1,
                Hello = new Hello { ProtocolVersion = (uint)ProtocolVersion.Current, ClientId = resumeClientId ?? string.Empty },
            });
            ServerMessage welcome = await connection.NextAsync(m => m.BodyCase is ServerMessage.BodyOneofCase.Welcome or ServerMessage.BodyOneofCase.Error);
            if (welcome.BodyCase != ServerMessage.BodyOneofCase.Welcome)
            {
                throw new InvalidOperationException("No Welcome: " + welcome);
            }

            connection.ClientId = welcome.Welcome.ClientId;
        }

        return connection;
    }

    public async ValueTask DisposeAsync()
    {
        Security.Dispose();
        await _registry.DisposeAsync();
        await _stage.DisposeAsync();
        await _store.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp directory is harmless.
        }
    }

    public static ByteString Insert(int position, string text) => Encode(TextOp.Insert(position, text));

    public static ByteString Encode(TextOp op)
    {
        var buffer = new ArrayBufferWriter<byte>();
        TextOpCodec.Encode(op, buffer);
        return ByteString.CopyFrom(buffer.WrittenSpan);
    }
}

/// <summary>A connection that records every server message and the close, for driving a <see cref="ClientSession"/> directly.</summary>
public sealed class FakeConnection : IWebSocketConnection
{
    private readonly CancellationTokenSource _closed = new();
    private readonly ConcurrentQueue<ServerMessage> _received = new();
    private readonly SemaphoreSlim _signal = new(0);
    private int _cursor;
    private int _closedReads;

    public FakeConnection(long id)
    {
        Id = id;
    }

    public long Id { get; }

    public IPEndPoint? RemoteEndPoint { get; } = new(IPAddress.Loopback, 40000);

    public CancellationToken Closed
    {
        get
        {
            Interlocked.Increment(ref _closedReads);
            return _closed.Token;
        }
    }

    /// <summary>How often the session asked for <see cref="Closed"/> (on the real transport the first ask creates its source).</summary>
    public int ClosedReads => Volatile.Read(ref _closedReads);

    internal ClientSession Session { get; private set; } = null!;

    public string ClientId { get; set; } = "";

    /// <summary>The close code the server asked for, or null while open.</summary>
    public ushort? CloseCode { get; private set; }

    public string? CloseReason { get; private set; }

    /// <summary>Every message received so far, in order.</summary>
    public IReadOnlyList<ServerMessage> Received => [.. _received];

    /// <summary>Binds the session; a close the session asked for while being constructed (a revoked token) ends it now.</summary>
    internal void Attach(ClientSession session)
    {
        Session = session;
        if (CloseCode is not null)
        {
            session.OnClosed(ConnectionEndReason.ServerClosed);
        }
    }

    public bool TrySend(OutboundMessage message)
    {
        if (CloseCode is not null)
        {
            return false;
        }

        _received.Enqueue(ServerMessage.Parser.ParseFrom(message.Payload));
        _signal.Release();
        return true;
    }

    public void Close(ushort statusCode, string reason)
    {
        if (CloseCode is not null)
        {
            return;
        }

        CloseCode = statusCode;
        CloseReason = reason;
        _signal.Release();

        // The transport ends the session once the close handshake is done; here at once.
        _closed.Cancel();
        Session?.OnClosed(ConnectionEndReason.ServerClosed);
    }

    /// <summary>The client side went away.</summary>
    public void Drop()
    {
        if (CloseCode is null)
        {
            CloseCode = 1006;
            _closed.Cancel();
            Session.OnClosed(ConnectionEndReason.ClientClosed);
        }
    }

    public ValueTask SendAsync(ClientMessage message) => SendRawAsync(message.ToByteArray());

    public ValueTask SendRawAsync(byte[] payload) => Session.OnMessageAsync(new ReadOnlySequence<byte>(payload), isText: false);

    /// <summary>The next not yet consumed message matching <paramref name="match"/> (earlier non-matching ones are skipped).</summary>
    public async Task<ServerMessage> NextAsync(Func<ServerMessage, bool> match, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            ServerMessage[] all = [.. _received];
            for (; _cursor < all.Length; _cursor++)
            {
                if (match(all[_cursor]))
                {
                    return all[_cursor++];
                }
            }

            await _signal.WaitAsync(cts.Token);
        }
    }

    /// <summary>The next error (skipping other messages).</summary>
    public Task<ServerMessage> NextErrorAsync() => NextAsync(m => m.BodyCase == ServerMessage.BodyOneofCase.Error);

    public async Task SubscribeAsync(string docId, ulong requestId = 7)
    {
        await SendAsync(new ClientMessage { RequestId = requestId, Subscribe = new Subscribe { DocId = docId, Snapshot = true } });
    }

    /// <summary>Subscribes with a snapshot and waits for it (throws if the answer is an error).</summary>
    public async Task<Snapshot> SubscribeAndWaitAsync(string docId, ulong requestId = 7)
    {
        await SubscribeAsync(docId, requestId);
        ServerMessage answer = await NextAsync(m => m.RequestId == requestId && m.BodyCase is ServerMessage.BodyOneofCase.Snapshot or ServerMessage.BodyOneofCase.Error);
        return answer.BodyCase == ServerMessage.BodyOneofCase.Snapshot ? answer.Snapshot : throw new InvalidOperationException("Subscribe failed: " + answer.Error);
    }

    public ValueTask SubmitAsync(string docId, ulong clientSeq, long baseVersion, ByteString op, ulong requestId = 0) =>
        SendAsync(new ClientMessage { RequestId = requestId, Submit = new Submit { DocId = docId, ClientSeq = clientSeq, BaseVersion = baseVersion, Op = op } });
}
