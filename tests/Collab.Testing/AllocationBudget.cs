using System.Text.Json;

namespace Collab.Testing;

/// <summary>
/// The allocation budgets of tests/allocation-budgets.json (bytes per operation after warm-up), checked by the tests that
/// measure them, so a change that makes a hot path allocate more fails the suite instead of a benchmark nobody reruns.
/// </summary>
public static class AllocationBudget
{
    private static readonly Lazy<Dictionary<string, long>> s_budgets = new(() =>
    {
        using JsonDocument json = JsonDocument.Parse(RepositoryFiles.ReadAllText("tests/allocation-budgets.json"));
        var budgets = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (JsonProperty entry in json.RootElement.EnumerateObject())
        {
            if (entry.Value.ValueKind == JsonValueKind.Object)
            {
                budgets[entry.Name] = entry.Value.GetProperty("bytesPerOp").GetInt64();
            }
        }

        return budgets;
    });

    /// <summary>The budget named <paramref name="name"/>, in bytes per operation.</summary>
    public static long BytesPerOp(string name) =>
        s_budgets.Value.TryGetValue(name, out long budget) ? budget : throw new KeyNotFoundException($"No allocation budget '{name}' in tests/allocation-budgets.json.");

    /// <summary>Fails unless <paramref name="allocated"/> bytes over <paramref name="ops"/> operations are within the budget.</summary>
    public static void Check(string name, long allocated, int ops)
    {
        long budget = BytesPerOp(name);
        double perOp = (double)allocated / ops;
        Assert.True(perOp <= budget, $"{name}: {perOp:F1} B/op allocated ({allocated} B over {ops} ops), over the budget of {budget} B/op in tests/allocation-budgets.json");
    }
}
