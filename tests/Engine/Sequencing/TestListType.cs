using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Collab.Engine.Tests.Sequencing;

/// <summary>One single-character edit of <see cref="TestListType"/>.</summary>
public readonly record struct ListEdit(bool IsInsert, int Position, char Value)
{
    public static ListEdit Insert(int position, char value) => new(true, position, value);

    public static ListEdit Delete(int position) => new(false, position, '\0');
}

/// <summary>A sequence of single-character edits applied one after the other.</summary>
public sealed class ListOp(params ListEdit[] edits)
{
    public ListEdit[] Edits { get; } = edits;

    public override string ToString() => string.Join(",", Edits.Select(e => e.IsInsert ? $"+{e.Position}{e.Value}" : $"-{e.Position}"));
}

/// <summary>
/// A deliberately tiny OT type, independent of the real text type: proves the sequencer and client state are generic,
/// and is simple enough that its transform is obviously correct (single-character insert/delete, composite ops are
/// transformed pairwise on a grid).
/// </summary>
public sealed class TestListType : IOtType<string, ListOp>
{
    public static TestListType Instance { get; } = new();

    public string Name => "test-list";

    public string Empty => string.Empty;

    public void Validate(ListOp op, string snapshot)
    {
        int length = snapshot.Length;
        foreach (ListEdit edit in op.Edits)
        {
            if (edit.Position < 0)
            {
                OtException.Throw(OtErrorCode.InvalidLength, "negative position");
            }

            if (edit.IsInsert ? edit.Position > length : edit.Position >= length)
            {
                OtException.Throw(OtErrorCode.OpTooLong, $"edit at {edit.Position} past the end ({length})");
            }

            length += edit.IsInsert ? 1 : -1;
        }
    }

    public string Apply(string snapshot, ListOp op)
    {
        Validate(op, snapshot);
        var builder = new StringBuilder(snapshot);
        foreach (ListEdit edit in op.Edits)
        {
            if (edit.IsInsert)
            {
                builder.Insert(edit.Position, edit.Value);
            }
            else
            {
                builder.Remove(edit.Position, 1);
            }
        }

        return builder.ToString();
    }

    public ListOp Transform(ListOp op, ListOp other, TransformSide side)
    {
        var others = new List<ListEdit>(other.Edits);
        var result = new List<ListEdit>(op.Edits.Length);
        TransformSide otherSide = side == TransformSide.Left ? TransformSide.Right : TransformSide.Left;
        foreach (ListEdit edit in op.Edits)
        {
            ListEdit? current = edit;
            var transformedOthers = new List<ListEdit>(others.Count);
            foreach (ListEdit b in others)
            {
                if (current is null)
                {
                    transformedOthers.Add(b);
                    continue;
                }

                ListEdit? nextCurrent = TransformOne(current.Value, b, side);
                ListEdit? nextB = TransformOne(b, current.Value, otherSide);
                current = nextCurrent;
                if (nextB is not null)
                {
                    transformedOthers.Add(nextB.Value);
                }
            }

            others = transformedOthers;
            if (current is not null)
            {
                result.Add(current.Value);
            }
        }

        return new ListOp([.. result]);
    }

    private static ListEdit? TransformOne(ListEdit a, ListEdit b, TransformSide side) => (a.IsInsert, b.IsInsert) switch
    {
        (true, true) => a.Position < b.Position || (a.Position == b.Position && side == TransformSide.Left) ? a : a with { Position = a.Position + 1 },
        (true, false) => a.Position <= b.Position ? a : a with { Position = a.Position - 1 },
        (false, true) => a.Position < b.Position ? a : a with { Position = a.Position + 1 },
        (false, false) => a.Position < b.Position ? a : a.Position > b.Position ? a with { Position = a.Position - 1 } : null,
    };

    public ListOp Compose(ListOp first, ListOp second) => new([.. first.Edits, .. second.Edits]);

    public bool IsNoop(ListOp op) => op.Edits.Length == 0;

    public int TransformCursor(int cursor, ListOp op, bool isOwnOp)
    {
        foreach (ListEdit edit in op.Edits)
        {
            if (edit.IsInsert)
            {
                if (edit.Position < cursor || (edit.Position == cursor && isOwnOp))
                {
                    cursor++;
                }
            }
            else if (edit.Position < cursor)
            {
                cursor--;
            }
        }

        return cursor;
    }

    public int SizeOf(ListOp op) => 16 + (8 * op.Edits.Length);

    public long LengthOf(string snapshot) => snapshot.Length;

    public void Encode(ListOp op, IBufferWriter<byte> output)
    {
        Span<byte> span = output.GetSpan(4 + (7 * op.Edits.Length));
        BinaryPrimitives.WriteInt32LittleEndian(span, op.Edits.Length);
        int offset = 4;
        foreach (ListEdit edit in op.Edits)
        {
            span[offset] = edit.IsInsert ? (byte)1 : (byte)2;
            BinaryPrimitives.WriteInt32LittleEndian(span[(offset + 1)..], edit.Position);
            BinaryPrimitives.WriteUInt16LittleEndian(span[(offset + 5)..], edit.Value);
            offset += 7;
        }

        output.Advance(offset);
    }

    public ListOp Decode(ReadOnlySpan<byte> input)
    {
        if (input.Length < 4)
        {
            OtException.Throw(OtErrorCode.Malformed, "short");
        }

        int count = BinaryPrimitives.ReadInt32LittleEndian(input);
        if (count < 0 || input.Length != 4 + ((long)count * 7))
        {
            OtException.Throw(OtErrorCode.Malformed, "bad length");
        }

        var edits = new ListEdit[count];
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> e = input.Slice(4 + (i * 7), 7);
            if (e[0] is not (1 or 2))
            {
                OtException.Throw(OtErrorCode.UnknownComponent, "bad kind");
            }

            edits[i] = new ListEdit(e[0] == 1, BinaryPrimitives.ReadInt32LittleEndian(e[1..]), (char)BinaryPrimitives.ReadUInt16LittleEndian(e[5..]));
        }

        return new ListOp(edits);
    }

    public string ToText(string snapshot) => snapshot;

    public string FromText(string text) => text;
}
