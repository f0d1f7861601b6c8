using System.Collections.Concurrent;
using System.Text;
using Collab.Client;
using Collab.Engine;
using Collab.Engine.Sequencing;
using Collab.Engine.Text;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Infrastructure;

/// <summary>
/// A crowd of SDK clients editing a few documents at random: inserts (with astral-plane characters
/// and combining marks) and deletes at random places, random connection drops, and afterwards the
/// checks every collaborative-editing test needs: everyone converged on the server's text, and the op
/// log holds each acknowledged op exactly once.
/// </summary>
internal sealed class EditingRun : IAsyncDisposable
{
    private static readonly string[] s_pieces = ["a", "bc", "xyz", " ", "é", "e\u0301", "😀", "𝄞", "中文", "👩‍💻", "\n"];

    private readonly Func<Uri> _uri;
    private readonly ITestOutputHelper _output;
    private readonly List<Editor> _editors = [];
    private readonly string[] _docIds;
    private readonly int _seed;

    public EditingRun(Func<Uri> uri, int documents, int clientsPerDocument, ITestOutputHelper output, int? seed = null)
    {
        _uri = uri;
        _output = output;
        _seed = seed ?? Random.Shared.Next();
        output.WriteLine($"EditingRun seed: {_seed}");
        string prefix = "e2e/" + Guid.NewGuid().ToString("N")[..8] + "/";
        _docIds = Enumerable.Range(0, documents).Select(i => prefix + "doc" + i).ToArray();
        ClientsPerDocument = clientsPerDocument;
    }

    public int ClientsPerDocument { get; }

    public IReadOnlyList<string> DocIds => _docIds;

    public int Disconnects { get; private set; }

    /// <summary>Acknowledgements received so far, across all clients.</summary>
    public long AckCount => _editors.Sum(e => (long)e.Acked.Count);

    /// <summary>WebSocket connections opened so far (first connects and reconnects).</summary>
    public int Connects => _editors.Sum(e => Volatile.Read(ref e.Chaos.Connects));

    public async Task ConnectAsync(CancellationToken ct)
    {
        var rng = new Random(_seed);
        foreach (string docId in _docIds)
        {
            for (int c = 0; c < ClientsPerDocument; c++)
            {
                var chaos = new ChaosTransportFactory();
                var options = new CollabClientOptions
                {
                    TransportFactory = chaos,
                    Reconnect = new ReconnectPolicy { MinDelay = TimeSpan.FromMilliseconds(20), MaxDelay = TimeSpan.FromMilliseconds(400) },
                };
                CollabClient client = await CollabClient.ConnectAsync(_uri(), options, ct);
                CollabDocument doc = await client.OpenDocumentAsync(docId, ct);
                var editor = new Editor(client, doc, chaos, new Random(rng.Next()));
                doc.Acknowledged += (_, e) => editor.Acked.Add((e.ClientId, (long)e.ClientSeq, e.Version));
                _editors.Add(editor);
            }
        }
    }

