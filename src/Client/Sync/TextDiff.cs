using Collab.Engine.Text;

namespace Collab.Client.Sync;

/// <summary>
/// The smallest single-replace op that turns one text into another (common prefix and suffix kept, the
/// middle replaced). Used to rebase local edits onto a snapshot whose history is unknown
/// (docs/PROTOCOL.md section 7.3) and to describe a resync to the application as one op.
/// </summary>
internal static class TextDiff
{
    public static TextOp Between(string before, string after)
    {
        int max = Math.Min(before.Length, after.Length);
        int prefix = before.AsSpan(0, max).CommonPrefixLength(after.AsSpan(0, max));
        // Never split a surrogate pair: positions count code points.
        if (prefix > 0 && char.IsHighSurrogate(before[prefix - 1]))
        {
            prefix--;
        }

        int suffixMax = max - prefix;
        int suffix = CommonSuffixLength(before.AsSpan(before.Length - suffixMax), after.AsSpan(after.Length - suffixMax));
        if (suffix > 0 && char.IsLowSurrogate(before[before.Length - suffix]))
        {
            suffix--;
        }

        int deleted = before.Length - prefix - suffix;
        int inserted = after.Length - prefix - suffix;
        if (deleted == 0 && inserted == 0)
        {
            return TextOp.Empty;
        }

        return TextOp.Replace(
            CodePointCount(before.AsSpan(0, prefix)),
            CodePointCount(before.AsSpan(prefix, deleted)),
            after.Substring(prefix, inserted));
    }

    /// <summary>Code points of well-formed UTF-16: every low surrogate completes a pair counted by its high half.</summary>
    public static int CodePointCount(ReadOnlySpan<char> text)
    {
        int count = text.Length;
        int i = 0;
        while (true)
        {
            int next = text[i..].IndexOfAnyInRange('\uDC00', '\uDFFF');
            if (next < 0)
            {
                return count;
            }

            count--;
            i += next + 1;
        }
    }

    private static int CommonSuffixLength(ReadOnlySpan<char> a, ReadOnlySpan<char> b)
    {
        int n = 0;
        while (n < a.Length && a[a.Length - 1 - n] == b[b.Length - 1 - n])
        {
            n++;
        }

        return n;
    }
}
