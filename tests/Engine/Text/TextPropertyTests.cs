using System.Buffers;
using Collab.Engine.Text;
using CsCheck;

namespace Collab.Engine.Tests.Text;

/// <summary>
/// The OT laws over random documents mixing ASCII, combining marks, CJK and astral-plane emoji.
/// Each property runs on fixed seeds and one fresh seed (printed by CsCheck on failure).
/// </summary>
public sealed class TextPropertyTests
{
    private const int Iterations = 1_500;

    private static string Print((string Doc, TextOp A, TextOp B) t) => $"doc={t.Doc} a={t.A} b={t.B}";

    [Fact]
    public void TransformConverges() => Property.Check(TextGen.DocAndTwoOps, t =>
    {
        (string doc, TextOp a, TextOp b) = t;
        string viaA = TextType.Apply(TextType.Apply(doc, a), TextType.Transform(b, a, TransformSide.Right));
        string viaB = TextType.Apply(TextType.Apply(doc, b), TextType.Transform(a, b, TransformSide.Left));
        Assert.Equal(viaA, viaB);

        // The rope agrees with the string model on both paths.
        Rope rope = Rope.FromString(doc);
        Rope ropeViaA = TextType.Apply(TextType.Apply(rope, a), TextType.Transform(b, a, TransformSide.Right));
        Assert.True(ropeViaA.ContentEquals(viaA));
    }, Iterations, Print);

    [Fact]
    public void TransformedOpsStayValidAndFitTheirDocument() => Property.Check(TextGen.DocAndTwoOps, t =>
    {
        (string doc, TextOp a, TextOp b) = t;
        foreach (TransformSide side in new[] { TransformSide.Left, TransformSide.Right })
        {
            TextOp transformed = TextType.Transform(a, b, side);
            TextType.Validate(transformed);
            TextType.Validate(transformed, TextGen.CodePointCount(TextType.Apply(doc, b)));
        }
    }, Iterations, Print);

    [Fact]
    public void TransformAgainstNoopOrSelfIsConsistent() => Property.Check(TextGen.DocAndOp, t =>
    {
        (_, TextOp a) = t;
        Assert.Equal(a, TextType.Transform(a, TextOp.Empty, TransformSide.Left));
        Assert.Equal(a, TextType.Transform(a, TextOp.Empty, TransformSide.Right));
        Assert.True(TextType.Transform(TextOp.Empty, a, TransformSide.Left).IsNoop);
    }, Iterations);

    [Fact]
    public void ComposeMatchesSequentialApply() => Property.Check(TextGen.DocAndThreeSequentialOps, t =>
    {
        (string doc, TextOp a, TextOp b, _) = t;
        TextOp ab = TextType.Compose(a, b);
        TextType.Validate(ab);
        string expected = TextType.Apply(TextType.Apply(doc, a), b);
        Assert.Equal(expected, TextType.Apply(doc, ab));
        Assert.True(TextType.Apply(Rope.FromString(doc), ab).ContentEquals(expected));
    }, Iterations, t => $"doc={t.Doc} a={t.A} b={t.B}");

    [Fact]
    public void ComposeIsAssociative() => Property.Check(TextGen.DocAndThreeSequentialOps, t =>
    {
        (string doc, TextOp a, TextOp b, TextOp c) = t;
        TextOp left = TextType.Compose(TextType.Compose(a, b), c);
        TextOp right = TextType.Compose(a, TextType.Compose(b, c));
        Assert.Equal(left, right);
        Assert.Equal(TextType.Apply(TextType.Apply(TextType.Apply(doc, a), b), c), TextType.Apply(doc, left));
    }, Iterations, t => $"doc={t.Doc} a={t.A} b={t.B} c={t.C}");

    [Fact]
    public void InvertUndoes() => Property.Check(TextGen.DocAndOp, t =>
    {
        (string doc, TextOp op) = t;
        TextOp inverse = TextType.Invert(op, doc);
        Assert.Equal(inverse, TextType.Invert(op, Rope.FromString(doc)));
        string after = TextType.Apply(doc, op);
        Assert.Equal(doc, TextType.Apply(after, inverse));
        Assert.True(TextType.Apply(Rope.FromString(after), inverse).ContentEquals(doc));
        Assert.True(TextType.Compose(op, inverse) is var roundTrip && TextType.Apply(doc, roundTrip) == doc);
    }, Iterations, t => $"doc={t.Doc} op={t.Op}");

