using System.Runtime.CompilerServices;
using System.Text;
using Collab.Protocol.V1;
using Collab.Server.Tests.Security.Infrastructure;
using Collab.Server.Transport;

namespace Collab.Server.Tests.Fuzz;

/// <summary>Replays every input in Regressions/ through its target (format in Regressions/README.md).</summary>
public sealed class FuzzRegressionTests
{
    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (string path in Directory.EnumerateFiles(CorpusDirectory(), "*.hex").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(path));
        }

        return data;
    }

    [Fact]
    public void TheCorpusIsNotEmptyAndEveryFileNamesAKnownTarget()
    {
        string[] files = [.. System.IO.Directory.EnumerateFiles(CorpusDirectory(), "*.hex")];
        Assert.NotEmpty(files);
        Assert.All(files, f => Assert.Contains(Read(f).Target, new[] { "frames", "client-messages", "http" }));
    }

    [Theory]
    [MemberData(nameof(Files))]
    public async Task RegressionInputStaysFixed(string file)
    {
        (string target, byte[][] inputs) = Read(Path.Combine(CorpusDirectory(), file));
        switch (target)
        {
            case "frames":
                byte[] bytes = [.. Encoding.ASCII.GetBytes(PipeTransport.Handshake), .. inputs.SelectMany(b => b)];
                foreach (int chunk in new[] { 1, 3, bytes.Length })
                {
                    FrameParserFuzzTests.AssertSafe(await PipeTransport.RunAsync(bytes, chunk, new TransportOptions { MaxMessageBytes = 2048 }));
                }

                break;
            case "client-messages":
                await ReplayMessagesAsync(inputs);
                break;
            default:
                byte[] head = [.. inputs.SelectMany(b => b)];
                for (int split = 0; split < head.Length; split++)
                {
                    HttpAndTokenFuzzTests.AssertSplitParsesLikeWhole(head, [split]);
                }

                break;
        }
    }

    private static async Task ReplayMessagesAsync(byte[][] messages)
    {
        await using SessionHarness harness = await SessionHarness.StartAsync();
        FakeConnection client = await harness.ConnectAsync(harness.Tokens.Create("regression", """{"write":["reg/*"]}"""));
        await client.SubscribeAndWaitAsync("reg/a");
        foreach (byte[] message in messages)
        {
            await client.SendRawAsync(message);
        }

        // A clean op lands at the version that counts only the ops acked so far.
        await client.SubmitAsync("reg/a", 1_000_000, 0, SessionHarness.Insert(0, "ok"));
        ServerMessage ack = await client.NextAsync(m => m.Ack is not null && m.Ack.ClientSeq == 1_000_000);
        int acked = client.Received.Count(m => m.Ack is not null && m.Ack.DocId == "reg/a" && !m.Ack.Duplicate);
        Assert.Equal(acked, ack.Ack.Version);
    }

    private static (string Target, byte[][] Inputs) Read(string path)
    {
        string target = "";
        var inputs = new List<byte[]>();
        foreach (string raw in File.ReadAllLines(path))
        {
            string line = raw.Trim();
            if (line.StartsWith("# target:", StringComparison.Ordinal))
            {
                target = line["# target:".Length..].Trim();
            }
            else if (line.Length > 0 && line[0] != '#')
            {
                inputs.Add(Convert.FromHexString(line.Replace(" ", "", StringComparison.Ordinal)));
            }
        }

        return (target, [.. inputs]);
    }

    private static string CorpusDirectory([CallerFilePath] string source = "") => Path.Combine(Path.GetDirectoryName(source)!, "Regressions");
}
