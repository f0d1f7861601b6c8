using Collab.Engine.RichText;
using CsCheck;

namespace Collab.Engine.Tests.RichText;

/// <summary>
/// The persistent tree behind rich-text snapshots: on documents of many leaves (which the oracle's small cases never
/// reach) applying an op must give exactly what composing the document's ops with it gives (rich-text's definition of
/// apply, itself checked against the oracle), keep every invariant, leave the old version intact, copy only a path,
/// and keep fragmentation bounded through long editing sessions.
/// </summary>
public sealed class RichDocumentTests
{
    private static readonly AttributeMap?[] s_formats =
    [
        null, null, AttributeMap.Of("bold", true), AttributeMap.Of("bold", RichValue.Null), AttributeMap.Of("italic", true),
        AttributeMap.Of("color", "#f00"), AttributeMap.Create(new("bold", true), new("italic", RichValue.Null)), AttributeMap.Of("header", 2),
    ];

    private static readonly string[] s_text = ["lorem ", "ipsum", "😀", "\n", "dolor sit amet, ", "é"];

    [Fact]
    public void Apply_on_large_documents_equals_compose_with_the_document_ops()
    {
        Gen.Int.Sample(seed =>
        {
            var random = new Random(seed);
            RichDocument doc = RandomDocument(random, random.Next(2_000, 12_000));
            RichOp docOp = doc.ToOp();
            for (int i = 0; i < 40; i++)
            {
                RichOp op = RandomOp(random, doc);
                string before = doc.ToString();
                RichDocument after = RichTextType.Apply(doc, op);
                after.CheckInvariants();
                RichOp expected = RichTextType.Compose(docOp, op);
                if (!after.ToOp().Equals(expected))
                {
                    throw new InvalidOperationException($"seed {seed}, op {op}: tree and compose disagree.");
                }

                Assert.Equal(before, doc.ToString()); // The old version is untouched.
                Assert.Equal(expected.TargetLength, after.Length);
                doc = after;
                docOp = expected;
            }
        }, iter: 40);
    }

    [Fact]
    public void A_small_edit_to_a_large_document_copies_a_path_not_the_document()
    {
        var random = new Random(5);
        RichDocument doc = RandomDocument(random, 1 << 20);
        Assert.True(doc.LeafCount > 1000);
        RichOp typing = RichOp.Insert(doc.Length / 2 - 1, "typed", AttributeMap.Of("bold", true));
        RichOp format = RichOp.Format(doc.Length / 3, 10, AttributeMap.Of("italic", true));
        RichTextType.Apply(doc, typing); // warm up
        RichTextType.Apply(doc, format);
        long start = GC.GetAllocatedBytesForCurrentThread();
        RichDocument typed = RichTextType.Apply(doc, typing);
        RichDocument formatted = RichTextType.Apply(doc, format);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - start;
        // Two root-to-leaf paths (height ~15) and two leaves of at most 1024 units, nowhere near the 2 MiB document.
        Assert.True(allocated < 48 * 1024, $"{allocated} bytes allocated for two small edits");
        Assert.Equal(doc.Length + 5, typed.Length);
        Assert.Equal(doc.Length, formatted.Length);
        Assert.True(doc.Height <= 1.45 * Math.Log2(doc.LeafCount) + 2);
    }

    [Fact]
    public void Long_editing_sessions_keep_leaves_full_and_the_tree_balanced()
    {
        var random = new Random(11);
        RichDocument doc = RichDocument.Empty;
        for (int i = 0; i < 20_000; i++)
        {
            int at = random.Next(doc.Length + 1);
            at = doc.SplitsSurrogatePair(at) ? at - 1 : at;
            RichOp op = random.Next(10) switch
            {
                < 7 => RichOp.Insert(at, s_text[random.Next(s_text.Length)], s_formats[random.Next(s_formats.Length)]),
                < 9 when doc.Length - at > 4 && !doc.SplitsSurrogatePair(at + 3) => RichOp.Delete(at, 3),
                _ when doc.Length - at > 8 && !doc.SplitsSurrogatePair(at + 8) => RichOp.Format(at, 8, AttributeMap.Of("underline", true)),
                _ => RichOp.Empty,
            };
            doc = RichTextType.Apply(doc, op);
        }

        doc.CheckInvariants();
        // Seams merge short leaves, so leaves average well above a quarter full.
        Assert.True(doc.LeafCount <= doc.Length / (RichDocument.MinLeaf / 2) + 1, $"{doc.LeafCount} leaves for {doc.Length} units");
        Assert.True(doc.Height <= 1.45 * Math.Log2(doc.LeafCount) + 2, $"height {doc.Height} for {doc.LeafCount} leaves");

        // Typing at one place in one format keeps one run (the insert merges into its neighbour).
        RichDocument typing = RichDocument.Parse("""[{"insert":"start\n"}]""");
        for (int i = 0; i < 3000; i++)
        {
            typing = RichTextType.Apply(typing, RichOp.Insert(5 + i, "k"));
        }

        Assert.True(typing.LeafCount <= typing.Length / (RichDocument.MaxLeaf / 2) + 1, $"{typing.LeafCount} leaves");
        Assert.Single(typing.ToOp().Components.ToArray());
    }

