using Collab.Client;

// Exports every document under a prefix to files: rich-text documents as sanitised HTML, text documents as plain text.
// Run it again and only the documents that changed are fetched: the ETag kept beside each file makes an unchanged
// document a 304 without a body. Arguments: the server (http://localhost:8080/), the output directory, the id prefix.
var server = new Uri(args.Length > 0 ? args[0] : "http://localhost:8080/");
string output = args.Length > 1 ? args[1] : "export";
string prefix = args.Length > 2 ? args[2] : "";
using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
CancellationToken ct = timeout.Token;

using var api = new CollabHttpClient(server, new CollabHttpClientOptions
{
    // The same provider as CollabClientOptions.AccessTokenProvider; no token on an anonymous server.
    AccessTokenProvider = _ => ValueTask.FromResult(Environment.GetEnvironmentVariable("COLLAB_TOKEN")),
});
Directory.CreateDirectory(output);

await foreach (ApiDocumentSummary summary in api.ListAllDocumentsAsync(prefix, ct))
{
    string file = Path.Combine(output, Uri.EscapeDataString(summary.Id) + (summary.Type == CollabDocumentTypes.RichText ? ".html" : ".txt"));
    string etagFile = file + ".etag";
    string? lastETag = File.Exists(etagFile) ? await File.ReadAllTextAsync(etagFile, ct) : null;
    try
    {
        ApiDocument? head = await api.GetDocumentIfChangedAsync(summary.Id, lastETag, cancellationToken: ct);
        if (head is null)
        {
            Console.WriteLine($"{summary.Id}: unchanged");
            continue;
        }

        // Export exactly the version just read (the head may move on meanwhile): a past version never changes.
        DocumentPoint version = DocumentPoint.AtVersion(head.Version);
        string content = head.IsRichText
            ? await api.ExportHtmlAsync(summary.Id, version, ct)
            : await api.ExportTextAsync(summary.Id, version, ct);
        await File.WriteAllTextAsync(file, content, ct);
        await File.WriteAllTextAsync(etagFile, head.ETag, ct);
        Console.WriteLine($"{summary.Id}: version {head.Version} -> {file}");
    }
    catch (CollabDocumentDeletedException)
    {
        Console.WriteLine($"{summary.Id}: deleted meanwhile");
    }
}
