using System.Diagnostics;
using System.Diagnostics.Metrics;
using Collab.Server.Hosting;

namespace Collab.Server.Tests.Transport;

/// <summary>
/// The default registry's process collector counts descriptors without a string per descriptor, and the
/// meter filter drops Kestrel's meter only.
/// </summary>
public sealed class DefaultMetricsTests
{
    [Fact]
    public void Open_handles_are_counted_and_the_count_costs_the_same_for_any_number_of_handles()
    {
        using Process process = Process.GetCurrentProcess();
        var files = new List<FileStream>();
        string directory = Directory.CreateTempSubdirectory("collab-handles-").FullName;
        try
        {
            int before = DefaultMetrics.CountOpenHandles(process);
            Assert.True(before > 0);
            long fewAllocated = Allocated(process);
            for (int i = 0; i < 500; i++)
            {
                files.Add(new FileStream(Path.Combine(directory, i.ToString(System.Globalization.CultureInfo.InvariantCulture)), FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose));
            }

            int after = DefaultMetrics.CountOpenHandles(process);
            long manyAllocated = Allocated(process);

            // Other tests open and close descriptors meanwhile; ours are 500 of them.
            Assert.InRange(after - before, 400, 600);

            // Directory.GetFiles would allocate a path string (~60 bytes) per descriptor: 30 KB more for 500.
            Assert.True(manyAllocated - fewAllocated < 4096, $"counting {after} handles allocated {manyAllocated} bytes, {before} handles {fewAllocated}");
            Assert.True(DefaultMetrics.CountThreads(process) > 1);
        }
        finally
        {
            foreach (FileStream file in files)
            {
                file.Dispose();
            }

            Directory.Delete(directory, recursive: true);
        }

        static long Allocated(Process process)
        {
            DefaultMetrics.CountOpenHandles(process); // warm (JIT, enumerator statics)
            long start = GC.GetAllocatedBytesForCurrentThread();
            DefaultMetrics.CountOpenHandles(process);
            return GC.GetAllocatedBytesForCurrentThread() - start;
        }
    }

    [Fact]
    public void Every_meter_but_Kestrels_is_exported()
    {
        using var kestrel = new Meter(DefaultMetrics.KestrelMeterName);
        using var runtime = new Meter("System.Runtime.Test");
        Assert.False(DefaultMetrics.IsExported(kestrel.CreateUpDownCounter<long>("kestrel.active_connections")));
        Assert.True(DefaultMetrics.IsExported(runtime.CreateCounter<long>("dotnet.gc.collections")));
    }
}
