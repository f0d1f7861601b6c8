using System.Runtime.CompilerServices;
using Collab.Server;
using Collab.Server.Storage;

namespace Collab.Testing;

/// <summary>
/// The server's metrics classes (docs/OPERATIONS.md, "Metrics in the code": every one is a class named <c>*Metrics</c>),
/// found by reflection so that a new one is covered without being listed here, and touched so that their series exist
/// in the default registry whatever else the test process has run (the cluster's only appear on a clustered node).
/// </summary>
public static class MetricHolders
{
    public static IReadOnlyList<Type> TouchAll()
    {
        Type[] holders = [.. typeof(CollabServerHost).Assembly.GetTypes()
            .Where(static t => t.IsClass && t.Name.EndsWith("Metrics", StringComparison.Ordinal) && !t.IsNested)];
        foreach (Type holder in holders)
        {
            if (holder == typeof(StorageMetrics))
            {
                _ = new StorageMetrics(); // per stage: one in the default registry, as the server creates it
            }
            else
            {
                RuntimeHelpers.RunClassConstructor(holder.TypeHandle);
            }
        }

        return holders;
    }
}
