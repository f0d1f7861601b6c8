using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Collab.Engine.Text;

/// <summary>
/// Consumes an op's components piece by piece for transform and compose (text-unicode's
/// <c>take</c>/<c>peek</c>). Past the last component the op retains forever, so a take at the end
/// yields a retain of the requested length.
/// </summary>
internal ref struct ComponentReader
{
    private readonly ReadOnlySpan<TextComponent> _components;
    private int _index;
    // Progress inside the current component: code points, and UTF-16 units for inserts.
    private int _offset;
    private int _offset16;

    public ComponentReader(ReadOnlySpan<TextComponent> components)
    {
        _components = components;
    }

    public readonly bool AtEnd => _index == _components.Length;

    /// <summary>The kind of the next piece, or 0 at the end.</summary>
    public readonly TextComponentKind PeekKind => _index < _components.Length ? _components[_index].Kind : 0;

    /// <summary>
    /// Takes at most <paramref name="max"/> code points. A component of kind <paramref name="whole"/>
    /// is never split: it is returned entire, however long (its length does not count against the
    /// other op in the caller's loop).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TextComponent Take(int max, TextComponentKind whole)
    {
        Debug.Assert(max > 0);
        if (_index == _components.Length)
        {
            return TextComponent.RetainTrusted(max);
        }

        ref readonly TextComponent c = ref _components[_index];
        if (c.Length - _offset <= max || c.Kind == whole)
        {
            return TakeRest();
        }

        return TakePart(in c, max);
    }

    /// <summary>Like <see cref="Take"/> but only reports the kind and length, never materializing inserted text.</summary>
    public int Skip(int max, TextComponentKind whole, out TextComponentKind kind)
    {
        Debug.Assert(max > 0);
        if (_index == _components.Length)
        {
            kind = TextComponentKind.Retain;
            return max;
        }

        ref readonly TextComponent c = ref _components[_index];
        kind = c.Kind;
        int remaining = c.Length - _offset;
        if (remaining <= max || c.Kind == whole)
        {
            Next();
            return remaining;
        }

        if (c.Kind == TextComponentKind.Insert)
        {
            _offset16 += Utf16Length(c.Text!, _offset16, max);
        }

        _offset += max;
        return max;
    }

    /// <summary>The rest of the current component; must not be called at the end.</summary>
    public TextComponent TakeRest()
    {
        Debug.Assert(!AtEnd);
        ref readonly TextComponent c = ref _components[_index];
        TextComponent piece;
        if (_offset == 0)
        {
            piece = c;
        }
        else
        {
            int rest = c.Length - _offset;
            piece = c.Kind switch
            {
                TextComponentKind.Insert => TextComponent.InsertTrusted(c.Text!.Substring(_offset16), rest),
                TextComponentKind.Retain => TextComponent.RetainTrusted(rest),
                _ => TextComponent.DeleteTrusted(rest),
            };
        }

        Next();
        return piece;
    }

    private TextComponent TakePart(in TextComponent c, int length)
    {
        TextComponent piece;
        switch (c.Kind)
        {
            case TextComponentKind.Insert:
                int units = Utf16Length(c.Text!, _offset16, length);
                piece = TextComponent.InsertTrusted(c.Text!.Substring(_offset16, units), length);
                _offset16 += units;
                break;
            case TextComponentKind.Retain:
                piece = TextComponent.RetainTrusted(length);
                break;
            default:
                piece = TextComponent.DeleteTrusted(length);
                break;
        }

        _offset += length;
        return piece;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Next()
    {
        _index++;
        _offset = 0;
        _offset16 = 0;
    }

    /// <summary>UTF-16 units of the next <paramref name="codePoints"/> code points of <paramref name="text"/> from <paramref name="start"/>.</summary>
    private static int Utf16Length(string text, int start, int codePoints) =>
        CodePoints.Utf16Offset(text.AsSpan(start), codePoints);
}
