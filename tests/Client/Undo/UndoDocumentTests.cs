using Collab.Engine.Text;
using Collab.Protocol.V1;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Client.Tests.Undo;

/// <summary>The SDK's <see cref="UndoManager"/> on real documents: through the sync state machine (scripted server) and against the real server.</summary>
public sealed class UndoDocumentTests
{
    private const string Doc = "undo-doc";
    private static readonly Uri Seed = new("ws://seed.test/ws");

    [Fact]
    public async Task Undo_TransformsPastARemoteOpFromTheWire_AndSubmitsTheInverse()
    {
        var server = new FakeServer();
        Task<CollabClient> connecting = CollabClient.ConnectAsync(Seed, FakeServer.Options(server));
        (FakeConnection connection, _) = await server.AcceptAndWelcomeAsync();
        await using CollabClient client = await connecting;
        Task<CollabDocument> opening = client.OpenDocumentAsync(Doc);
        await connection.ExpectSubscribeAsync(Doc);
        connection.SendSnapshot(Doc, 3, "hello");
        CollabDocument document = await opening;
        using UndoManager undo = document.CreateUndoManager(new UndoManagerOptions { CaptureTimeout = TimeSpan.Zero });
        Assert.Throws<InvalidOperationException>(() => document.CreateUndoManager());

        document.Insert(5, " world");
        Submit first = await connection.ExpectSubmitAsync(Doc);
        connection.SendAck(Doc, first.ClientSeq, 4);
        await document.WhenSyncedAsync();

        // Another client prefixes the text: the undo step moves with it.
        var changed = new EventRecorder<DocumentChangedEventArgs>();
        document.Changed += changed.Handler;
        connection.SendOps(Doc, FakeConnection.Op(5, TextOp.Insert(0, ">> "), "other", 1));
        await changed.NextAsync();
        Assert.Equal(">> hello world", document.Text);

        Assert.True(undo.Undo());
        Assert.Equal(">> hello", document.Text);
        Submit inverse = await connection.ExpectSubmitAsync(Doc);
        Assert.Equal(5, inverse.BaseVersion);
        Assert.Equal(TextOp.Delete(8, 6), FakeConnection.Decode(inverse));
        connection.SendAck(Doc, inverse.ClientSeq, 6);
        await document.WhenSyncedAsync();

        // The undo itself is not recorded as an edit to undo; it is redoable.
        Assert.False(undo.CanUndo);
        Assert.True(undo.Redo());
        Assert.Equal(">> hello world", document.Text);
        Assert.Equal(TextOp.Insert(8, " world"), FakeConnection.Decode(await connection.ExpectSubmitAsync(Doc)));
    }

    [Fact]
    public async Task Undo_AfterAResyncThatDroppedTheEdit_HasNothingLeftToRemove()
    {
        var server = new FakeServer();
        Task<CollabClient> connecting = CollabClient.ConnectAsync(Seed, FakeServer.Options(server));
        (FakeConnection connection, _) = await server.AcceptAndWelcomeAsync();
        await using CollabClient client = await connecting;
        Task<CollabDocument> opening = client.OpenDocumentAsync(Doc);
        await connection.ExpectSubscribeAsync(Doc);
        connection.SendSnapshot(Doc, 3, "hello");
        CollabDocument document = await opening;
        using UndoManager undo = document.CreateUndoManager();

        document.Insert(0, "X");
        Submit submit = await connection.ExpectSubmitAsync(Doc);
        connection.SendError(ErrorCode.InvalidOp, retryable: false, Doc, submit.ClientSeq);
        Assert.True((await connection.ExpectSubscribeAsync(Doc)).Snapshot);
        connection.SendSnapshot(Doc, 4, "hello!");
        await document.WhenSyncedAsync();
        Assert.Equal("hello!", document.Text);

        // The rejected insert is gone; its undo step was transformed by the resync into nothing and is skipped.
        Assert.False(undo.Undo());
        Assert.Equal("hello!", document.Text);
    }

