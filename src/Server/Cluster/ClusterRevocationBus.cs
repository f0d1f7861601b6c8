using Collab.Protocol.V1;
using Collab.Server.Security;
using NATS.Client.Core;
using Npgsql;

namespace Collab.Server.Cluster;

/// <summary>
/// The deny list of a cluster. A revocation is first stored in PostgreSQL (so it survives restarts and
/// reaches nodes that start later), then applied locally, then published on <c>collab.v1.revocations</c>
/// so every other node refuses the token or user at once. Core NATS is at-most-once, so every node also
/// reloads the entries in force from PostgreSQL on start, after each NATS reconnect and every
/// <see cref="ResyncInterval"/>: a lost message delays a revocation by at most that long, never forever.
/// </summary>
internal sealed partial class ClusterRevocationBus(ClusterNode node, NpgsqlDataSource database, ILogger<ClusterRevocationBus> logger)
    : BackgroundService, IRevocationBus
{
    public const string Subject = "collab.v1.revocations";

    public static readonly TimeSpan ResyncInterval = TimeSpan.FromSeconds(15);

    private readonly List<Action<RevocationEntry>> _handlers = [];
    private readonly Lock _gate = new();
    private volatile bool _resyncRequested = true;

    public async ValueTask PublishAsync(RevocationEntry entry, CancellationToken cancellationToken)
    {
        await using (NpgsqlCommand command = database.CreateCommand("""
            INSERT INTO revocations (kind, value, expires_at) VALUES ($1, $2, $3)
            ON CONFLICT (kind, value) DO UPDATE SET expires_at = greatest(revocations.expires_at, excluded.expires_at)
            """))
        {
            command.Parameters.Add(new NpgsqlParameter<short> { TypedValue = (short)entry.Kind });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = entry.Value });
            command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = entry.ExpiresAt.UtcDateTime });
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        Deliver(entry); // the node connection does not echo our own messages
        var message = new Revocation { Kind = (int)entry.Kind, Value = entry.Value, ExpiresAtMs = entry.ExpiresAt.ToUnixTimeMilliseconds() };
        try
        {
            await node.Nats.PublishAsync(Subject, message, serializer: ProtobufNatsSerializer<Revocation>.Instance, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Stored already: the other nodes pick it up at their next resync.
            LogPublishFailed(ex);
        }
    }

    public void Subscribe(Action<RevocationEntry> handler)
    {
        lock (_gate)
        {
            _handlers.Add(handler);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        node.Nats.ConnectionOpened += OnReconnectedAsync;
        Task listener = ListenAsync(stoppingToken);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        DateTime lastResync = DateTime.MinValue;
        do
        {
            if (_resyncRequested || DateTime.UtcNow - lastResync >= ResyncInterval)
            {
                try
                {
                    await ResyncAsync(stoppingToken).ConfigureAwait(false);
                    _resyncRequested = false;
                    lastResync = DateTime.UtcNow;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogResyncFailed(ex);
                }
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));

        await listener.ConfigureAwait(false);
    }

    private async Task ListenAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (NatsMsg<Revocation> msg in node.Nats.SubscribeAsync(Subject, serializer: ProtobufNatsSerializer<Revocation>.Instance, cancellationToken: stoppingToken).ConfigureAwait(false))
            {
                if (msg.Data is { } revocation && Enum.IsDefined((RevocationKind)revocation.Kind) && revocation.Value.Length > 0)
                {
                    Deliver(new RevocationEntry((RevocationKind)revocation.Kind, revocation.Value, DateTimeOffset.FromUnixTimeMilliseconds(revocation.ExpiresAtMs)));
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task ResyncAsync(CancellationToken cancellationToken)
    {
        await using NpgsqlCommand command = database.CreateCommand("SELECT kind, value, expires_at FROM revocations WHERE expires_at > now()");
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var kind = (RevocationKind)reader.GetInt16(0);
            if (Enum.IsDefined(kind))
            {
                Deliver(new RevocationEntry(kind, reader.GetString(1), new DateTimeOffset(reader.GetDateTime(2), TimeSpan.Zero)));
            }
        }
    }

    private ValueTask OnReconnectedAsync(object? sender, NatsEventArgs args)
    {
        _resyncRequested = true; // messages published while we were away are gone: read the table
        return ValueTask.CompletedTask;
    }

    private void Deliver(RevocationEntry entry)
    {
        Action<RevocationEntry>[] handlers;
        lock (_gate)
        {
            handlers = [.. _handlers];
        }

        foreach (Action<RevocationEntry> handler in handlers)
        {
            handler(entry);
        }
    }

    [LoggerMessage(3100, LogLevel.Warning, "Publishing a revocation over NATS failed; other nodes apply it at their next resync")]
    private partial void LogPublishFailed(Exception exception);

    [LoggerMessage(3101, LogLevel.Warning, "Reloading the revocation list from PostgreSQL failed; retrying")]
    private partial void LogResyncFailed(Exception exception);
}
