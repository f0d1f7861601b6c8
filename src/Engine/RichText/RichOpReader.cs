using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Collab.Engine.RichText;

/// <summary>
/// Consumes an op's components piece by piece (quill-delta's <c>Iterator</c>): past the last component the op
/// retains forever, so its peeked kind is retain, its peeked length "infinite" (<see cref="int.MaxValue"/>) and a
/// take yields a retain without attributes of the requested length. A text insert is cut at a UTF-16 offset; a cut
/// between the halves of a surrogate pair throws <see cref="OtErrorCode.SplitsSurrogatePair"/>.
/// </summary>
internal ref struct RichOpReader
{
    public const int Infinity = int.MaxValue;

    private readonly ReadOnlySpan<RichComponent> _components;
    private int _index;
    private int _offset;

    public RichOpReader(ReadOnlySpan<RichComponent> components)
    {
        _components = components;
    }

    public readonly bool HasNext => _index < _components.Length;

    /// <summary>The kind of the next piece; retain at the end.</summary>
    public readonly RichComponentKind PeekKind => _index < _components.Length ? _components[_index].Kind : RichComponentKind.Retain;

    /// <summary>Units left in the current component; <see cref="Infinity"/> at the end.</summary>
    public readonly int PeekLength => _index < _components.Length ? _components[_index].Length - _offset : Infinity;

    /// <summary>The rest of the current component (a whole insert, never cut); must not be called at the end.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public RichComponent NextWhole()
    {
        Debug.Assert(_index < _components.Length);
        ref readonly RichComponent c = ref _components[_index];
        if (_offset == 0)
        {
            _index++;
            return c;
        }

        return Next(c.Length - _offset);
    }

    /// <summary>quill-delta's <c>next(length)</c>: at most <paramref name="length"/> units of the current component.</summary>
    public RichComponent Next(int length)
    {
        Debug.Assert(length > 0);
        if (_index == _components.Length)
        {
            return RichComponent.RetainTrusted(length, null);
        }

        ref readonly RichComponent c = ref _components[_index];
        length = Advance(length, out int offset);
        if (length == c.Length)
        {
            return c;
        }

        switch (c.Kind)
        {
            case RichComponentKind.Delete:
                return RichComponent.DeleteTrusted(length);
            case RichComponentKind.Retain:
                return RichComponent.RetainTrusted(length, c.Attributes);
            default:
                // An embed has length 1, so it is never cut: only text reaches here.
                string text = c.Text!;
                CheckCut(text, offset);
                CheckCut(text, offset + length);
                return RichComponent.InsertTrusted(text.Substring(offset, length), c.Attributes);
        }
    }

    /// <summary>Like <see cref="Next"/> for a piece the caller discards: checks the cut without copying text.</summary>
    public RichComponentKind Skip(int length)
    {
        Debug.Assert(length > 0);
        if (_index == _components.Length)
        {
            return RichComponentKind.Retain;
        }

        ref readonly RichComponent c = ref _components[_index];
        length = Advance(length, out int offset);
        if (c.IsText)
        {
            CheckCut(c.Text, offset);
            CheckCut(c.Text, offset + length);
        }

        return c.Kind;
    }

    /// <summary>Moves past at most <paramref name="length"/> units of the current component; returns how many, and where in the component they started.</summary>
    private int Advance(int length, out int offset)
    {
        offset = _offset;
        int remaining = _components[_index].Length - offset;
        if (length >= remaining)
        {
            _index++;
            _offset = 0;
            return remaining;
        }

        _offset = offset + length;
        return length;
    }

    /// <summary>Throws when <paramref name="at"/> falls between a high and a low surrogate of <paramref name="text"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void CheckCut(string text, int at)
    {
        if (at > 0 && at < text.Length && char.IsLowSurrogate(text[at]) && char.IsHighSurrogate(text[at - 1]))
        {
            ThrowSplitsPair();
        }
    }

    [DoesNotReturn]
    public static void ThrowSplitsPair() =>
        throw new OtException(OtErrorCode.SplitsSurrogatePair, "An op boundary falls inside a surrogate pair: rich-text counts UTF-16 units, and a character outside the BMP is two of them that must stay together.");
}