    [Fact]
    public async Task RealServer_ConcurrentEditsAndUndos_ConvergeAndUndoingEverythingRestoresTheText()
    {
        const string Initial = "0123456789";
        string[] alphabets = ["ABCDEFGH", "abcdefgh", "αβγδεζηθ"];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>
        {
            ["Limits:OpsPerSecond"] = "100000",
            ["Limits:OpsBurst"] = "100000",
            ["Limits:UserOpsPerSecond"] = "100000",
            ["Limits:UserOpsBurst"] = "100000",
        });

        var clients = new List<CollabClient>();
        var documents = new List<CollabDocument>();
        var managers = new List<UndoManager>();
        try
        {
            for (int i = 0; i < alphabets.Length; i++)
            {
                clients.Add(await CollabClient.ConnectAsync(server.WebSocketUri, new CollabClientOptions(), cts.Token));
                documents.Add(await clients[i].OpenDocumentAsync("undo-real", cts.Token));
            }

            documents[0].Insert(0, Initial);
            await documents[0].WhenSyncedAsync(cts.Token);
            await ConvergedAsync(documents, cts.Token);
            foreach (CollabDocument document in documents)
            {
                managers.Add(document.CreateUndoManager(new UndoManagerOptions { CaptureTimeout = TimeSpan.Zero }));
            }

            // Three editors at once, each on its own task: edits, undos and redos race with the others' ops.
            await Task.WhenAll(Enumerable.Range(0, documents.Count).Select(i => Task.Run(async () =>
            {
                var random = new Random(100 + i);
                for (int step = 0; step < 150; step++)
                {
                    CollabDocument document = documents[i];
                    switch (random.Next(6))
                    {
                        case 0:
                            managers[i].Undo();
                            break;
                        case 1:
                            managers[i].Redo();
                            break;
                        default:
                            EditOwnLetters(document, alphabets[i], random);
                            break;
                    }

                    if (random.Next(4) == 0)
                    {
                        await Task.Delay(random.Next(3), cts.Token);
                    }
                }
            }, cts.Token)));

            await Task.WhenAll(documents.Select(d => d.WhenSyncedAsync(cts.Token)));
            await ConvergedAsync(documents, cts.Token);

            await Task.WhenAll(Enumerable.Range(0, documents.Count).Select(i => Task.Run(() =>
            {
                while (managers[i].Undo())
                {
                }
            }, cts.Token)));
            await Task.WhenAll(documents.Select(d => d.WhenSyncedAsync(cts.Token)));
            string text = await ConvergedAsync(documents, cts.Token);
            Assert.Equal(Initial, text);
        }
        finally
        {
            managers.ForEach(m => m.Dispose());
            foreach (CollabClient client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    /// <summary>Inserts this user's letters anywhere, or deletes a run of them (so undoing is the user's alone to do).</summary>
    private static void EditOwnLetters(CollabDocument document, string alphabet, Random random)
    {
        // Read and edit atomically (under the document's own lock, which is reentrant): a remote op landing in between
        // would shift the positions onto another user's letters.
        lock (document.Sync.Gate)
        {
            string text = document.Text;
            List<int> own = [.. Enumerable.Range(0, text.Length).Where(i => alphabet.Contains(text[i], StringComparison.Ordinal))];
            if (own.Count > 0 && random.Next(3) == 0)
            {
                int start = own[random.Next(own.Count)];
                int length = 1;
                while (length < 3 && start + length < text.Length && alphabet.Contains(text[start + length], StringComparison.Ordinal))
                {
                    length++;
                }

                document.Delete(start, length);
            }
            else
            {
                document.Insert(random.Next(text.Length + 1), alphabet[random.Next(alphabet.Length)].ToString());
            }
        }
    }

    private static async Task<string> ConvergedAsync(List<CollabDocument> documents, CancellationToken cancellationToken)
    {
        while (true)
        {
            string text = documents[0].Text;
            long version = documents[0].Version;
            if (documents.All(d => !d.HasPendingOps && d.Version == version && d.Text == text))
            {
                return text;
            }

            await Task.Delay(10, cancellationToken);
        }
    }
}