    private static readonly Gen<(string Doc, List<TextComponent> Raw)> DocAndRawComponents =
        from doc in TextGen.SmallDoc
        from intents in TextGen.Intents(6, 4, maxSteps: 12)
        select (doc, TextGen.ToComponents(intents, TextGen.CodePointCount(doc)));

    [Fact]
    public void NormalizationIsIdempotentAndPreservesMeaning() => Property.Check(DocAndRawComponents, t =>
    {
        (string doc, List<TextComponent> raw) = t;
        TextOp normal = TextType.Normalize(raw.ToArray());
        TextType.Validate(normal);
        Assert.Equal(normal, TextType.Normalize(normal.Components));
        Assert.Equal(TextGen.ApplyModel(doc, raw), TextType.Apply(doc, normal));
        Assert.Equal(TextGen.ApplyModel(doc, raw), TextGen.ApplyModel(doc, normal.Components.ToArray()));
        Assert.True(normal.Count <= raw.Count);
    }, Iterations, t => $"doc={t.Doc} raw=[{string.Join(",", t.Raw)}]");

    [Fact]
    public void EncodingRoundTrips() => Property.Check(TextGen.DocAndOp, t =>
    {
        TextOp op = t.Op;
        var buffer = new ArrayBufferWriter<byte>();
        TextOpCodec.Encode(op, buffer);
        Assert.Equal(TextOpCodec.GetEncodedLength(op), buffer.WrittenCount);
        TextOp decoded = TextOpCodec.Decode(buffer.WrittenSpan);
        Assert.Equal(op, decoded);
        Assert.Equal(op.BaseLength, decoded.BaseLength);
        Assert.Equal(op.TargetLength, decoded.TargetLength);
    }, Iterations);

    private static readonly Gen<(string Doc, TextOp Op, int Cursor)> DocOpCursor =
        from t in TextGen.DocAndOp
        from fraction in Gen.Double.Unit
        select (t.Doc, t.Op, (int)(fraction * (TextGen.CodePointCount(t.Doc) + 1)));

    [Fact]
    public void CursorStaysInsideTheDocument() => Property.Check(DocOpCursor, t =>
    {
        (string doc, TextOp op, int cursor) = t;
        int after = TextGen.CodePointCount(TextType.Apply(doc, op));
        foreach (bool own in new[] { false, true })
        {
            int moved = TextType.TransformCursor(cursor, op, own);
            Assert.InRange(moved, 0, after);
        }
    }, Iterations, t => $"doc={t.Doc} op={t.Op} cursor={t.Cursor}");

    private static readonly Gen<(int Length, int Cursor, int At, string Text)> InsertNearCursor =
        from length in Gen.Int[0, 50]
        from cursor in Gen.Int[0, length]
        from at in Gen.Int[0, length]
        from text in TextGen.Text(1, 5)
        select (length, cursor, at, text);

    [Fact]
    public void CursorMovesForwardWithInsertsBeforeIt() => Property.Check(InsertNearCursor, t =>
    {
        (_, int cursor, int at, string text) = t;
        TextOp op = TextOp.Insert(at, text);
        int inserted = TextGen.CodePointCount(text);
        int expectedOther = at < cursor ? cursor + inserted : cursor;
        int expectedOwn = at <= cursor ? cursor + inserted : cursor;
        Assert.Equal(expectedOther, TextType.TransformCursor(cursor, op, isOwnOp: false));
        Assert.Equal(expectedOwn, TextType.TransformCursor(cursor, op, isOwnOp: true));
        // A delete before the cursor pulls it back by the deleted amount, clamped to the delete start.
        TextOp delete = TextOp.Delete(at, Math.Max(0, t.Length - at) / 2);
        int deleted = delete.IsNoop ? 0 : delete[^1].Length;
        int expectedDelete = cursor <= at ? cursor : Math.Max(at, cursor - deleted);
        Assert.Equal(expectedDelete, TextType.TransformCursor(cursor, delete, isOwnOp: false));
    }, Iterations, t => t.ToString());

