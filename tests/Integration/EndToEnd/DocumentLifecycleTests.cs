using Collab.Client;
using Collab.Integration.Tests.Infrastructure;
using Collab.Server.Sessions;
using Collab.Server.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>Documents open on first use with one load however many clients ask, and close with a snapshot once idle.</summary>
public sealed class DocumentLifecycleTests
{
    [Fact]
    public async Task Many_clients_opening_one_document_at_once_load_it_once()
    {
        await using InProcessServer server = await InProcessServer.StartAsync();
        var registry = server.Services.GetRequiredService<DocumentRegistry>();
        var clients = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => CollabClient.ConnectAsync(server.WebSocketUri, new CollabClientOptions())));
        try
        {
            long before = registry.LoadCount;
            CollabDocument[] docs = await Task.WhenAll(clients.Select(c => c.OpenDocumentAsync("lifecycle/crowd")));
            Assert.Equal(1, registry.LoadCount - before);
            docs[0].Insert(0, "seen by all");
            await docs[0].WhenSyncedAsync();
            await WaitUntilAsync(() => docs.All(d => d.Text == "seen by all"));
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
    public async Task An_idle_document_closes_after_a_final_snapshot_and_reopens_from_it()
    {
        await using InProcessServer server = await InProcessServer.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Documents:IdleCloseAfter"] = "00:00:00.300",
            ["Storage:SnapshotEveryOps"] = "100000", // only the idle close writes a snapshot here
        });
        var registry = server.Services.GetRequiredService<DocumentRegistry>();
        var store = server.Services.GetRequiredService<IOpStore>();

        await using (CollabClient writer = await CollabClient.ConnectAsync(server.WebSocketUri, new CollabClientOptions()))
        {
            CollabDocument doc = await writer.OpenDocumentAsync("lifecycle/idle");
            for (int i = 0; i < 10; i++)
            {
                doc.Insert(0, i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            await doc.WhenSyncedAsync();
            Assert.Equal(1, registry.OpenCount);
        }

        // No subscriber left: after the idle period the document closes and leaves a snapshot of its last version.
        await WaitUntilAsync(() => registry.OpenCount == 0);
        DocumentLoad? load = null;
        await WaitUntilAsync(() => (load = store.LoadAsync("lifecycle/idle", CancellationToken.None).AsTask().GetAwaiter().GetResult())?.Snapshot is not null);
        Assert.Empty(load!.Ops);
        Assert.Equal("9876543210", load.Snapshot!.Text);

        await using CollabClient reader = await CollabClient.ConnectAsync(server.WebSocketUri, new CollabClientOptions());
        CollabDocument reopened = await reader.OpenDocumentAsync("lifecycle/idle");
        Assert.Equal("9876543210", reopened.Text);
        Assert.Equal(load.Snapshot.Version, reopened.Version);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!condition())
        {
            await Task.Delay(25, timeout.Token);
        }
    }
}