    /// <summary>Every client edits on its own random schedule; a random client's connection is dropped every <paramref name="dropEvery"/>.</summary>
    public async Task EditAsync(TimeSpan duration, TimeSpan? dropEvery, CancellationToken ct, Func<Task>? midRun = null)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stop.CancelAfter(duration);
        var tasks = _editors.Select(e => Task.Run(() => e.EditLoopAsync(stop.Token), CancellationToken.None)).ToList();
        var chaosRng = new Random(_seed ^ 0x5eed);
        if (dropEvery is { } every)
        {
            tasks.Add(Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    await Delay(every, stop.Token);
                    Editor victim = _editors[chaosRng.Next(_editors.Count)];
                    if (victim.Chaos.AbortAll() > 0)
                    {
                        Disconnects++;
                    }
                }
            }, CancellationToken.None));
        }

        if (midRun is not null)
        {
            await Delay(duration / 2, ct);
            await midRun();
        }

        await Task.WhenAll(tasks);
        int edits = _editors.Sum(e => e.Edits);
        _output.WriteLine($"{edits} local edits by {_editors.Count} clients, {Disconnects} forced disconnects");
    }

    /// <summary>Waits until every client has no pending op and all clients of a document are at one version.</summary>
    public async Task SettleAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await Task.WhenAll(_editors.Select(e => e.Document.WhenSyncedAsync(cts.Token)));
            while (true)
            {
                bool settled = _docIds.All(id =>
                {
                    var versions = _editors.Where(e => e.Document.DocId == id).Select(e => e.Document.Version).Distinct().ToList();
                    return versions.Count == 1;
                });
                if (settled)
                {
                    return;
                }

                await Task.Delay(50, cts.Token);
            }
        }
        catch (OperationCanceledException)
        {
            foreach (Editor e in _editors)
            {
                _output.WriteLine($"{e.Document.DocId} {e.Client.ClientId}: v{e.Document.Version} pending={e.Document.HasPendingOps} state={e.Client.State}");
            }

            throw new TimeoutException($"Clients did not settle within {timeout}.");
        }
    }

    /// <summary>Every client's text equals what a fresh client reads from the server, per document; returns the texts.</summary>
    public async Task<Dictionary<string, (long Version, string Text)>> AssertConvergedAsync(CancellationToken ct)
    {
        var result = new Dictionary<string, (long, string)>();
        await using CollabClient observer = await CollabClient.ConnectAsync(_uri(), new CollabClientOptions(), ct);
        foreach (string docId in _docIds)
        {
            CollabDocument fresh = await observer.OpenDocumentAsync(docId, ct);
            foreach (Editor e in _editors.Where(e => e.Document.DocId == docId))
            {
                Assert.Equal(fresh.Version, e.Document.Version);
                Assert.Equal(fresh.Text, e.Document.Text);
            }

            result[docId] = (fresh.Version, fresh.Text);
        }

        return result;
    }

    /// <summary>
    /// The op log of each document: versions 1..N without gaps, each (client id, client seq) once, every
    /// acknowledged op present at the acknowledged version, and replaying it yields the converged text.
    /// </summary>
    public void AssertOpLog(Func<string, IReadOnlyList<OpRecord>> readLog, Dictionary<string, (long Version, string Text)> converged)
    {
        var acked = _editors.SelectMany(e => e.Acked).ToList();
        foreach (string docId in _docIds)
        {
            IReadOnlyList<OpRecord> log = readLog(docId);
            Assert.Equal(converged[docId].Version, log.Count);
            var seen = new HashSet<(string, long)>();
            Rope text = Rope.Empty;
            for (int i = 0; i < log.Count; i++)
            {
                Assert.Equal(i + 1, log[i].Version);
                Assert.True(seen.Add((log[i].ClientId, log[i].ClientSeq)), $"({log[i].ClientId}, {log[i].ClientSeq}) is in the log of {docId} twice");
                text = TextType.Apply(text, TextOpCodec.Decode(log[i].Op.Span));
            }

            Assert.Equal(converged[docId].Text, text.ToString());
            var byKey = log.ToDictionary(r => (r.ClientId, r.ClientSeq), r => r.Version);
            foreach ((string clientId, long seq, long version) in acked.Where(a => _editors.Any(e => e.Client.ClientId == a.ClientId && e.Document.DocId == docId)))
            {
                Assert.True(byKey.TryGetValue((clientId, seq), out long logged), $"acknowledged op ({clientId}, {seq}) of {docId} is missing from the log");
                Assert.Equal(version, logged);
            }
        }

        Assert.NotEmpty(acked);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (Editor e in _editors)
        {
            await e.Client.DisposeAsync();
        }
    }

    private static async Task Delay(TimeSpan delay, CancellationToken ct)
    {
        try
        {
            await Task.Delay(delay, ct);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private sealed class Editor(CollabClient client, CollabDocument document, ChaosTransportFactory chaos, Random rng)
    {
        public CollabClient Client { get; } = client;

        public CollabDocument Document { get; } = document;

        public ChaosTransportFactory Chaos { get; } = chaos;

        public ConcurrentBag<(string ClientId, long ClientSeq, long Version)> Acked { get; } = [];

        public int Edits;

        public async Task EditLoopAsync(CancellationToken ct)
        {
            while (!ct.IsCancellationRequested)
            {
                await Delay(TimeSpan.FromMilliseconds(rng.Next(5, 40)), ct);
                if (ct.IsCancellationRequested)
                {
                    return;
                }

                // A remote op may shrink the text between reading its length and editing: the SDK then
                // rejects the edit (as it would a UI's stale selection) and the editor simply tries again.
                try
                {
                    int length = (int)Document.Snapshot.Length;
                    if (length > 20 && rng.Next(3) == 0)
                    {
                        int pos = rng.Next(length);
                        Document.Delete(pos, Math.Min(rng.Next(1, 6), length - pos));
                    }
                    else
                    {
                        var sb = new StringBuilder();
                        for (int i = rng.Next(1, 4); i > 0; i--)
                        {
                            sb.Append(s_pieces[rng.Next(s_pieces.Length)]);
                        }

                        Document.Insert(rng.Next(length + 1), sb.ToString());
                    }
                }
                catch (OtException ex) when (ex.Code == OtErrorCode.OpTooLong)
                {
                    continue;
                }

                Edits++;
            }
        }
    }
}
