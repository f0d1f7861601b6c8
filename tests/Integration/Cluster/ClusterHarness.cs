using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Collab.Client;
using Collab.Engine.Text;
using Collab.Integration.Tests.Infrastructure;
using Npgsql;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Cluster;

/// <summary>
/// A real cluster on loopback: a fresh database on the shared PostgreSQL, one nats-server, N server processes in
/// cluster mode and a round-robin TCP balancer in front of them. Timings are shortened (lease 3 s, expiry 1.5 s) so
/// failover tests stay short; the relations between them are the production ones.
/// </summary>
internal sealed class ClusterHarness : IAsyncDisposable
{
    public static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(3);

    private readonly ITestOutputHelper _output;
    private readonly List<ServerProcess> _nodes = [];

    private ClusterHarness(ITestOutputHelper output, string connectionString, NatsServer nats)
    {
        _output = output;
        ConnectionString = connectionString;
        Nats = nats;
    }

    public string ConnectionString { get; }

    public NatsServer Nats { get; }

    public IReadOnlyList<ServerProcess> Nodes => _nodes;

    public RoundRobinBalancer Balancer { get; private set; } = null!;

    public static async Task<ClusterHarness> StartAsync(PostgresFixture postgres, ITestOutputHelper output, int nodes = 3, IDictionary<string, string>? settings = null)
    {
        string connectionString = await postgres.CreateDatabaseAsync("cluster");
        NatsServer nats = await NatsServer.StartAsync();
        var harness = new ClusterHarness(output, connectionString, nats);
        try
        {
            var starting = new List<Task<ServerProcess>>();
            for (int i = 1; i <= nodes; i++)
            {
                var all = new Dictionary<string, string>(StringComparer.Ordinal)
                {
                    ["Node:NodeId"] = $"node{i}",
                    ["Storage:Provider"] = "Postgres",
                    ["Storage:PostgresConnectionString"] = connectionString,
                    ["Cluster:Enabled"] = "true",
                    ["Cluster:NatsUrl"] = nats.Url,
                    ["Cluster:LeaseDuration"] = "00:00:03",
                    ["Cluster:RenewInterval"] = "00:00:00.500",
                    ["Cluster:LeaseSafetyMargin"] = "00:00:00.750",
                    ["Cluster:HeartbeatInterval"] = "00:00:00.250",
                    ["Cluster:NodeExpiry"] = "00:00:01.500",
                    ["Cluster:JoinGracePeriod"] = "00:00:01",
                    ["Cluster:ForwardTimeout"] = "00:00:02",
                    ["Logging:LogLevel:Collab.Server.Cluster"] = "Information",
                };
                if (settings is not null)
                {
                    foreach ((string key, string value) in settings)
                    {
                        all[key] = value;
                    }
                }

                starting.Add(ServerProcess.StartAsync(all));
            }

            // All start together: migrations take an advisory lock, so one node creates the schema.
            try
            {
                harness._nodes.AddRange(await Task.WhenAll(starting));
            }
            catch
            {
                foreach (Task<ServerProcess> start in starting.Where(t => t.IsCompletedSuccessfully))
                {
                    harness._nodes.Add(start.Result);
                }

                throw;
            }

            harness.Balancer = new RoundRobinBalancer(harness._nodes.Select(n => n.Port).ToArray());
            await harness.WaitForMembershipAsync(nodes, TimeSpan.FromSeconds(20));
            return harness;
        }
        catch
        {
            await harness.DisposeAsync();
            throw;
        }
    }

    public ServerProcess Node(string nodeId) => _nodes.Single(n => n.NodeId == nodeId);

