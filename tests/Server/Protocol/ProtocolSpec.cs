using System.Globalization;
using System.Text.RegularExpressions;
using Collab.Testing;

namespace Collab.Server.Tests.Protocol;

/// <summary>
/// docs/PROTOCOL.md read as data: the tables of a section, row by row, so conformance tests take what they check
/// from the spec itself (a row added, changed or removed there changes what is tested).
/// </summary>
public static partial class ProtocolSpec
{
    private static readonly Lazy<string[]> s_lines = new(() => File.ReadAllLines(RepositoryFiles.PathOf("docs/PROTOCOL.md")));

    /// <summary>The first table under the heading that starts with <paramref name="heading"/> (e.g. "## 10."), one dictionary per row keyed by column header.</summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, string>> Table(string heading)
    {
        string[] lines = s_lines.Value;
        int start = Array.FindIndex(lines, l => l.StartsWith(heading, StringComparison.Ordinal));
        if (start < 0)
        {
            throw new InvalidOperationException($"docs/PROTOCOL.md has no heading starting with '{heading}'.");
        }

        int header = -1;
        for (int i = start + 1; i < lines.Length && !lines[i].StartsWith("## ", StringComparison.Ordinal); i++)
        {
            if (lines[i].StartsWith('|'))
            {
                header = i;
                break;
            }
        }

        if (header < 0 || header + 1 >= lines.Length || !SeparatorRow().IsMatch(lines[header + 1]))
        {
            throw new InvalidOperationException($"No table under '{heading}' in docs/PROTOCOL.md.");
        }

        string[] columns = Cells(lines[header]);
        var rows = new List<IReadOnlyDictionary<string, string>>();
        for (int i = header + 2; i < lines.Length && lines[i].StartsWith('|'); i++)
        {
            string[] cells = Cells(lines[i]);
            if (cells.Length != columns.Length)
            {
                throw new InvalidOperationException($"docs/PROTOCOL.md line {i + 1}: {cells.Length} cells, the header has {columns.Length}.");
            }

            rows.Add(columns.Zip(cells).ToDictionary(p => p.First, p => p.Second, StringComparer.Ordinal));
        }

        return rows;
    }

    /// <summary>The numeric close code named in a cell such as "Close 1009." (null when none is).</summary>
    public static int? CloseCodeIn(string cell) => CloseCodeText().Match(cell) is { Success: true } m ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : null;

    /// <summary>Every error name in a cell such as "`Error{RATE_LIMITED}`, then close 4008." (e.g. "RATE_LIMITED").</summary>
    public static IReadOnlyList<string> ErrorNamesIn(string cell) => [.. ErrorText().Matches(cell).Select(m => m.Groups[1].Value)];

    /// <summary>The Welcome field named in a cell such as "`Welcome.max_op_bytes`" (null when none is).</summary>
    public static string? WelcomeFieldIn(string cell) => WelcomeFieldText().Match(cell) is { Success: true } m ? m.Groups[1].Value : null;

    /// <summary>The leading quantity of a cell such as "256 KiB", "8 Mi code points", "10 s" or "200/s, burst 2000", in bytes, units or seconds.</summary>
    public static double Quantity(string cell)
    {
        Match m = QuantityText().Match(cell);
        if (!m.Success)
        {
            throw new FormatException($"No quantity in '{cell}'.");
        }

        double value = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        return m.Groups[2].Value switch
        {
            "KiB" or "Ki" => value * 1024,
            "MiB" or "Mi" => value * 1024 * 1024,
            _ => value,
        };
    }

    /// <summary>Text of a cell without markdown code ticks and quotes, for comparing with prose held in code.</summary>
    public static string Plain(string cell) => cell.Replace("`", "", StringComparison.Ordinal).Replace("'", "", StringComparison.Ordinal);

    /// <summary>The protobuf enum value name for a spec name: "Normal closure" or "RATE_LIMITED" become "NormalClosure" / "RateLimited".</summary>
    public static string PascalCase(string name) =>
        string.Concat(Regex.Split(name.Trim(), "[ _]+").Where(w => w.Length > 0).Select(w => char.ToUpperInvariant(w[0]) + w[1..].ToLowerInvariant()));

    private static string[] Cells(string row) => [.. row.Trim().Trim('|').Split('|').Select(c => c.Trim())];

    [GeneratedRegex(@"^\|(\s*:?-+:?\s*\|)+\s*$")]
    private static partial Regex SeparatorRow();

    [GeneratedRegex(@"\b[Cc]lose (\d{4})\b")]
    private static partial Regex CloseCodeText();

    [GeneratedRegex(@"Error\{([A-Z_]+)\}")]
    private static partial Regex ErrorText();

    [GeneratedRegex(@"`Welcome\.([a-z_]+)`")]
    private static partial Regex WelcomeFieldText();

    [GeneratedRegex(@"^\s*(\d+(?:\.\d+)?)\s*(KiB|MiB|Ki|Mi|s)?\b")]
    private static partial Regex QuantityText();
}
