using System.Globalization;
using System.Text.Json;
using Collab.Engine.RichText;
using Xunit.Abstractions;

namespace Collab.Engine.Tests.RichText;

/// <summary>
/// Differential test against the npm oracle, ShareDB's <c>rich-text</c> 4.1.0 on <c>quill-delta</c> 4.2.2: a node
/// process generates distinct random cases (mulberry32, a fresh seed per run, printed on failure; set
/// COLLAB_ORACLE_SEED to replay one) plus the hand-written edge cases of tests/Engine/oracle/edge-cases.json, each with
/// the oracle's answers, and the engine must give the same answer for every operation of every case: apply,
/// transform of each op against the other on both sides, compose, transformCursor (own and others'), invert. Each op
/// also round-trips through the binary codec and JSON.
/// </summary>
[Trait("Category", "Slow")]
public sealed class RichOracleTests(ITestOutputHelper output)
{
    private const int RandomCases = 20_000;

    [Fact]
    public async Task Engine_agrees_with_the_npm_oracle_on_every_case()
    {
        uint seed = Environment.GetEnvironmentVariable("COLLAB_ORACLE_SEED") is { Length: > 0 } fixedSeed
            ? uint.Parse(fixedSeed, CultureInfo.InvariantCulture)
            : (uint)Random.Shared.NextInt64(uint.MaxValue);
        var failures = new List<string>();
        var inputs = new HashSet<string>(StringComparer.Ordinal);
        var edgeNames = new List<string>();
        int randomCases = 0;
        int checks = 0;
        JsonElement summary = default;

        await OracleProcess.RunAsync($"--seed {seed} --count {RandomCases} --edge edge-cases.json", line =>
        {
            using JsonDocument json = JsonDocument.Parse(line);
            JsonElement root = json.RootElement;
            if (root.TryGetProperty("summary", out JsonElement s))
            {
                summary = s.Clone();
                return;
            }

            bool edge = root.TryGetProperty("edge", out _);
            string name = edge ? root.GetProperty("name").GetString()! : "random case " + (randomCases + 1);
            if (edge)
            {
                edgeNames.Add(name);
            }
            else
            {
                randomCases++;
                inputs.Add(string.Join('|', root.GetProperty("doc").GetRawText(), root.GetProperty("a").GetRawText(), root.GetProperty("b").GetRawText(),
                    root.GetProperty("c").GetRawText(), root.GetProperty("cursors").GetRawText()));
            }

            var check = new CaseCheck(root, name);
            try
            {
                check.Run();
            }
            catch (Exception ex)
            {
                check.Fail($"threw {ex.GetType().Name}: {ex.Message}");
            }

            checks += check.Checks;
            if (check.Failure is not null && failures.Count < 10)
            {
                failures.Add(check.Failure);
            }
        }, TimeSpan.FromMinutes(5));

        output.WriteLine($"seed {seed}: {randomCases} random cases ({inputs.Count} distinct) and {edgeNames.Count} edge cases, {checks} checks; generator: {summary}");
        Assert.True(failures.Count == 0, $"seed {seed} (rerun with COLLAB_ORACLE_SEED={seed}):\n" + string.Join("\n\n", failures));
        Assert.Equal(JsonValueKind.Object, summary.ValueKind);
        Assert.Equal(RandomCases, summary.GetProperty("cases").GetInt32());
        Assert.Equal(RandomCases, randomCases);
        Assert.Equal(randomCases, inputs.Count);

        using JsonDocument edgeFile = JsonDocument.Parse(File.ReadAllText(Path.Combine(OracleProcess.Directory, "edge-cases.json")));
        Assert.Equal(edgeFile.RootElement.GetArrayLength(), edgeNames.Count);
        Assert.True(edgeNames.Count >= 15);
    }

    /// <summary>Every operation of one case against the oracle's answers; the first mismatch is recorded.</summary>
    private sealed class CaseCheck(JsonElement root, string name)
    {
        public string? Failure { get; private set; }

        public int Checks { get; private set; }

