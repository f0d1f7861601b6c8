using System.Net;
using System.Text.Json;
using Collab.Engine.Text;
using Collab.Integration.Tests.Infrastructure;
using Collab.Protocol.V1;
using Collab.Server.Api;
using Collab.Server.Storage;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Collab.Integration.Tests.Api;

/// <summary>
/// Time travel over a long history: the stored snapshots (written by the document host as it would in production) bound
/// the replay of every past version; pruned history answers 410 with the earliest version; sparse snapshots answer 422.
/// </summary>
public sealed class ApiHistoryTests
{
    private static readonly Dictionary<string, string?> FastWrites = new()
    {
        ["Storage:SqliteSynchronous"] = "Normal",
        ["Limits:OpsPerSecond"] = "0",
        ["Limits:MessagesPerSecond"] = "0",
        ["Limits:UserOpsPerSecond"] = "0",
    };

    [Fact]
    public async Task Every_version_of_a_100000_op_document_reads_back_with_bounded_replay()
    {
        const int Ops = 100_000;
        await using InProcessServer server = await InProcessServer.StartAsync(settings: FastWrites);
        using var api = new ApiClient(server.HttpUri);
        Assert.Equal(HttpStatusCode.Created, (await api.CreateAsync("long/history", "")).StatusCode);

        // Versions to check: the ends, both sides of snapshot boundaries, and random ones.
        var random = new Random(7919);
        var targets = new SortedSet<long> { 0, 1, 2, 999, 1000, 1001, 1499, 1500, 1501, 50_000, Ops - 1, Ops };
        while (targets.Count < 250)
        {
            targets.Add(random.Next(0, Ops + 1));
        }

        var expected = new Dictionary<long, string> { [0] = "" };
        await WriteHistoryAsync(server, "long/history", Ops, targets, expected);

        HistoryReader reader = server.Services.GetRequiredService<HistoryReader>();
        IDocumentHistory catalog = reader.Catalog;
        HistoryBounds bounds = await catalog.GetBoundsAsync("long/history", CancellationToken.None);
        Assert.Equal(Ops, bounds.Head);
        Assert.True(bounds.LastSnapshot >= Ops - 1_500, $"the host wrote no recent snapshot (last {bounds.LastSnapshot})");
        int maxReplay = server.Services.GetRequiredService<ApiOptions>().ReplayBound;
        Assert.Equal(5_000, maxReplay);
        long worst = 0;
        foreach (long version in targets)
        {
            JsonElement body = await api.GetJsonAsync("long/history", $"?version={version}");
            Assert.Equal(version, body.GetProperty("version").GetInt64());
            Assert.True(expected[version] == body.GetProperty("content").GetString(), $"version {version} differs");

            PastRead read = await reader.ReadVersionAsync("long/history", Collab.Server.Sessions.TextDocumentKind.Instance, version, bounds, CancellationToken.None);
            Assert.True(read.Replayed <= maxReplay, $"version {version} replayed {read.Replayed} ops, more than K = {maxReplay}");
            worst = Math.Max(worst, read.Replayed);
        }

        // With every snapshot kept a version is at most one snapshot interval (1,000 to 1,500 ops here) from one.
        Assert.InRange(worst, 1, 1_600);
        Assert.Equal(expected[Ops], (await api.GetJsonAsync("long/history")).GetProperty("content").GetString());
    }

    [Fact]
    public async Task Versions_before_pruned_history_answer_410_with_the_earliest_available()
    {
        var settings = new Dictionary<string, string?>(FastWrites)
        {
            ["Storage:SnapshotEveryOps"] = "10",
            ["Storage:OpRetention"] = "00:00:00",
            ["Api:MaxReplayOps"] = "20",
        };
        await using InProcessServer server = await InProcessServer.StartAsync(settings: settings);
        using var api = new ApiClient(server.HttpUri);
        Assert.Equal(HttpStatusCode.Created, (await api.CreateAsync("pruned/a", "")).StatusCode);
        var expected = new Dictionary<long, string> { [0] = "" };
        await WriteHistoryAsync(server, "pruned/a", 60, new SortedSet<long> { 60 }, expected);
        await WaitForSnapshotAsync(server, "pruned/a", 40);

        Assert.Equal("", (await api.GetJsonAsync("pruned/a", "?version=0")).GetProperty("content").GetString());
        await server.Services.GetServices<IHostedService>().OfType<RetentionService>().Single().RunOnceAsync(CancellationToken.None);

        HistoryBounds bounds = await server.Services.GetRequiredService<HistoryReader>().Catalog.GetBoundsAsync("pruned/a", CancellationToken.None);
        Assert.True(bounds.FirstOp is null or > 1, "retention pruned nothing"); // null: a snapshot covered every op
        JsonElement gone = await ApiClient.AssertProblemAsync(await api.GetAsync("pruned/a", "?version=3"), HttpStatusCode.Gone, "VERSION_TOO_OLD");
        Assert.Equal(bounds.EarliestReadable, gone.GetProperty("earliestVersion").GetInt64());
        Assert.True(bounds.EarliestReadable >= 40);
        await ApiClient.AssertProblemAsync(await api.Http.GetAsync(ApiClient.Path("pruned/a") + "/ops?from=0"), HttpStatusCode.Gone, "VERSION_TOO_OLD");

        // From the earliest available version on, everything reads.
        Assert.Equal(bounds.EarliestReadable, (await api.GetJsonAsync("pruned/a", $"?version={bounds.EarliestReadable}")).GetProperty("version").GetInt64());
        Assert.Equal(expected[60], (await api.GetJsonAsync("pruned/a", "?version=60")).GetProperty("content").GetString());
        Assert.Equal(expected[60], (await api.GetJsonAsync("pruned/a")).GetProperty("content").GetString());
    }

