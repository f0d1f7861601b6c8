using System.Text;
using BenchmarkDotNet.Attributes;
using Collab.Engine.Text;

namespace Collab.Bench.Engine;

/// <summary>
/// The text type's apply as an editor drives it: one-character edits to one evolving document, per op (issue 16: the
/// rope's leaf copy is the largest allocation of a submit). <see cref="Random"/> alternates an insert at a random position
/// with a delete at a random position (the load tool's pattern, and the worst case for any locality); <see cref="Typing"/>
/// types 16 characters forward at a random cursor, then backspaces them (what a person at a keyboard does). Both keep the
/// document's length steady, so every invocation edits the same-sized document; the ops are made in the setup, so only
/// the apply is measured.
/// </summary>
[MemoryDiagnoser]
public class EngineRopeBenchmarks
{
    private const int Ops = 1024;
    private const int Burst = 16;

    private TextOp[] _random = [];
    private TextOp[] _typing = [];
    private Rope _randomDoc = Rope.Empty;
    private Rope _typingDoc = Rope.Empty;

    [Params(1024, 10 * 1024, 100 * 1024, 1024 * 1024)]
    public int DocChars { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(7);
        string text = Text(DocChars, random);
        _randomDoc = Rope.FromString(text);
        _typingDoc = _randomDoc;

        _random = new TextOp[Ops];
        for (int i = 0; i < Ops; i += 2)
        {
            _random[i] = TextOp.Insert(random.Next(DocChars + 1), "x");
            _random[i + 1] = TextOp.Delete(random.Next(DocChars + 1), 1);
        }

        _typing = new TextOp[Ops];
        for (int i = 0; i < Ops; i += 2 * Burst)
        {
            int cursor = random.Next(DocChars + 1);
            for (int k = 0; k < Burst; k++)
            {
                _typing[i + k] = TextOp.Insert(cursor + k, ((char)('a' + k)).ToString());
                _typing[i + Burst + k] = TextOp.Delete(cursor + Burst - 1 - k, 1);
            }
        }
    }

    private static string Text(int length, Random random)
    {
        var sb = new StringBuilder(length + 32);
        while (sb.Length < length)
        {
            sb.Append("lorem ipsum dolor sit amet ".AsSpan(0, random.Next(1, 27)));
        }

        return sb.ToString(0, length);
    }

    [Benchmark(OperationsPerInvoke = Ops)]
    public Rope Random()
    {
        Rope doc = _randomDoc;
        foreach (TextOp op in _random)
        {
            doc = TextType.Apply(doc, op);
        }

        return _randomDoc = doc;
    }

    [Benchmark(OperationsPerInvoke = Ops)]
    public Rope Typing()
    {
        Rope doc = _typingDoc;
        foreach (TextOp op in _typing)
        {
            doc = TextType.Apply(doc, op);
        }

        return _typingDoc = doc;
    }
}