        public void Run()
        {
            if (root.TryGetProperty("raw", out JsonElement raw))
            {
                // Hand-written inputs may be unnormalized: the parser must normalize them exactly as quill-delta's push and chop do.
                JsonElement normal = root.GetProperty("normal");
                foreach (string part in new[] { "doc", "a", "b", "c" })
                {
                    Expect("normal form of " + part, RichJson.ParseOp(raw.GetProperty(part).GetRawText()), Op(normal.GetProperty(part)));
                }
            }

            RichDocument doc = RichDocument.FromOp(Op(root.GetProperty("doc")));
            RichOp a = Op(root.GetProperty("a"));
            RichOp b = Op(root.GetProperty("b"));
            RichOp c = Op(root.GetProperty("c"));

            RichDocument afterA = RichTextType.Apply(doc, a);
            RichDocument afterB = RichTextType.Apply(doc, b);
            RichDocument afterAc = RichTextType.Apply(afterA, c);
            afterA.CheckInvariants();
            afterAc.CheckInvariants();
            Expect("apply(doc, a)", afterA.ToOp(), Op(root.GetProperty("applyA")));
            Expect("apply(doc, b)", afterB.ToOp(), Op(root.GetProperty("applyB")));
            Expect("apply(apply(doc, a), c)", afterAc.ToOp(), Op(root.GetProperty("applyAC")));

            Expect("transform(a, b, left)", RichTextType.Transform(a, b, TransformSide.Left), Op(root.GetProperty("aLeft")));
            Expect("transform(a, b, right)", RichTextType.Transform(a, b, TransformSide.Right), Op(root.GetProperty("aRight")));
            Expect("transform(b, a, left)", RichTextType.Transform(b, a, TransformSide.Left), Op(root.GetProperty("bLeft")));
            Expect("transform(b, a, right)", RichTextType.Transform(b, a, TransformSide.Right), Op(root.GetProperty("bRight")));

            RichOp composed = RichTextType.Compose(a, c);
            Expect("compose(a, c)", composed, Op(root.GetProperty("composeAC")));
            Expect("apply(doc, compose(a, c))", RichTextType.Apply(doc, composed).ToOp(), afterAc.ToOp());

            Expect("invert(a, doc)", RichTextType.Invert(a, doc), Op(root.GetProperty("invertA")));
            Expect("invert(b, doc)", RichTextType.Invert(b, doc), Op(root.GetProperty("invertB")));

            JsonElement cursors = root.GetProperty("cursors");
            JsonElement moved = root.GetProperty("cursorsA");
            for (int i = 0; i < cursors.GetArrayLength(); i++)
            {
                int cursor = cursors[i].GetInt32();
                Expect($"transformCursor({cursor}, a, own)", RichTextType.TransformCursor(cursor, a, isOwnOp: true), moved[i][0].GetInt32());
                Expect($"transformCursor({cursor}, a, other)", RichTextType.TransformCursor(cursor, a, isOwnOp: false), moved[i][1].GetInt32());
            }

            foreach (RichOp op in new[] { a, b, c, composed, doc.ToOp() })
            {
                byte[] bytes = RichOpCodec.Encode(op);
                RichOp decoded = RichOpCodec.Decode(bytes);
                Expect("decode(encode(op))", decoded, op);
                Expect("encoding is canonical", Convert.ToHexString(RichOpCodec.Encode(decoded)), Convert.ToHexString(bytes));
                Expect("encoded length", RichOpCodec.GetEncodedLength(op), bytes.Length);
                Expect("JSON round trip", RichJson.ParseOp(RichJson.Write(op)), op);
            }
        }

        public void Fail(string message) => Failure ??= $"{name}: {message}\n  case: {root.GetRawText()}";

        /// <summary>The oracle's op; it must already be in normal form (parsing it changes nothing).</summary>
        private RichOp Op(JsonElement element)
        {
            RichOp op = RichJson.ParseOp(element.GetRawText());
            Expect("oracle output in normal form (components)", op.Count, element.GetArrayLength());
            return op;
        }

        private void Expect<T>(string what, T actual, T expected)
        {
            Checks++;
            if (!EqualityComparer<T>.Default.Equals(actual, expected))
            {
                Fail($"{what}: engine {actual}, oracle {expected}");
            }
        }
    }
}
