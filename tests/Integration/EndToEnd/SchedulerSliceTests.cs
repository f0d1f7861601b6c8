using System.Globalization;
using System.Text.RegularExpressions;
using Collab.Engine.Text;
using Collab.Integration.Tests.Infrastructure;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>
/// <c>Server:SchedulerSlice</c> on the built server: at start-up every thread of the process gets the slice, and the
/// threads the host starts afterwards (socket engine, thread-pool workers, the SQLite commit thread) inherit it, as
/// <c>/proc/PID/task/*/sched</c> shows (<c>se.slice</c>, in ns). On a kernel that ignores the slice of a SCHED_OTHER
/// thread (before 6.12) the server says so in its log and runs on with the kernel's default.
/// </summary>
public sealed partial class SchedulerSliceTests : IAsyncLifetime
{
    private const long SliceNanoseconds = 200_000;
    private readonly string _directory = Directory.CreateTempSubdirectory("collab-slice-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Every_thread_of_the_server_runs_with_the_slice_including_the_threads_started_after_it_was_set()
    {
        await using ServerProcess server = await ServerProcess.StartAsync(new Dictionary<string, string>
        {
            ["Storage:DataDirectory"] = Path.Combine(_directory, "data"),
            ["Server:SchedulerSlice"] = "00:00:00.0002",
            ["Logging:LogLevel:Collab.Server.Hosting.Scheduling"] = "Information",
        });

        // Work that starts threads the host did not have when the slice was set: connections, a submit and its commit.
        await using RawProtocolClient client = await RawProtocolClient.ConnectAsync(server.WebSocketUri);
        await client.SendAsync(new ClientMessage { RequestId = 1, Subscribe = new Subscribe { DocId = "slice", Snapshot = true } });
        await client.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot);
        var op = new System.Buffers.ArrayBufferWriter<byte>();
        TextOpCodec.Encode(TextOp.Insert(0, "x"), op);
        await client.SendAsync(new ClientMessage { Submit = new Submit { DocId = "slice", ClientSeq = 1, BaseVersion = 0, Op = ByteString.CopyFrom(op.WrittenSpan) } });
        await client.ReceiveAsync(ServerMessage.BodyOneofCase.Ack);

        Dictionary<string, long> slices = ThreadSlices(server.ProcessId!.Value);
        string log = server.Log();
        Match applied = Applied().Match(log);
        if (applied.Success)
        {
            int setAtStart = int.Parse(applied.Groups[1].Value, CultureInfo.InvariantCulture);
            Assert.All(slices, thread => Assert.True(thread.Value == SliceNanoseconds, $"thread {thread.Key} runs with a slice of {thread.Value} ns"));
            Assert.True(slices.Count > setAtStart, $"{slices.Count} threads now, {setAtStart} when the slice was set: no thread started afterwards to check");
            Assert.Contains(slices.Keys, name => name.Contains(".NET Sockets", StringComparison.Ordinal));
        }
        else
        {
            // A kernel that ignores the slice: said once, at start-up, and nothing changed.
            Assert.Contains("[5191] Scheduler slice of 200 µs not applied: the kernel ignores the slice", log, StringComparison.Ordinal);
            Assert.DoesNotContain(slices.Values, slice => slice == SliceNanoseconds);
        }
    }

    [Fact]
    public async Task Without_the_setting_the_default_slice_is_applied_and_zero_keeps_the_kernels()
    {
        await using ServerProcess byDefault = await ServerProcess.StartAsync(new Dictionary<string, string>
        {
            ["Storage:DataDirectory"] = Path.Combine(_directory, "default"),
            ["Logging:LogLevel:Collab.Server.Hosting.Scheduling"] = "Information",
        });
        bool supported = byDefault.Log().Contains("[5190] Scheduler slice of 100 µs applied to", StringComparison.Ordinal);
        Assert.True(supported || byDefault.Log().Contains("[5191] Scheduler slice of 100 µs not applied", StringComparison.Ordinal), byDefault.Log());
        Assert.All(ThreadSlices(byDefault.ProcessId!.Value).Values, slice => Assert.Equal(supported, slice == 100_000));

        await using ServerProcess off = await ServerProcess.StartAsync(new Dictionary<string, string>
        {
            ["Storage:DataDirectory"] = Path.Combine(_directory, "off"),
            ["Server:SchedulerSlice"] = "00:00:00",
            ["Logging:LogLevel:Collab.Server.Hosting.Scheduling"] = "Information",
        });
        Assert.DoesNotContain("Scheduler slice", off.Log(), StringComparison.Ordinal);
        Assert.DoesNotContain(ThreadSlices(off.ProcessId!.Value).Values, slice => slice == 100_000);
    }

    /// <summary>Thread name and tid → se.slice of every thread of <paramref name="pid"/>.</summary>
    private static Dictionary<string, long> ThreadSlices(int pid)
    {
        var slices = new Dictionary<string, long>();
        foreach (string task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try
            {
                string name = File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n');
                long slice = KernelSlice.Parse(File.ReadAllText(Path.Combine(task, "sched")));
                Assert.True(slice >= 0, $"no se.slice in {task}/sched (a kernel without EEVDF)");
                slices[$"{name} ({Path.GetFileName(task)})"] = slice;
            }
            catch (IOException)
            {
                // A thread that ended between the listing and the read.
            }
        }

        return slices;
    }

    [GeneratedRegex(@"\[5190\] Scheduler slice of 200 µs applied to (\d+) threads")]
    private static partial Regex Applied();
}
