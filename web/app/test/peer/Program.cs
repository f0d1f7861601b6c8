using System.Text.Json;
using System.Text.Json.Nodes;
using Collab.Client;

// One C# SDK client on one document, driven by JSON lines on stdin; answers JSON lines on stdout:
//   {"insert": [position, "text"]}           inserts at a code point position  -> {"ok": true}
//   {"presence": [anchor, head, "user data"]} publishes a selection             -> {"ok": true}
//   {"waitFor": "text", "timeoutMs": n}       waits until the text contains it   -> {"text", "version"}
//   {"sync": true}                            waits until every edit is acked    -> {"text", "version"}
// The first line is {"ready": true, "text", "version"} once the document is open. Failures: {"error": "..."}.
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: Collab.Web.Peer <ws-url> <doc-id>");
    return 2;
}

using var lifetime = new CancellationTokenSource(TimeSpan.FromMinutes(5));
CancellationToken ct = lifetime.Token;
await using CollabClient client = await CollabClient.ConnectAsync(new Uri(args[0]), new CollabClientOptions(), ct);
CollabDocument document = await client.OpenDocumentAsync(args[1], ct);
var changed = new SemaphoreSlim(0);
document.Changed += (_, _) => changed.Release();

Reply(new JsonObject { ["ready"] = true, ["text"] = document.Text, ["version"] = document.Version });
while (await Console.In.ReadLineAsync(ct) is { } line)
{
    try
    {
        JsonObject command = JsonNode.Parse(line)!.AsObject();
        if (command["insert"] is JsonArray insert)
        {
            document.Insert(insert[0]!.GetValue<int>(), insert[1]!.GetValue<string>());
            Reply(new JsonObject { ["ok"] = true });
        }
        else if (command["presence"] is JsonArray presence)
        {
            document.SetPresence(presence[0]!.GetValue<int>(), presence[1]!.GetValue<int>(), System.Text.Encoding.UTF8.GetBytes(presence[2]!.GetValue<string>()));
            Reply(new JsonObject { ["ok"] = true });
        }
        else if (command["waitFor"] is JsonValue waitFor)
        {
            string expected = waitFor.GetValue<string>();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(command["timeoutMs"]?.GetValue<int>() ?? 30_000);
            while (!document.Text.Contains(expected, StringComparison.Ordinal))
            {
                await changed.WaitAsync(timeout.Token);
            }
            Reply(State(document));
        }
        else if (command["sync"] is not null)
        {
            await document.WhenSyncedAsync(ct);
            Reply(State(document));
        }
        else
        {
            Reply(new JsonObject { ["error"] = $"unknown command {line}" });
        }
    }
    catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException or OperationCanceledException or CollabException)
    {
        Reply(new JsonObject { ["error"] = e.Message });
    }
}

return 0;

static JsonObject State(CollabDocument document) => new() { ["text"] = document.Text, ["version"] = document.Version };

static void Reply(JsonObject message)
{
    Console.Out.WriteLine(message.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
    Console.Out.Flush();
}
