using System.Buffers;
using BenchmarkDotNet.Attributes;
using Collab.Engine;
using Collab.Engine.RichText;

namespace Collab.Bench.Engine;

/// <summary>
/// The rich-text type's hot paths as the sequencer uses them, on typical formatted edits: transform a submitted op
/// against a sequenced one, compose, apply to a formatted document (1 KiB and 1 MiB), encode once, decode a submission.
/// </summary>
[MemoryDiagnoser]
public class EngineRichTextBenchmarks
{
    private static readonly AttributeMap s_bold = AttributeMap.Of("bold", true);
    private static readonly AttributeMap s_italicRed = AttributeMap.Create(new("italic", true), new("color", "#e60000"))!;

    // Two concurrent edits: one types bold text and deletes; the other formats a range that overlaps it and types.
    private readonly RichOp _a = RichOp.Create(RichComponent.Retain(120), RichComponent.Insert("hello", s_bold), RichComponent.Delete(3));
    private readonly RichOp _b = RichOp.Create(RichComponent.Retain(100), RichComponent.Retain(30, s_italicRed), RichComponent.Insert("wörld"));

    // Made after a, for compose: formats what a typed and types on.
    private readonly RichOp _afterA = RichOp.Create(RichComponent.Retain(118), RichComponent.Retain(6, AttributeMap.Of("underline", true)), RichComponent.Insert("😀", s_bold));

    private readonly ArrayBufferWriter<byte> _buffer = new(256);
    private RichDocument _small = RichDocument.Empty;
    private RichDocument _large = RichDocument.Empty;
    private RichOp _edit;
    private RichOp _largeEdit;
    private byte[] _encoded = [];

    [GlobalSetup]
    public void Setup()
    {
        _small = Document(1024);
        _large = Document(1024 * 1024);
        _edit = RichOp.Create(RichComponent.Retain(500), RichComponent.Insert("typed", s_bold), RichComponent.Retain(10, s_italicRed));
        _largeEdit = RichOp.Create(RichComponent.Retain(524_288), RichComponent.Insert("typed", s_bold), RichComponent.Retain(10, s_italicRed));
        RichOpCodec.Encode(_b, _buffer);
        _encoded = _buffer.WrittenSpan.ToArray();
    }

    /// <summary>Prose in paragraphs, about one run in four bold, italic-red or a link, an image now and then.</summary>
    private static RichDocument Document(int length)
    {
        var random = new Random(42);
        AttributeMap link = AttributeMap.Of("link", "https://example.test/page");
        var builder = new RichOpBuilder();
        int made = 0;
        while (made < length)
        {
            if (random.Next(200) == 0)
            {
                builder.Insert(new RichEmbed("image", "https://example.test/figure.png"));
                made++;
                continue;
            }

            string text = "lorem ipsum dolor sit amet, consectetur\n"[..random.Next(1, 41)];
            text = text[..Math.Min(text.Length, length - made)];
            builder.Insert(text, random.Next(8) switch { 0 => s_bold, 1 => s_italicRed, 2 => link, _ => null });
            made += text.Length;
        }

        return RichDocument.FromOp(builder.ToOp());
    }

    [Benchmark]
    public RichOp Transform() => RichTextType.Transform(_a, _b, TransformSide.Left);

    [Benchmark]
    public RichOp Compose() => RichTextType.Compose(_a, _afterA);

    [Benchmark]
    public RichDocument Apply1KiB() => RichTextType.Apply(_small, _edit);

    [Benchmark]
    public RichDocument Apply1MiB() => RichTextType.Apply(_large, _largeEdit);

    [Benchmark]
    public int Encode()
    {
        _buffer.ResetWrittenCount();
        RichOpCodec.Encode(_b, _buffer);
        return _buffer.WrittenCount;
    }

    [Benchmark]
    public RichOp Decode() => RichTextType.Default.DecodeSubmission(_encoded);
}
