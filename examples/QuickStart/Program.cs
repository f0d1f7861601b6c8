using Collab.Client;

// Two clients edit one document through a Collab server (ws://localhost:8080/ws, or the URL given as argument).
var server = new Uri(args.Length > 0 ? args[0] : "ws://localhost:8080/ws");
using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
CancellationToken ct = timeout.Token;

await using CollabClient alice = await CollabClient.ConnectAsync(server, new CollabClientOptions(), ct);
await using CollabClient bob = await CollabClient.ConnectAsync(server, new CollabClientOptions(), ct);
CollabDocument aliceDoc = await alice.OpenDocumentAsync("notes/welcome", ct);
CollabDocument bobDoc = await bob.OpenDocumentAsync("notes/welcome", ct);

// Changed reports what reaches this replica from the server: other clients' edits (and resyncs). It is not raised
// for this client's own Insert/Delete: Text has them at once.
var greeted = new TaskCompletionSource();
bobDoc.Changed += (_, e) =>
{
    Console.WriteLine($"bob sees \"{e.Text}\" (version {e.Version})");
    if (e.Text.StartsWith("Hello, ", StringComparison.Ordinal))
    {
        greeted.TrySetResult();
    }
};

aliceDoc.Insert(0, "Hello, ");
await aliceDoc.WhenSyncedAsync(ct);   // every local edit acknowledged: durable on the server
await greeted.Task.WaitAsync(ct);
Console.WriteLine($"alice has \"{aliceDoc.Text}\", bob has \"{bobDoc.Text}\"");
