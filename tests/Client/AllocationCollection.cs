namespace Collab.Client.Tests;

/// <summary>Allocation tests measure the whole process's allocations, so nothing else in this assembly runs beside them.</summary>
[CollectionDefinition(nameof(AllocationCollection), DisableParallelization = true)]
public sealed class AllocationCollection
{
}
