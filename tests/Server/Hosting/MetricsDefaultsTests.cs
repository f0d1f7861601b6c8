using System.Diagnostics;
using System.Diagnostics.Metrics;
using Collab.Server.Hosting;

namespace Collab.Server.Tests.Hosting;

public sealed class MetricsDefaultsTests
{
    [Theory]
    [InlineData("Microsoft.AspNetCore.MemoryPool", false)] // a measurement per buffer rent: too hot to republish
    [InlineData("Private.InternalDiagnostics.System.Net.Quic", false)]
    [InlineData("Microsoft.AspNetCore.Server.Kestrel", false)] // per-connection tags and strings while listened to
    [InlineData("Microsoft.AspNetCore.Server.Kestrel.Extra", true)]
    [InlineData("System.Runtime", true)]
    [InlineData("Collab.Anything", true)]
    public void Only_hot_per_connection_and_private_meters_are_kept_out_of_metrics(string meterName, bool published)
    {
        using var meter = new Meter(meterName);
        Counter<long> instrument = meter.CreateCounter<long>("test.instrument");
        Assert.Equal(published, MetricsDefaults.IsPublished(instrument));
    }

    [Fact]
    public void Open_handles_are_counted_and_the_count_costs_the_same_for_any_number_of_handles()
    {
        using Process process = Process.GetCurrentProcess();
        var files = new List<FileStream>();
        string directory = Directory.CreateTempSubdirectory("collab-handles-").FullName;
        try
        {
            int before = MetricsDefaults.CountOpenHandles(process);
            Assert.True(before > 0);
            long fewAllocated = Allocated(process);
            for (int i = 0; i < 500; i++)
            {
                files.Add(new FileStream(Path.Combine(directory, i.ToString(System.Globalization.CultureInfo.InvariantCulture)), FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose));
            }

            int after = MetricsDefaults.CountOpenHandles(process);
            long manyAllocated = Allocated(process);

            // Other tests open and close descriptors meanwhile; ours are 500 of them.
            Assert.InRange(after - before, 400, 600);

            // Directory.GetFiles would allocate a path string (~60 bytes) per descriptor: 30 KB more for 500.
            Assert.True(manyAllocated - fewAllocated < 4096, $"counting {after} handles allocated {manyAllocated} bytes, {before} handles {fewAllocated}");
            Assert.True(MetricsDefaults.CountThreads(process) > 1);
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
            MetricsDefaults.CountOpenHandles(process); // warm (JIT, enumerator statics)
            long start = GC.GetAllocatedBytesForCurrentThread();
            MetricsDefaults.CountOpenHandles(process);
            return GC.GetAllocatedBytesForCurrentThread() - start;
        }
    }
}
