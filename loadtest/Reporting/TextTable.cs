using System.Text;

namespace Collab.LoadTest.Reporting;

/// <summary>A plain text table with right-aligned columns (the first left-aligned), or the same as a Markdown table.</summary>
internal sealed class TextTable(params string[] headers)
{
    private readonly List<string[]> _rows = [];

    public void Add(params string[] cells) => _rows.Add(cells);

    public string Render(bool markdown = false)
    {
        var sb = new StringBuilder();
        if (markdown)
        {
            sb.AppendLine("| " + string.Join(" | ", headers) + " |");
            sb.AppendLine("|" + string.Concat(headers.Select(static (_, i) => i == 0 ? "---|" : "---:|")));
            foreach (string[] row in _rows)
            {
                sb.AppendLine("| " + string.Join(" | ", row) + " |");
            }

            return sb.ToString();
        }

        int[] widths = [.. headers.Select((h, i) => Math.Max(h.Length, _rows.Count == 0 ? 0 : _rows.Max(r => r[i].Length)))];
        AppendRow(sb, headers, widths);
        sb.AppendLine(string.Join("-+-", widths.Select(static w => new string('-', w))));
        foreach (string[] row in _rows)
        {
            AppendRow(sb, row, widths);
        }

        return sb.ToString();
    }

    private static void AppendRow(StringBuilder sb, string[] cells, int[] widths)
    {
        for (int i = 0; i < cells.Length; i++)
        {
            if (i > 0)
            {
                sb.Append(" | ");
            }

            sb.Append(i == 0 ? cells[i].PadRight(widths[i]) : cells[i].PadLeft(widths[i]));
        }

        sb.AppendLine();
    }
}