    [Fact]
    public void CursorKeepsItsTextNeighbour() => Property.Check(DocOpCursor, t =>
    {
        // Track the code point just before the cursor with a unique marker: unless the op deletes it,
        // it is still just before the transformed cursor (for another user's op).
        (string doc, TextOp op, int cursor) = t;
        if (cursor == 0)
        {
            return;
        }

        Rope marked = Rope.FromString(doc).Replace(cursor - 1, 1, "\U0010FFFF");
        string unmarkedAfter = TextType.Apply(marked, op).ToString();
        int moved = TextType.TransformCursor(cursor, op, isOwnOp: false);
        if (unmarkedAfter.Contains('\uDBFF', StringComparison.Ordinal))
        {
            Assert.Equal("\U0010FFFF", Rope.FromString(unmarkedAfter).Slice(moved - 1, 1));
        }
    }, Iterations, t => $"doc={t.Doc} op={t.Op} cursor={t.Cursor}");

    private static readonly Gen<(string Doc, TextGen.Intent[][] Edits)> RopeSession =
        from doc in TextGen.LargeDoc
        from edits in TextGen.Intents(1_500, 300, maxSteps: 6).Array[1, 12]
        select (doc, edits);

    [Fact]
    public void RopeMatchesStringModel() => Property.Check(RopeSession, t =>
    {
        (string model, TextGen.Intent[][] edits) = t;
        Rope rope = Rope.FromString(model);
        foreach (TextGen.Intent[] intents in edits)
        {
            TextOp op = TextGen.ToOp(intents, rope.Length);
            Rope before = rope;
            string beforeText = model;
            rope = TextType.Apply(rope, op);
            model = TextType.Apply(model, op);
            rope.CheckInvariants();
            Assert.True(rope.ContentEquals(model));
            Assert.Equal(TextGen.CodePointCount(model), rope.Length);
            Assert.True(before.ContentEquals(beforeText)); // persistence: the old version is intact
        }

        Assert.Equal(model, rope.ToString());
    }, 300, t => $"doc length={t.Doc.Length} edits={t.Edits.Length}");

    [Fact]
    public void DecoderRejectsRandomBytesWithMalformedOnly() => Property.Check(Gen.Byte.Array[0, 48], bytes =>
    {
        DecodeOrMalformed(bytes);
    }, Iterations * 2, bytes => Convert.ToHexString(bytes));

    private static readonly Gen<byte[]> MutatedEncodings =
        from t in TextGen.DocAndOp
        from edits in Gen.Select(Gen.Int[0, 3], Gen.Int[0, 1_000], Gen.Byte).Array[1, 4]
        select Mutate(Encode(t.Op), edits);

    [Fact]
    public void DecoderRejectsMutatedEncodingsWithMalformedOnly() => Property.Check(MutatedEncodings, bytes =>
    {
        DecodeOrMalformed(bytes);
    }, Iterations * 2, bytes => Convert.ToHexString(bytes));

    /// <summary>Either the bytes decode, and are then the canonical encoding of the op, or Decode throws Malformed.</summary>
    private static void DecodeOrMalformed(byte[] bytes)
    {
        TextOp op;
        try
        {
            op = TextOpCodec.Decode(bytes);
        }
        catch (OtException e)
        {
            Assert.Equal(OtErrorCode.Malformed, e.Code);
            return;
        }

        TextType.Validate(op);
        Assert.Equal(bytes, Encode(op));
    }

    private static byte[] Encode(TextOp op)
    {
        var buffer = new ArrayBufferWriter<byte>();
        TextOpCodec.Encode(op, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    private static byte[] Mutate(byte[] bytes, (int Kind, int Position, byte Value)[] edits)
    {
        var list = bytes.ToList();
        foreach ((int kind, int position, byte value) in edits)
        {
            int at = list.Count == 0 ? 0 : position % (list.Count + 1);
            switch (kind)
            {
                case 0 when at < list.Count: list[at] = value; break;          // overwrite
                case 1: list.Insert(at, value); break;                         // insert
                case 2 when at < list.Count: list.RemoveAt(at); break;         // remove
                default: list.RemoveRange(at, list.Count - at); break;         // truncate
            }
        }

        return [.. list];
    }
}
