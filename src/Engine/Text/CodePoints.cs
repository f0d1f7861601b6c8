namespace Collab.Engine.Text;

/// <summary>
/// Unicode scalar value (code point) arithmetic over UTF-16 text. Every length and position in
/// the text type counts code points, like ShareDB's text-unicode, so that clients whose strings
/// are UTF-8 (Rust, Swift) or UTF-16 (JS, .NET) agree on what an offset means.
/// </summary>
/// <remarks>
/// All scans jump from surrogate to surrogate with the vectorized
/// <see cref="MemoryExtensions.IndexOfAnyInRange{T}(ReadOnlySpan{T}, T, T)"/>, so text without
/// astral-plane characters costs one vectorized pass and astral text one short step per pair.
/// </remarks>
internal static class CodePoints
{
    private const char SurrogateMin = '\uD800';
    private const char SurrogateMax = '\uDFFF';

    /// <summary>Counts the code points of <paramref name="text"/>, or returns -1 when it holds a lone surrogate.</summary>
    public static int CountOrInvalid(ReadOnlySpan<char> text)
    {
        int count = 0;
        int i = 0;
        while (true)
        {
            int next = text[i..].IndexOfAnyInRange(SurrogateMin, SurrogateMax);
            if (next < 0)
            {
                return count + (text.Length - i);
            }

            count += next;
            i += next;
            if (!char.IsHighSurrogate(text[i]) || i + 1 >= text.Length || !char.IsLowSurrogate(text[i + 1]))
            {
                return -1;
            }

            i += 2;
            count++;
        }
    }

    /// <summary>Counts the code points of text already known to be well-formed.</summary>
    public static int CountValid(ReadOnlySpan<char> text)
    {
        int count = text.Length;
        int i = 0;
        while (true)
        {
            int next = text[i..].IndexOfAnyInRange(SurrogateMin, SurrogateMax);
            if (next < 0)
            {
                return count;
            }

            // A well-formed pair is two UTF-16 units but one code point.
            i += next + 2;
            count--;
        }
    }

    /// <summary>
    /// The UTF-16 offset of code point number <paramref name="codePoints"/> in well-formed
    /// <paramref name="text"/>; <paramref name="codePoints"/> must not exceed the text's code point count.
    /// </summary>
    public static int Utf16Offset(ReadOnlySpan<char> text, int codePoints)
    {
        int i = 0;
        while (codePoints > 0)
        {
            int next = text.Slice(i, Math.Min(codePoints, text.Length - i)).IndexOfAnyInRange(SurrogateMin, SurrogateMax);
            if (next < 0)
            {
                return i + codePoints;
            }

            // next < codePoints: step over the BMP run and then one surrogate pair.
            i += next + 2;
            codePoints -= next + 1;
        }

        return i;
    }
}
