using Collab.Integration.Tests.EndToEnd;
using Collab.Integration.Tests.Infrastructure;
using Collab.Protocol.V1;
using Google.Protobuf;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Cluster;

/// <summary>
/// Issue 17 ("cluster forwarding and replicas work for rich docs exactly as for text"): three real nodes, a document of
/// each type created through one node, edited concurrently by raw clients on every node (the non-owners forward their
/// submits to the owner, which transforms them), served by every node from its replica: the same document everywhere,
/// equal to the op log replayed, with the type every node reports.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterDocumentTypeTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private TypedDocument _type = TypedDocument.Text;
    private string _docId = "";

    [Theory]
    [InlineData("text-unicode")]
    [InlineData("rich-text")]
    public async Task A_document_of_either_type_is_edited_through_every_node_and_every_replica_serves_the_same_document(string typeName)
    {
        TypedDocument type = _type = TypedDocument.Of(typeName);
        string docId = _docId = "cluster-types/" + typeName;
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output);
        var clients = new List<RawProtocolClient>();
        try
        {
            foreach (ServerProcess node in cluster.Nodes)
            {
                RawProtocolClient client = await RawProtocolClient.ConnectAsync(node.WebSocketUri);
                clients.Add(client);
                await client.SendAsync(new ClientMessage { RequestId = 1, Subscribe = new Subscribe { DocId = docId, Snapshot = true, Type = typeName } });
                Snapshot snapshot = (await client.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot)).Snapshot;
                Assert.Equal(typeName, snapshot.Type);
            }

            // Every client sends four ops on version 0 without waiting: twelve concurrent ops, eight of them forwarded.
            for (int i = 0; i < 4; i++)
            {
                for (int c = 0; c < clients.Count; c++)
                {
                    await clients[c].SendAsync(Submit(i + 1));
                }
            }

            // Each client sees all twelve versions, in order: acks of its own ops and the others' ops. (An op resent after a
            // retryable error may be acked twice, the second time as a duplicate with the same version; a forward retried
            // inside the cluster is acked once: ClusterForwardRetryTests.)
            await Task.WhenAll(clients.Select(async (client, index) =>
            {
                var versions = new SortedSet<long>();
                var ownSeqs = new SortedSet<ulong>();
                while (versions.Count < 12)
                {
                    ServerMessage message = await client.ReceiveAsync();
                    if (message.Error is { Retryable: true, ClientSeq: > 0 } retry)
                    {
                        // Outcome unknown (P2; e.g. the document moved to its rendezvous owner as the nodes met): resend.
                        output.WriteLine($"client {index}: resending {retry.ClientSeq} after {retry.Code}");
                        await Task.Delay(200);
                        await client.SendAsync(Submit((int)retry.ClientSeq));
                        continue;
                    }

                    Assert.True(message.Error is null, $"client {index}: {message}");
                    if (message.Ack is { } ack)
                    {
                        versions.Add(ack.Version);
                        ownSeqs.Add(ack.ClientSeq);
                    }

                    foreach (SequencedOp op in message.Ops?.Ops_ ?? [])
                    {
                        Assert.True(versions.Count == 0 || op.Version > versions.Max, $"client {index}: version {op.Version} after {versions.Max}.");
                        versions.Add(op.Version);
                    }
                }

                Assert.Equal([1ul, 2, 3, 4], ownSeqs);
                Assert.Equal(12, versions.Max);
            }));

            // The log replayed is the document; every node serves it (from its replica or as the owner) with its type.
            IReadOnlyList<LoggedOp> log = await cluster.ReadOpsAsync(docId);
            Assert.Equal(12, log.Count);
            object document = type.EmptyState;
            foreach (LoggedOp op in log)
            {
                document = type.Apply(document, ByteString.CopyFrom(op.Op));
            }

            foreach (ServerProcess node in cluster.Nodes)
            {
                await using RawProtocolClient probe = await RawProtocolClient.ConnectAsync(node.WebSocketUri);
                Snapshot served = await ReadAtAsync(probe, docId, version: 12);
                Assert.Equal(type.Canonical(document), type.Canonical(type.FromSnapshot(served)));
            }

            foreach (ServerProcess node in cluster.Nodes)
            {
                string metrics = await node.MetricsAsync();
                output.WriteLine($"{node.NodeId}: forwarded acked = {ClusterHarness.MetricValue(metrics, "collab_cluster_forwarded_submits_total{outcome=\"acked\"}")}");
            }
        }
        catch
        {
            cluster.DumpLogs();
            throw;
        }
        finally
        {
            foreach (RawProtocolClient client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    private ClientMessage Submit(int seq) => new()
    {
        Submit = new Submit { DocId = _docId, ClientSeq = (ulong)seq, BaseVersion = 0, Op = _type.MakeOp((seq - 1) % 2 * 3, 0) },
    };

    /// <summary>A snapshot at <paramref name="version"/> or later (a replica may still be receiving the last ops).</summary>
    private static async Task<Snapshot> ReadAtAsync(RawProtocolClient probe, string docId, long version)
    {
        for (int attempt = 0; ; attempt++)
        {
            await probe.SendAsync(new ClientMessage { RequestId = 2, Subscribe = new Subscribe { DocId = docId, Snapshot = true } });
            Snapshot snapshot = (await probe.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot)).Snapshot;
            if (snapshot.Version >= version || attempt == 50)
            {
                Assert.Equal(version, snapshot.Version);
                return snapshot;
            }

            await Task.Delay(100);
        }
    }
}
