using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using Collab.Engine;
using Collab.Engine.Text;

namespace Collab.Bench.Engine;

/// <summary>
/// The text type's hot paths as the sequencer uses them: transform a submitted op against a
/// sequenced one, compose, apply to a rope, encode once and decode.
/// Targets (docs/OT.md): transform of two small ops under 150 ns allocating only the result;
/// apply of a small op to a 1 MiB rope under 2 µs.
/// </summary>
[MemoryDiagnoser]
public class EngineTextBenchmarks
{
    // Two typical concurrent edits: retain, insert, delete.
    private readonly TextOp _a = TextOp.Create([TextComponent.Retain(120), TextComponent.Insert("hello"), TextComponent.Delete(3)]);
    private readonly TextOp _b = TextOp.Create([TextComponent.Retain(80), TextComponent.Delete(5), TextComponent.Insert("wörld")]);
    // b' made after a, for compose.
    private readonly TextOp _afterA = TextOp.Create([TextComponent.Retain(122), TextComponent.Insert("😀"), TextComponent.Delete(4)]);

    private readonly ArrayBufferWriter<byte> _buffer = new(256);
    private Rope _small = Rope.Empty;
    private Rope _large = Rope.Empty;
    private TextOp _edit;
    private TextOp _largeEdit;
    private byte[] _encoded = [];

    [GlobalSetup]
    public void Setup()
    {
        _small = Rope.FromString(Text(1024));
        _large = Rope.FromString(Text(1024 * 1024));
        _edit = TextOp.Create([TextComponent.Retain(500), TextComponent.Insert("typed"), TextComponent.Delete(2)]);
        _largeEdit = TextOp.Create([TextComponent.Retain(524_288), TextComponent.Insert("typed"), TextComponent.Delete(2)]);
        TextOpCodec.Encode(_a, _buffer);
        _encoded = _buffer.WrittenSpan.ToArray();
    }

    private static string Text(int length)
    {
        var sb = new StringBuilder(length);
        var random = new Random(42);
        while (sb.Length < length)
        {
            sb.Append("lorem ipsum dolor sit amet ".AsSpan(0, random.Next(1, 27)));
        }

        return sb.ToString(0, length);
    }

    [Benchmark]
    public TextOp Transform() => TextType.Transform(_a, _b, TransformSide.Left);

    [Benchmark]
    public TextOp Compose() => TextType.Compose(_a, _afterA);

    [Benchmark]
    public Rope Apply1KiB() => TextType.Apply(_small, _edit);

    [Benchmark]
    public Rope Apply1MiB() => TextType.Apply(_large, _largeEdit);

    [Benchmark]
    public int Encode()
    {
        _buffer.ResetWrittenCount();
        TextOpCodec.Encode(_a, _buffer);
        return _buffer.WrittenCount;
    }

    [Benchmark]
    public TextOp Decode() => TextOpCodec.Decode(_encoded);
}