    /// <summary>Waits until every running node sees <paramref name="count"/> live nodes (collab_cluster_live_nodes).</summary>
    public async Task WaitForMembershipAsync(int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        foreach (ServerProcess node in _nodes.Where(n => n.IsRunning))
        {
            while (MetricValue(await node.MetricsAsync(), "collab_cluster_live_nodes") != count)
            {
                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException($"{node.NodeId} does not see {count} live nodes.\n{Logs()}");
                }

                await Task.Delay(100);
            }
        }
    }

    /// <summary>A client connected through the balancer (or straight to <paramref name="node"/>), with short timeouts.</summary>
    public Task<CollabClient> ConnectAsync(ServerProcess? node = null, CancellationToken cancellationToken = default) =>
        CollabClient.ConnectAsync(node?.WebSocketUri ?? Balancer.WebSocketUri, ClientOptions(), cancellationToken);

    public static CollabClientOptions ClientOptions() => new()
    {
        Reconnect = new ReconnectPolicy { MinDelay = TimeSpan.FromMilliseconds(50), MaxDelay = TimeSpan.FromMilliseconds(500) },
        ConnectTimeout = TimeSpan.FromSeconds(2),
        PingInterval = TimeSpan.FromMilliseconds(500),
        PongTimeout = TimeSpan.FromSeconds(1.5),
    };

    // ------------------------------------------------------------------ database views

    public async Task<IReadOnlyList<LoggedOp>> ReadOpsAsync(string docId)
    {
        var ops = new List<LoggedOp>();
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT version, client_id, client_seq, op, epoch, ts FROM ops WHERE doc_id = $1 ORDER BY version", connection);
        command.Parameters.AddWithValue(docId);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            ops.Add(new LoggedOp(
                reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2), reader.GetFieldValue<byte[]>(3),
                reader.IsDBNull(4) ? null : reader.GetInt64(4), reader.GetFieldValue<DateTime>(5)));
        }

        return ops;
    }

    /// <summary>The leases now, and the node owning the most documents (the victim every failure test picks) with its documents.</summary>
    public async Task<(IReadOnlyDictionary<string, (string Owner, long Epoch)> Leases, string Owner, string[] Documents)> BusiestOwnerAsync()
    {
        IReadOnlyDictionary<string, (string Owner, long Epoch)> leases = await ReadLeasesAsync();
        string owner = leases.Values.GroupBy(l => l.Owner).OrderByDescending(g => g.Count()).First().Key;
        return (leases, owner, [.. leases.Where(l => l.Value.Owner == owner).Select(l => l.Key)]);
    }

    public async Task<IReadOnlyDictionary<string, (string Owner, long Epoch)>> ReadLeasesAsync()
    {
        var leases = new Dictionary<string, (string, long)>(StringComparer.Ordinal);
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT doc_id, owner, epoch FROM doc_leases", connection);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            leases[reader.GetString(0)] = (reader.GetString(1), reader.GetInt64(2));
        }

        return leases;
    }

    /// <summary>The text the op log spells: every op from version 1 replayed in order.</summary>
    public static string Replay(IReadOnlyList<LoggedOp> ops)
    {
        Rope text = Rope.Empty;
        for (int i = 0; i < ops.Count; i++)
        {
            Assert.Equal(i + 1, ops[i].Version);
            text = TextType.Apply(text, TextOpCodec.Decode(ops[i].Op));
        }

        return text.ToString();
    }

    /// <summary>
    /// The op log of <paramref name="docId"/> is whole and exact: versions 1..n without a gap, no (client id, client seq)
    /// twice, and every op a client saw acknowledged is there, at the version it was acknowledged with.
    /// </summary>
    public async Task<IReadOnlyList<LoggedOp>> VerifyLogAsync(string docId, IEnumerable<Acked> acked)
    {
        IReadOnlyList<LoggedOp> ops = await ReadOpsAsync(docId);
        var seen = new Dictionary<(string, long), long>();
        for (int i = 0; i < ops.Count; i++)
        {
            Assert.Equal(i + 1, ops[i].Version);
            Assert.True(seen.TryAdd((ops[i].ClientId, ops[i].ClientSeq), ops[i].Version),
                $"{docId}: client {ops[i].ClientId} seq {ops[i].ClientSeq} is in the log twice (versions {seen.GetValueOrDefault((ops[i].ClientId, ops[i].ClientSeq))} and {ops[i].Version}).");
        }

        foreach (Acked ack in acked.Where(a => a.DocId == docId))
        {
            Assert.True(seen.TryGetValue((ack.ClientId, ack.ClientSeq), out long version),
                $"{docId}: acknowledged op {ack.ClientId}/{ack.ClientSeq} (version {ack.Version}) is not in the log.");
            Assert.Equal(ack.Version, version);
        }

        return ops;
    }

    /// <summary>Waits until every node serves <paramref name="docId"/> with the log's text (a fresh snapshot from each).</summary>
    public async Task AssertEveryNodeServesAsync(string docId, string expected, TimeSpan timeout)
    {
        foreach (ServerProcess node in _nodes.Where(n => n.IsRunning))
        {
            var deadline = DateTime.UtcNow + timeout;
            while (true)
            {
                await using CollabClient probe = await ConnectAsync(node);
                await using CollabDocument document = await probe.OpenDocumentAsync(docId);
                if (document.Text == expected)
                {
                    break;
                }

                if (DateTime.UtcNow > deadline)
                {
                    Assert.Fail($"{node.NodeId} serves {docId} as \"{Abbreviate(document.Text)}\" (v{document.Version}), the log says \"{Abbreviate(expected)}\".\n{Logs()}");
                }

                await Task.Delay(200);
            }
        }
    }

    public string Logs()
    {
        var all = new StringBuilder();
        foreach (ServerProcess node in _nodes)
        {
            all.AppendLine(node.LogTail(80));
        }

        all.AppendLine("[nats]").AppendLine(Nats.LogTail(20));
        return all.ToString();
    }

    /// <summary>Every node's whole kept output into the test's output (failure diagnostics).</summary>
    public void DumpLogs()
    {
        foreach (ServerProcess node in _nodes)
        {
            _output.WriteLine(node.LogTail(4000));
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Balancer is not null)
        {
            await Balancer.DisposeAsync();
        }

        await Task.WhenAll(_nodes.Select(async n => await n.DisposeAsync()));
        await Nats.DisposeAsync();
    }

    public static double? MetricValue(string metrics, string name)
    {
        foreach (string line in metrics.Split('\n'))
        {
            if (line.StartsWith(name + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(name.Length + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    private static string Abbreviate(string text) => text.Length <= 120 ? text : text[..60] + "…" + text[^60..];
}

internal sealed record LoggedOp(long Version, string ClientId, long ClientSeq, byte[] Op, long? Epoch, DateTime Timestamp);

internal sealed record Acked(string DocId, string ClientId, long ClientSeq, long Version);

/// <summary>
/// One simulated user: a client with some documents open, making random small edits (inserts of a tag naming it,
/// deletions) and recording every acknowledgement the server gives it.
/// </summary>
internal sealed class Editor : IAsyncDisposable
{
    private readonly Random _random;
    private readonly string _name;
    private int _edits;
    private int _resyncs;

    private Editor(CollabClient client, string name, int seed)
    {
        Client = client;
        _name = name;
        _random = new Random(seed);
    }

    public CollabClient Client { get; }

    public Dictionary<string, CollabDocument> Documents { get; } = new(StringComparer.Ordinal);

    public ConcurrentQueue<Acked> Acked { get; } = new();

    public int Edits => _edits;

    /// <summary>How often a document had to be reloaded from a snapshot (the stream it was served was not gap-free).</summary>
    public int Resyncs => Volatile.Read(ref _resyncs);

    /// <summary>
    /// Opens <paramref name="count"/> editors named prefix0.. with seeds seedBase+i, each on every one of
    /// <paramref name="docIds"/>, adding them to <paramref name="editors"/> as they open so the caller disposes partial opens.
    /// </summary>
    public static async Task OpenManyAsync(ClusterHarness cluster, List<Editor> editors, string prefix, int seedBase, IEnumerable<string> docIds, int count = 6)
    {
        for (int i = 0; i < count; i++)
        {
            editors.Add(await OpenAsync(cluster, $"{prefix}{i}", seed: seedBase + i, docIds));
        }
    }

    public static async Task<Editor> OpenAsync(ClusterHarness cluster, string name, int seed, IEnumerable<string> docIds, ServerProcess? node = null)
    {
        CollabClient client = await cluster.ConnectAsync(node);
        var editor = new Editor(client, name, seed);
        foreach (string docId in docIds)
        {
            CollabDocument document = await client.OpenDocumentAsync(docId);
            document.Acknowledged += (_, e) => editor.Acked.Enqueue(new Acked(docId, e.ClientId, e.ClientSeq, e.Version));
            document.Changed += (_, e) =>
            {
                if (e.IsResync)
                {
                    Interlocked.Increment(ref editor._resyncs);
                }
            };
            editor.Documents[docId] = document;
        }

        return editor;
    }

    /// <summary>One random edit on one of the open documents.</summary>
    public void EditOnce()
    {
        CollabDocument document = Documents.Values.ElementAt(_random.Next(Documents.Count));
        int n = Interlocked.Increment(ref _edits);
        int length = document.Snapshot.Length;
        if (length > 40 && _random.Next(4) == 0)
        {
            int at = _random.Next(length - 3);
            document.Delete(at, 1 + _random.Next(3));
        }
        else
        {
            document.Insert(_random.Next(length + 1), $"[{_name}.{n}]");
        }
    }

    /// <summary>Edits every <paramref name="interval"/> until cancelled.</summary>
    public async Task RunAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            EditOnce();
            try
            {
                await Task.Delay(interval, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async Task WhenSyncedAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        foreach (CollabDocument document in Documents.Values)
        {
            await document.WhenSyncedAsync(cts.Token);
        }
    }

    public async ValueTask DisposeAsync() => await Client.DisposeAsync();
}
