using System.Net.WebSockets;
using Collab.Integration.Tests.Infrastructure;
using Collab.Protocol.V1;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Cluster;

/// <summary>
/// Decision P4 across a cluster: an id issued by one node is recognised by the others (the key is in PostgreSQL), a
/// made-up one by none, and a second live connection under one id on another node takes the session over: the first
/// connection, on its own node, is closed with 4009.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterClientIdTests(PostgresFixture postgres, ITestOutputHelper output)
{
    [Fact]
    public async Task An_id_issued_by_one_node_resumes_on_another_and_takes_the_session_over_there()
    {
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output);
        try
        {
            await using RawProtocolClient first = await RawProtocolClient.ConnectAsync(cluster.Nodes[0].WebSocketUri);
            await first.SendAsync(new ClientMessage { RequestId = 1, Subscribe = new Subscribe { DocId = "ids/1", Snapshot = true } });
            await first.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot);

            await using RawProtocolClient second = await RawProtocolClient.ConnectAsync(cluster.Nodes[1].WebSocketUri, clientId: first.ClientId);
            Assert.True(second.Resumed);
            Assert.Equal(first.ClientId, second.ClientId);
            Assert.Equal((WebSocketCloseStatus)(int)CloseCode.SessionReplaced, await first.ReceiveCloseAsync());

            await using RawProtocolClient madeUp = await RawProtocolClient.ConnectAsync(cluster.Nodes[2].WebSocketUri, clientId: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
            Assert.False(madeUp.Resumed);
            Assert.NotEqual("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", madeUp.ClientId);
            Assert.Equal(WebSocketState.Open, second.State);
        }
        catch
        {
            cluster.DumpLogs();
            throw;
        }
    }
}
