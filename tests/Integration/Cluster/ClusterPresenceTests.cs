using System.Text;
using Collab.Client;
using Collab.Integration.Tests.Infrastructure;
using Collab.Protocol.V1;
using Collab.Server.Cluster;
using Google.Protobuf;
using NATS.Client.Core;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Cluster;

/// <summary>Presence crosses nodes (collab.v1.doc.&lt;doc&gt;.presence): set, moved by edits, cleared, and cleared for a dead node's clients.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterPresenceTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private const string DocId = "presence/shared.txt";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Presence_is_shared_transformed_and_cleared_across_nodes_and_a_dead_nodes_clients_disappear()
    {
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output);
        var clients = new List<CollabClient>();
        try
        {
            ServerProcess node1 = cluster.Node("node1"), node2 = cluster.Node("node2"), node3 = cluster.Node("node3");
            (CollabClient alice, CollabDocument aliceDoc) = await OpenAsync(cluster, node1, clients);
            aliceDoc.Insert(0, "hello world");
            await aliceDoc.WhenSyncedAsync(new CancellationTokenSource(Timeout).Token);
            (CollabClient bob, CollabDocument bobDoc) = await OpenAsync(cluster, node2, clients);
            (CollabClient carol, CollabDocument carolDoc) = await OpenAsync(cluster, node3, clients);
            await WaitForAsync(() => bobDoc.Text == "hello world" && carolDoc.Text == "hello world", () => "the text reaches every node", cluster);

            // Bob (node2) selects "world": Alice (node1) and Carol (node3) see it, with his user data.
            bobDoc.SetPresence(6, 11, Encoding.UTF8.GetBytes("bob"));
            await WaitForPresenceAsync(aliceDoc, bob.ClientId, 6, 11, cluster);
            await WaitForPresenceAsync(carolDoc, bob.ClientId, 6, 11, cluster);
            Assert.Equal("bob", Encoding.UTF8.GetString(aliceDoc.GetPresences().Single(p => p.ClientId == bob.ClientId).UserData.Span));

            // Alice inserts before it: every node moves it, and a client subscribing later on a node where Bob is remote
            // gets it from that node's presence table, transformed to the current version.
            aliceDoc.Insert(5, " big");
            await aliceDoc.WhenSyncedAsync(new CancellationTokenSource(Timeout).Token);
            await WaitForAsync(() => bobDoc.Text == "hello big world" && carolDoc.Text == "hello big world", () => "the insert reaches every node", cluster);
            await WaitForPresenceAsync(aliceDoc, bob.ClientId, 10, 15, cluster);
            await WaitForPresenceAsync(carolDoc, bob.ClientId, 10, 15, cluster);
            (_, CollabDocument daveDoc) = await OpenAsync(cluster, node3, clients);
            await WaitForPresenceAsync(daveDoc, bob.ClientId, 10, 15, cluster);

            // A remote presence set after the insert refers to the new version directly.
            bobDoc.SetPresence(0, 5, Encoding.UTF8.GetBytes("bob"));
            await WaitForPresenceAsync(carolDoc, bob.ClientId, 0, 5, cluster);
            await WaitForPresenceAsync(daveDoc, bob.ClientId, 0, 5, cluster);

            // Clearing removes it on the other nodes.
            bobDoc.ClearPresence();
            await WaitForNoPresenceAsync(aliceDoc, bob.ClientId, cluster);
            await WaitForNoPresenceAsync(carolDoc, bob.ClientId, cluster);

            // So does disconnecting.
            bobDoc.SetPresence(2, 2);
            await WaitForPresenceAsync(aliceDoc, bob.ClientId, 2, 2, cluster);
            await WaitForPresenceAsync(carolDoc, bob.ClientId, 2, 2, cluster);
            clients.Remove(bob);
            await bob.DisposeAsync();
            await WaitForNoPresenceAsync(aliceDoc, bob.ClientId, cluster);
            await WaitForNoPresenceAsync(carolDoc, bob.ClientId, cluster);

            // Carol's node dies: nobody sends her clear, the other nodes drop her presence when the membership drops the node.
            carolDoc.SetPresence(0, 5);
            await WaitForPresenceAsync(aliceDoc, carol.ClientId, 0, 5, cluster);
            (_, CollabDocument erinDoc) = await OpenAsync(cluster, node2, clients);
            await WaitForPresenceAsync(erinDoc, carol.ClientId, 0, 5, cluster);
            await node3.KillAsync();
            await WaitForNoPresenceAsync(aliceDoc, carol.ClientId, cluster);
            await WaitForNoPresenceAsync(erinDoc, carol.ClientId, cluster);

            // And a client opening the document afterwards is not shown a ghost.
            (_, CollabDocument frankDoc) = await OpenAsync(cluster, node1, clients);
            aliceDoc.SetPresence(1, 1);
            await WaitForPresenceAsync(erinDoc, alice.ClientId, 1, 1, cluster);
            await WaitForPresenceAsync(frankDoc, alice.ClientId, 1, 1, cluster);
            Assert.DoesNotContain(frankDoc.GetPresences(), p => p.ClientId == carol.ClientId);
        }
        catch
        {
            cluster.DumpLogs();
            throw;
        }
        finally
        {
            foreach (CollabClient client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_presence_ahead_of_a_node_is_shown_there_only_after_the_ops_up_to_its_version()
    {
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output, nodes: 2);
        var clients = new List<CollabClient>();
        await using var nats = new NatsConnection(NatsOpts.Default with { Url = cluster.Nats.Url });
        try
        {
            (_, CollabDocument aliceDoc) = await OpenAsync(cluster, cluster.Node("node1"), clients);
            (_, CollabDocument bobDoc) = await OpenAsync(cluster, cluster.Node("node2"), clients);
            aliceDoc.Insert(0, "0123456789");
            await aliceDoc.WhenSyncedAsync(new CancellationTokenSource(Timeout).Token);
            await WaitForAsync(() => bobDoc.Text == "0123456789", () => "the text reaches node2", cluster);
            long version = aliceDoc.Version;

            // A client of a third node selected (1, 3) at a version two ahead of both nodes: its positions refer to ops the
            // clients here have not seen, so neither node may show it yet.
            await PublishAsync(nats, "node9", "ghost", version + 2, new Selection { Anchor = 1, Head = 3 });
            aliceDoc.Insert(0, "a");
            await aliceDoc.WhenSyncedAsync(new CancellationTokenSource(Timeout).Token);
            await WaitForAsync(() => bobDoc.Version == version + 1, () => "version +1 reaches node2", cluster);
            await Task.Delay(300);
            Assert.DoesNotContain(aliceDoc.GetPresences(), p => p.ClientId == "ghost");
            Assert.DoesNotContain(bobDoc.GetPresences(), p => p.ClientId == "ghost");

            // Once each node delivered that version, it shares the presence as it was made.
            aliceDoc.Insert(0, "b");
            await WaitForPresenceAsync(aliceDoc, "ghost", 1, 3, cluster);
            await WaitForPresenceAsync(bobDoc, "ghost", 1, 3, cluster);

            // Later edits move it; a late subscriber gets it from its node's table, transformed to the current version.
            aliceDoc.Insert(0, "c");
            await aliceDoc.WhenSyncedAsync(new CancellationTokenSource(Timeout).Token);
            await WaitForAsync(() => bobDoc.Version == version + 3, () => "version +3 reaches node2", cluster);
            await WaitForPresenceAsync(bobDoc, "ghost", 2, 4, cluster);
            (_, CollabDocument carolDoc) = await OpenAsync(cluster, cluster.Node("node2"), clients);
            await WaitForPresenceAsync(carolDoc, "ghost", 2, 4, cluster);

            // Only the node that published a client's presence clears it (a client that moved keeps the presence it set elsewhere).
            await PublishAsync(nats, "node8", "ghost", version + 3, selection: null);
            await Task.Delay(300);
            Assert.Contains(carolDoc.GetPresences(), p => p.ClientId == "ghost");
            await PublishAsync(nats, "node9", "ghost", version + 3, selection: null);
            await WaitForNoPresenceAsync(carolDoc, "ghost", cluster);
            await WaitForNoPresenceAsync(aliceDoc, "ghost", cluster);
        }
        catch
        {
            cluster.DumpLogs();
            throw;
        }
        finally
        {
            foreach (CollabClient client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_remote_presence_whose_clear_was_lost_expires_while_refreshes_keep_a_live_one()
    {
        var settings = new Dictionary<string, string>
        {
            ["Cluster:PresenceRefreshInterval"] = "00:00:00.300",
            ["Cluster:PresenceExpiry"] = "00:00:01.500",
        };
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output, nodes: 2, settings);
        var clients = new List<CollabClient>();
        await using var nats = new NatsConnection(NatsOpts.Default with { Url = cluster.Nats.Url });
        try
        {
            (_, CollabDocument aliceDoc) = await OpenAsync(cluster, cluster.Node("node1"), clients);
            (CollabClient bob, CollabDocument bobDoc) = await OpenAsync(cluster, cluster.Node("node2"), clients);
            aliceDoc.Insert(0, "0123456789");
            await aliceDoc.WhenSyncedAsync(new CancellationTokenSource(Timeout).Token);
            await WaitForAsync(() => bobDoc.Text == "0123456789", () => "the text reaches node2", cluster);

            // Bob's presence is published by node2 once when set, and again every refresh round.
            bobDoc.SetPresence(2, 4);
            await WaitForPresenceAsync(aliceDoc, bob.ClientId, 2, 4, cluster);

            // A client of node2 that left while its clear was lost: node1 got its presence once and never its clear.
            await PublishAsync(nats, "node2", "ghost", aliceDoc.Version, new Selection { Anchor = 1, Head = 3 });
            await WaitForPresenceAsync(aliceDoc, "ghost", 1, 3, cluster);

            // node2 does not republish it, so node1 drops it after PresenceExpiry and tells its subscribers.
            await WaitForNoPresenceAsync(aliceDoc, "ghost", cluster);

            // Bob's, refreshed every round, outlives several expiries unchanged.
            await Task.Delay(TimeSpan.FromSeconds(4));
            Assert.Contains(aliceDoc.GetPresences(), p => p.ClientId == bob.ClientId && p.Anchor == 2 && p.Head == 4);
        }
        catch
        {
            cluster.DumpLogs();
            throw;
        }
        finally
        {
            foreach (CollabClient client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    private static async Task PublishAsync(NatsConnection nats, string nodeId, string clientId, long version, Selection? selection) =>
        await nats.PublishAsync(
            ClusterSubjects.Presence(DocId),
            new ClusterPresence { DocId = DocId, NodeId = nodeId, ClientId = clientId, Version = version, Selection = selection, UserData = ByteString.Empty },
            serializer: ProtobufNatsSerializer<ClusterPresence>.Instance);

    private static async Task<(CollabClient Client, CollabDocument Document)> OpenAsync(ClusterHarness cluster, ServerProcess node, List<CollabClient> clients)
    {
        CollabClient client = await cluster.ConnectAsync(node);
        clients.Add(client);
        Assert.Equal(node.NodeId, client.ServerId);
        return (client, await client.OpenDocumentAsync(DocId));
    }

    private static Task WaitForPresenceAsync(CollabDocument document, string clientId, int anchor, int head, ClusterHarness cluster) =>
        WaitForAsync(
            () => document.GetPresences().Any(p => p.ClientId == clientId && p.Anchor == anchor && p.Head == head),
            () => $"presence ({anchor}, {head}) of {clientId}; seen: {string.Join(", ", document.GetPresences().Select(p => $"{p.ClientId} ({p.Anchor}, {p.Head})"))}",
            cluster);

    private static Task WaitForNoPresenceAsync(CollabDocument document, string clientId, ClusterHarness cluster) =>
        WaitForAsync(() => document.GetPresences().All(p => p.ClientId != clientId), () => $"presence of {clientId} cleared", cluster);

    private static async Task WaitForAsync(Func<bool> condition, Func<string> what, ClusterHarness cluster)
    {
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting for {what()}.\n{cluster.Logs()}");
            }

            await Task.Delay(20);
        }
    }
}
