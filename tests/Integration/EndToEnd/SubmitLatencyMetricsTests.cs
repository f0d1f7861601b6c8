using System.Diagnostics;
using System.Globalization;
using Collab.Engine.Text;
using Collab.Integration.Tests.Infrastructure;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 16 item 2: the server's latency breakdown of a submit (received → sequenced → committed → Ack written,
/// collab_submit_stage_seconds and collab_submit_ack_written_seconds; docs/OPERATIONS.md "Attributing submit latency").
/// A server process of its own (its metrics are its alone), SQLite with an fsync per commit, one client submitting
/// ops one at a time over the real wire.
/// </summary>
public sealed class SubmitLatencyMetricsTests : IAsyncLifetime
{
    private const int Ops = 40;
    private const string DocId = "latency/stages";
    private static readonly string[] Stages = ["sequence", "commit", "ack"];

    private readonly string _directory = Directory.CreateTempSubdirectory("collab-latency-stages-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Every_acknowledged_op_is_counted_once_in_each_stage_and_the_stages_add_up_to_the_whole()
    {
        await using ServerProcess server = await ServerProcess.StartAsync(new Dictionary<string, string>
        {
            ["Storage:DataDirectory"] = Path.Combine(_directory, "data"),
            ["Storage:SqliteSynchronous"] = "Full",
        });

        // Exported from start-up, at zero, so a rate() has a series before the first op.
        Scrape before = Scrape.Parse(await server.MetricsAsync());
        foreach (string stage in Stages)
        {
            Assert.Equal(0, before.Value("collab_submit_stage_seconds_count", stage));
        }

        Assert.Equal(0, before.Value("collab_submit_ack_written_seconds_count"));

        await using RawProtocolClient client = await RawProtocolClient.ConnectAsync(server.WebSocketUri);
        await client.SendAsync(new ClientMessage { RequestId = 1, Subscribe = new Subscribe { DocId = DocId, Snapshot = true } });
        await client.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot);

        // One op in flight at a time, as the SDK submits; the client's own round trips bound the server's share.
        double clientSeconds = 0;
        for (int seq = 1; seq <= Ops; seq++)
        {
            long sent = Stopwatch.GetTimestamp();
            await SubmitAsync(client, (ulong)seq, seq - 1, TextOp.Insert(0, "x"));
            ServerMessage ack = await client.ReceiveAsync(ServerMessage.BodyOneofCase.Ack);
            clientSeconds += Stopwatch.GetElapsedTime(sent).TotalSeconds;
            Assert.Equal(seq, ack.Ack.Version);
        }

        // A resend of the last op is answered as a duplicate: not a new op, so no stage counts it again.
        await SubmitAsync(client, Ops, Ops - 1, TextOp.Insert(0, "x"));
        Assert.True((await client.ReceiveAsync(ServerMessage.BodyOneofCase.Ack)).Ack.Duplicate);

        // The transport observes after the flush that wrote the Ack, which the client may see first: wait for the count.
        Scrape after = await WaitForCountAsync(server, Ops);
        foreach (string stage in Stages)
        {
            Assert.Equal(Ops, after.Value("collab_submit_stage_seconds_count", stage));
            Assert.True(after.Value("collab_submit_stage_seconds_sum", stage) > 0, $"stage {stage} has no time");
        }

        Assert.Equal(Ops, after.Value("collab_submit_ack_written_seconds_count"));

        // The stages of each op add up to its whole, so the sums do too (to rounding).
        double stages = Stages.Sum(s => after.Value("collab_submit_stage_seconds_sum", s));
        double whole = after.Value("collab_submit_ack_written_seconds_sum");
        Assert.InRange(stages, whole * 0.999999, whole * 1.000001);

        // Sane against the other clocks: the server's share is inside the client's round trips, and each op's commit
        // stage contains its batch's whole store append (fsync included), so it is at least the commit histogram's sum.
        Assert.True(whole < clientSeconds, $"server {whole:F6} s is not inside the client's round trips {clientSeconds:F6} s");
        double storeCommits = after.Value("collab_storage_commit_seconds_sum");
        Assert.True(storeCommits > 0);
        Assert.True(after.Value("collab_submit_stage_seconds_sum", "commit") >= storeCommits,
            $"commit stage {after.Value("collab_submit_stage_seconds_sum", "commit"):F6} s < store commits {storeCommits:F6} s");
    }

    private static async Task<Scrape> WaitForCountAsync(ServerProcess server, int count)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            Scrape scrape = Scrape.Parse(await server.MetricsAsync());
            if (scrape.Value("collab_submit_ack_written_seconds_count") >= count || deadline.Elapsed > TimeSpan.FromSeconds(10))
            {
                return scrape;
            }

            await Task.Delay(50);
        }
    }

    private static Task SubmitAsync(RawProtocolClient client, ulong seq, long baseVersion, TextOp op)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        TextOpCodec.Encode(op, buffer);
        return client.SendAsync(new ClientMessage
        {
            Submit = new Submit { DocId = DocId, ClientSeq = seq, BaseVersion = baseVersion, Op = ByteString.CopyFrom(buffer.WrittenSpan) },
        });
    }

    /// <summary>The samples of a Prometheus text exposition, by name and (optional) stage label.</summary>
    private sealed class Scrape
    {
        private readonly Dictionary<string, double> _samples = new(StringComparer.Ordinal);

        public static Scrape Parse(string text)
        {
            var scrape = new Scrape();
            foreach (string line in text.Split('\n'))
            {
                if (line.Length == 0 || line[0] == '#')
                {
                    continue;
                }

                int space = line.LastIndexOf(' ');
                scrape._samples[line[..space]] = double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture);
            }

            return scrape;
        }

        public double Value(string name, string? stage = null)
        {
            string key = stage is null ? name : $"{name}{{stage=\"{stage}\"}}";
            return _samples.TryGetValue(key, out double value) ? value : throw new KeyNotFoundException($"no sample {key} in the scrape");
        }
    }
}
