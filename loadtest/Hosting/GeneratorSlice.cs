namespace Collab.LoadTest.Hosting;

/// <summary>
/// <c>--generator-slice</c>: the generator's own threads (the open-loop scheduler and the socket engine's threads, where
/// every receive runs with inline completions) ask the kernel for a shorter EEVDF slice, so when one of them wakes (a
/// due op, a received frame) it preempts whatever else runs on the generator's CPU within about that slice. Only these
/// threads: a server the tool spawns must start with the kernel's default, as it would alone (a child inherits the
/// slice of the thread that forks it, so spawns run on a thread reset to the default, <see cref="WithDefaultSlice"/>).
/// The server's own setting is <c>Server:SchedulerSlice</c>.
/// </summary>
internal static class GeneratorSlice
{
    /// <summary>The name .NET gives its socket engine threads (<c>/proc/self/task/*/comm</c>).</summary>
    private const string SocketEngineThread = ".NET Sockets";

    private static int s_inUse;

    /// <summary>Sets the slice on the calling thread; true when the kernel applied it.</summary>
    public static bool ApplyToCurrentThread(ulong nanoseconds)
    {
        if (nanoseconds == 0 || !LinuxSchedulerCalls.Instance.Available)
        {
            return false;
        }

        Volatile.Write(ref s_inUse, 1);
        return ThreadSlice.Set(LinuxSchedulerCalls.Instance, 0, nanoseconds).Outcome == ThreadSliceOutcome.Set;
    }

    /// <summary>Sets the slice on the socket engine's threads (started with the first socket); returns how many took it.</summary>
    public static int ApplyToSocketThreads(ulong nanoseconds)
    {
        if (nanoseconds == 0 || !LinuxSchedulerCalls.Instance.Available)
        {
            return 0;
        }

        Volatile.Write(ref s_inUse, 1);
        int applied = 0;
        foreach (int thread in LinuxSchedulerCalls.Instance.Threads())
        {
            if (LinuxSchedulerCalls.ThreadName(thread) == SocketEngineThread
                && ThreadSlice.Set(LinuxSchedulerCalls.Instance, thread, nanoseconds).Outcome == ThreadSliceOutcome.Set)
            {
                applied++;
            }
        }

        return applied;
    }

    /// <summary>
    /// Runs <paramref name="start"/> (a <c>Process.Start</c>) on a fresh thread whose slice is the kernel's default,
    /// once any generator thread has a shorter one: the caller may be a socket engine thread (an await that completed
    /// inline), and the child would inherit its slice.
    /// </summary>
    public static T WithDefaultSlice<T>(Func<T> start)
    {
        if (Volatile.Read(ref s_inUse) == 0)
        {
            return start();
        }

        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                _ = ThreadSlice.Set(LinuxSchedulerCalls.Instance, 0, 0);
                result = start();
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        })
        { IsBackground = true, Name = "spawn" };
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }

        return result;
    }
}