    [Fact]
    public async Task A_version_further_than_K_from_any_kept_snapshot_is_refused_422()
    {
        var settings = new Dictionary<string, string?>(FastWrites)
        {
            ["Storage:SnapshotEveryOps"] = "10",
            ["Storage:SnapshotsToKeep"] = "1",
            ["Api:MaxReplayOps"] = "20",
        };
        await using InProcessServer server = await InProcessServer.StartAsync(settings: settings);
        using var api = new ApiClient(server.HttpUri);
        Assert.Equal(HttpStatusCode.Created, (await api.CreateAsync("sparse/a", "")).StatusCode);
        var expected = new Dictionary<long, string> { [0] = "" };
        await WriteHistoryAsync(server, "sparse/a", 100, new SortedSet<long> { 15, 100 }, expected);
        await WaitForSnapshotAsync(server, "sparse/a", 80);

        Assert.Equal(expected[15], (await api.GetJsonAsync("sparse/a", "?version=15")).GetProperty("content").GetString());
        JsonElement problem = await ApiClient.AssertProblemAsync(await api.GetAsync("sparse/a", "?version=50"), HttpStatusCode.UnprocessableEntity, "VERSION_TOO_OLD");
        Assert.Contains("Api:MaxReplayOps=20", problem.GetProperty("detail").GetString());
    }

    /// <summary>
    /// Writes <paramref name="count"/> ops through one pipelining socket client (each made against the version before
    /// it, so none is transformed), recording the expected text at every version in <paramref name="targets"/>.
    /// </summary>
    internal static async Task WriteHistoryAsync(InProcessServer server, string docId, int count, SortedSet<long> targets, Dictionary<long, string> expected)
    {
        await using RawProtocolClient client = await RawProtocolClient.ConnectAsync(server.WebSocketUri);
        await client.SendAsync(new ClientMessage { RequestId = 1, Subscribe = new Subscribe { DocId = docId, FromVersion = 0 } });
        long start = (await client.ReceiveAsync(ServerMessage.BodyOneofCase.Subscribed)).Subscribed.CurrentVersion;
        Assert.Equal(0, start);

        Task<long> acks = Task.Run(async () =>
        {
            long last = 0;
            while (last < count)
            {
                ServerMessage message = await client.ReceiveAsync();
                if (message.BodyCase == ServerMessage.BodyOneofCase.Error)
                {
                    throw new InvalidOperationException(message.Error.ToString());
                }

                if (message.BodyCase == ServerMessage.BodyOneofCase.Ack)
                {
                    last = message.Ack.Version;
                }
            }

            return last;
        });

        Rope text = Rope.Empty;
        for (int version = 1; version <= count; version++)
        {
            // Inserts and, now and then, deletes at positions spread over the text.
            TextOp op = version % 5 == 0 && text.Length > 2
                ? TextOp.Delete((int)((version * 7919L) % (text.Length - 1)), 1)
                : TextOp.Insert((int)((version * 104729L) % (text.Length + 1)), ((char)('a' + (version % 26))).ToString());
            text = TextType.Apply(text, op);
            if (targets.Contains(version))
            {
                expected[version] = text.ToString();
            }

            await client.SendAsync(new ClientMessage
            {
                Submit = new Submit { DocId = docId, ClientSeq = (ulong)version, BaseVersion = version - 1, Op = ByteString.CopyFrom(ApiDocumentTests.Encode(op)) },
            });
        }

        Assert.Equal(count, await acks.WaitAsync(TimeSpan.FromMinutes(5)));
    }

    private static async Task WaitForSnapshotAsync(InProcessServer server, string docId, long atLeast)
    {
        IDocumentHistory catalog = server.Services.GetRequiredService<HistoryReader>().Catalog;
        // Snapshots are written in the background; under a loaded ./test.sh one took longer than the 10 s this waited before.
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (waited.Elapsed < TimeSpan.FromSeconds(60))
        {
            if ((await catalog.GetBoundsAsync(docId, CancellationToken.None)).LastSnapshot >= atLeast)
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"no snapshot of {docId} at or past {atLeast}");
    }
}
