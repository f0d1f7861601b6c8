using Collab.Engine.Text;
using Collab.Integration.Tests.Infrastructure;
using Collab.Protocol.V1;
using Google.Protobuf;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Cluster;

/// <summary>
/// A submit forwarded from a replica node to a slow owner is retried inside the cluster: the first attempt reaches the
/// owner and is sequenced, but its answer comes after the attempt's timeout (the owner is frozen with SIGSTOP, its
/// sockets open, like a long GC pause); the retry then finds the op in the owner's dedupe state. Before the fix the client
/// got two Acks for its one submit: the op's Ack from the document stream, and a second, <c>duplicate: true</c> with the
/// same version, made from the owner's DUPLICATE answer to the retry. Now it gets exactly one; a real re-send by the
/// client (a new connection resending the same seq) still gets its duplicate Ack (P1).
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterForwardRetryTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private const string DocId = "forward-retry/1";

    // One forward attempt waits ForwardTimeout / 3 = 1.5 s; the owner is frozen for 2.3 s, so the first attempt times out
    // and the second is sent (after a 25 ms backoff) while the owner is still frozen; both wait in its socket, and the
    // owner answers the second 0.7 s before that attempt's own timeout. Node expiry and lease are long enough that nobody
    // declares the frozen owner dead or takes its lease meanwhile (the relations are the production ones).
    private static readonly Dictionary<string, string> s_settings = new(StringComparer.Ordinal)
    {
        ["Cluster:ForwardTimeout"] = "00:00:04.5",
        ["Cluster:NodeExpiry"] = "00:00:04",
        ["Cluster:LeaseDuration"] = "00:00:08",
        ["Cluster:RenewInterval"] = "00:00:00.500",
        ["Cluster:LeaseSafetyMargin"] = "00:00:00.750",
    };

    [Fact]
    public async Task A_forward_retried_after_a_slow_owner_is_acked_exactly_once()
    {
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output, nodes: 2, settings: s_settings);
        await using (RawProtocolClient creator = await RawProtocolClient.ConnectAsync(cluster.Nodes[0].WebSocketUri))
        {
            await creator.SendAsync(new ClientMessage { Subscribe = new Subscribe { DocId = DocId, Snapshot = true } });
            await creator.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot);
        }

        // The owner takes the lease as it opens the document (the creator's node may be a replica that hinted it).
        IReadOnlyDictionary<string, (string Owner, long Epoch)> leases = await cluster.ReadLeasesAsync();
        for (int i = 0; i < 200 && !leases.ContainsKey(DocId); i++)
        {
            await Task.Delay(50);
            leases = await cluster.ReadLeasesAsync();
        }

        ServerProcess owner = cluster.Node(leases[DocId].Owner);
        ServerProcess replica = cluster.Nodes.Single(n => n != owner);
        output.WriteLine($"owner {owner.NodeId}, client on {replica.NodeId}");

        await using RawProtocolClient client = await RawProtocolClient.ConnectAsync(replica.WebSocketUri);
        await client.SendAsync(new ClientMessage { Subscribe = new Subscribe { DocId = DocId, Snapshot = true } });
        await client.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot);
        var received = new List<ServerMessage>();

        // Seq 1 with the owner running: forwarded and acked once, the path works.
        await client.SendAsync(Submit(1, baseVersion: 0, position: 0));
        await ReadUntilAckAsync(client, 1, received);

        double servedBefore = await MetricAsync(owner, "collab_cluster_served_submits_total");
        owner.Pause();
        try
        {
            await client.SendAsync(Submit(2, baseVersion: 1, position: 1));
            await Task.Delay(TimeSpan.FromSeconds(2.3));
        }
        finally
        {
            owner.Resume();
        }

        await ReadUntilAckAsync(client, 2, received);

        // Let the forward of seq 2 finish (its outcome is what made the second ack), then order everything it could have
        // sent before a later ack: seq 3's forward waits for seq 2's outcome, and its ack comes from the stream after.
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (await ForwardedAsync(replica) < 2 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        await client.SendAsync(Submit(3, baseVersion: 2, position: 0));
        await ReadUntilAckAsync(client, 3, received);

        double served = await MetricAsync(owner, "collab_cluster_served_submits_total") - servedBefore;
        output.WriteLine($"owner served {served} requests for seq 2 and 3; messages: {string.Join(" | ", received.Select(Describe))}");

        // The provocation happened: the owner served seq 2 twice (the first attempt and the retry).
        Assert.Equal(3, served);

        // One Ack per submit (before the fix: Ack(seq 2, v2) then Ack(seq 2, v2, duplicate)).
        Ack[] acks = [.. received.Where(m => m.BodyCase == ServerMessage.BodyOneofCase.Ack).Select(m => m.Ack)];
        Assert.Equal([1UL, 2UL, 3UL], acks.Select(a => a.ClientSeq));
        Assert.Equal([1L, 2L, 3L], acks.Select(a => a.Version));
        Assert.All(acks, a => Assert.False(a.Duplicate));
        Assert.DoesNotContain(received, m => m.BodyCase == ServerMessage.BodyOneofCase.Error);

        // The retry's answer was the duplicate of the first attempt's op, left to the stream to ack.
        Assert.Equal(1, await MetricAsync(replica, "collab_cluster_forwarded_submits_total{outcome=\"acked_in_stream\"}"));

        // The op is in the log once.
        IReadOnlyList<LoggedOp> log = await cluster.ReadOpsAsync(DocId);
        Assert.Equal([1L, 2L, 3L], log.Where(o => o.ClientId == client.ClientId).Select(o => o.ClientSeq));

        // A real re-send (the client's next connection resends seq 2, as after a drop) is still acked as a duplicate, once.
        await using RawProtocolClient again = await RawProtocolClient.ConnectAsync(replica.WebSocketUri, clientId: client.ClientId);
        Assert.True(again.Resumed);
        await again.SendAsync(new ClientMessage { Subscribe = new Subscribe { DocId = DocId, FromVersion = 3 } });
        await again.ReceiveAsync(ServerMessage.BodyOneofCase.Subscribed);
        await again.SendAsync(Submit(2, baseVersion: 1, position: 1));
        var resent = new List<ServerMessage>();
        Ack duplicate = await ReadUntilAckAsync(again, 2, resent);
        Assert.True(duplicate.Duplicate);
        Assert.Equal(2, duplicate.Version);
        await again.SendAsync(Submit(4, baseVersion: 3, position: 0));
        await ReadUntilAckAsync(again, 4, resent);
        Assert.Single(resent, m => m.Ack is { ClientSeq: 2 });
    }

    private static ClientMessage Submit(int seq, long baseVersion, int position)
    {
        var encoded = new System.Buffers.ArrayBufferWriter<byte>();
        TextOpCodec.Encode(TextOp.Insert(position, ((char)('a' + seq)).ToString()), encoded);
        return new ClientMessage
        {
            Submit = new Submit { DocId = DocId, ClientSeq = (ulong)seq, BaseVersion = baseVersion, Op = ByteString.CopyFrom(encoded.WrittenSpan) },
        };
    }

    private static async Task<Ack> ReadUntilAckAsync(RawProtocolClient client, ulong seq, List<ServerMessage> received)
    {
        while (true)
        {
            ServerMessage message = await client.ReceiveAsync();
            received.Add(message);
            if (message.Ack is { } ack && ack.ClientSeq == seq)
            {
                return ack;
            }
        }
    }

    private static async Task<double> ForwardedAsync(ServerProcess node)
    {
        string metrics = await node.MetricsAsync();
        return metrics.Split('\n')
            .Where(l => l.StartsWith("collab_cluster_forwarded_submits_total{", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    private static async Task<double> MetricAsync(ServerProcess node, string name) =>
        ClusterHarness.MetricValue(await node.MetricsAsync(), name) ?? 0;

    private static string Describe(ServerMessage m) => m.BodyCase switch
    {
        ServerMessage.BodyOneofCase.Ack => $"Ack(seq {m.Ack.ClientSeq}, v{m.Ack.Version}{(m.Ack.Duplicate ? ", duplicate" : string.Empty)})",
        ServerMessage.BodyOneofCase.Ops => $"Ops(v{string.Join(",", m.Ops.Ops_.Select(o => o.Version))})",
        ServerMessage.BodyOneofCase.Error => $"Error({m.Error.Code}, seq {m.Error.ClientSeq})",
        _ => m.BodyCase.ToString(),
    };
}