    [Fact]
    public void Equality_ignores_how_runs_are_cut_across_leaves()
    {
        string text = string.Concat(Enumerable.Repeat("abcdefghij", 300));
        RichDocument whole = RichDocument.FromOp(RichOp.Create(RichComponent.Insert(text)));
        RichDocument pieces = RichDocument.Empty;
        for (int i = 0; i < text.Length; i += 7)
        {
            pieces = RichTextType.Apply(pieces, RichOp.Insert(i, text.Substring(i, Math.Min(7, text.Length - i))));
        }

        Assert.Equal(whole, pieces);
        Assert.Equal(whole.GetHashCode(), pieces.GetHashCode());
        Assert.Single(pieces.ToOp().Components.ToArray());
        Assert.NotEqual(whole, RichTextType.Apply(whole, RichOp.Format(3, 1, AttributeMap.Of("bold", false))));
        Assert.Equal(text, pieces.ToPlainText());
    }

    [Fact]
    public void Deleting_everything_gives_the_empty_document()
    {
        RichDocument doc = RandomDocument(new Random(3), 5000);
        RichDocument empty = RichTextType.Apply(doc, RichOp.Delete(0, doc.Length));
        Assert.Same(RichDocument.Empty, empty);
        Assert.Equal("[]", empty.ToString());
    }

    private static RichDocument RandomDocument(Random random, int length)
    {
        var builder = new RichOpBuilder();
        int made = 0;
        while (made < length)
        {
            if (random.Next(40) == 0)
            {
                builder.Insert(new RichEmbed("image", "img" + random.Next(3) + ".png"), s_formats[random.Next(s_formats.Length)]);
                made++;
                continue;
            }

            string text = s_text[random.Next(s_text.Length)];
            builder.Insert(text, random.Next(4) == 0 ? s_formats[random.Next(s_formats.Length)] : null);
            made += text.Length;
        }

        return RichDocument.FromOp(builder.ToOp());
    }

    /// <summary>An op of up to six components with lengths up to a few leaves, never cutting a surrogate pair.</summary>
    private static RichOp RandomOp(Random random, RichDocument doc)
    {
        var builder = new RichOpBuilder();
        int position = 0;
        for (int i = random.Next(1, 7); i > 0; i--)
        {
            int left = doc.Length - position;
            int length = Math.Min(left, random.Next(1, 3000));
            while (length > 0 && doc.SplitsSurrogatePair(position + length))
            {
                length--;
            }

            switch (random.Next(4))
            {
                case 0 when length > 0:
                    builder.Retain(length);
                    position += length;
                    break;
                case 1 when length > 0:
                    builder.Retain(length, s_formats[random.Next(s_formats.Length)]);
                    position += length;
                    break;
                case 2 when length > 0:
                    builder.Delete(length);
                    position += length;
                    break;
                default:
                    if (random.Next(5) == 0)
                    {
                        builder.Insert(new RichEmbed("video", "v.mp4"), s_formats[random.Next(s_formats.Length)]);
                    }
                    else
                    {
                        builder.Insert(string.Concat(Enumerable.Range(0, random.Next(1, 400)).Select(_ => s_text[random.Next(s_text.Length)])), s_formats[random.Next(s_formats.Length)]);
                    }

                    break;
            }
        }

        return builder.ToOp();
    }
}
