using System.Net;
using Collab.LoadTest.Client;
using Collab.LoadTest.Metrics;
using Collab.LoadTest.Reporting;

namespace Collab.LoadTest.Scenarios;

/// <summary>
/// All simulated clients of a run and their documents: who connects where (documents interleaved so every
/// document gets its first client early; a document's clients spread over the servers round-robin; sockets spread
/// over source addresses), connecting with bounded concurrency, waiting for the system to settle, the final
/// convergence check, dropping (storm) and closing.
/// </summary>
internal sealed class Fleet
{
    private readonly RunContext _ctx;
    private readonly LoadTestOptions _options;
    private readonly List<LightClient> _all = [];
    private readonly IPAddress?[] _sources;
    private List<LightClient> _connected = [];

    public Fleet(RunContext ctx, LoadTestOptions options, IReadOnlyList<Uri> servers, string runId)
    {
        _ctx = ctx;
        _options = options;
        int sources = options.EffectiveSourceAddresses;
        _sources = sources <= 1 ? [null] : [.. Enumerable.Range(1, sources).Select(i => (IPAddress?)new IPAddress(new byte[] { 127, 0, 0, (byte)i }))];
        int maxRate = (int)Math.Ceiling(options.Rates.Max());
        int track = options.TrackCapacity > 0 ? options.TrackCapacity : Math.Clamp(maxRate * 30, 256, 1 << 16);
        int writers = options.Scenario == ScenarioKind.Idle ? 0 : options.EffectiveWriters;

        for (int d = 0; d < options.Docs; d++)
        {
            Docs.Add(new DocState(d, $"lt-{runId}/doc-{d}"));
        }

        for (int i = 0; i < options.Connections; i++)
        {
            int d = i % options.Docs;
            int c = i / options.Docs;
            DocState doc = Docs[d];
            Uri server = servers[(d + c) % servers.Count];
            ClientRole role = c < writers ? ClientRole.Writer : ClientRole.Reader;
            bool replica = options.Verify == VerifyMode.Full || (options.Verify == VerifyMode.Light && c == 0 && options.Scenario != ScenarioKind.Idle);
            var client = new LightClient(ctx, i, doc, server, _sources[i % _sources.Length], role, replica, track);
            _all.Add(client);
        }
    }

    public List<DocState> Docs { get; } = [];

    public IReadOnlyList<LightClient> Connected => _connected;

    public IReadOnlyList<LightClient> Writers { get; private set; } = [];

    /// <summary>Clients currently live (connected, subscribed, caught up).</summary>
    public int LiveCount => _connected.Count(static c => c.State == ClientState.Live);

    /// <summary>Clients dropped and not yet live again (a dropped client still reads Live until its receive loop notices).</summary>
    public int AwaitingResumeCount => _connected.Count(static c => c.AwaitingResume);

    /// <summary>Opens every connection, <see cref="LoadTestOptions.ConnectConcurrency"/> at a time.</summary>
    public async Task<ConnectReport> ConnectAllAsync(CancellationToken cancellationToken)
    {
        long start = Clock.Now;
        int next = -1;
        int failed = 0;
        var workers = new Task[Math.Min(_options.ConnectConcurrency, _all.Count)];
        for (int w = 0; w < workers.Length; w++)
        {
            workers[w] = Task.Run(
                async () =>
                {
                    int i;
                    while ((i = Interlocked.Increment(ref next)) < _all.Count)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        try
                        {
                            await _all[i].ConnectAsync(cancellationToken).ConfigureAwait(false);
                        }
                        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                        {
                            Interlocked.Increment(ref failed);
                            _ctx.Errors.Add("connect", $"{ex.GetType().Name}: {ex.Message}");
                        }
                    }
                },
                cancellationToken);
        }

        await Task.WhenAll(workers).ConfigureAwait(false);
        _connected = [.. _all.Where(static c => c.State == ClientState.Live)];
        foreach (DocState doc in Docs)
        {
            doc.Clients.AddRange(_connected.Where(c => c.Doc == doc));
            doc.ReceiversPerOp = Math.Max(0, doc.Clients.Count - 1);
        }

        Writers = [.. _connected.Where(static c => c.Role == ClientRole.Writer)];
        _ctx.Directory = new ClientDirectory(_connected);
        return new ConnectReport(_all.Count, _connected.Count, failed, Clock.ToSeconds(Clock.Now - start));
    }

    /// <summary>
    /// The first client of each document inserts <paramref name="length"/> characters (ShareDB's harness starts
    /// from a 64-character document too), then waits until every client saw them. On ShareDB that insert is the
    /// document's creation, made even with no text (a ShareDB document takes no op before it is created).
    /// </summary>
    public async Task<bool> InitializeDocumentsAsync(int length, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (length > 0 || _ctx.Settings.Server == ServerKind.ShareDb)
        {
            string text = new('.', length);
            foreach (DocState doc in Docs)
            {
                if (doc.Clients.Count > 0)
                {
                    doc.Clients[0].SubmitInitialText(text);
                }
            }
        }

        (bool settled, _) = await SettleAsync(timeout, cancellationToken).ConfigureAwait(false);
        return settled;
    }

    /// <summary>
    /// Waits until nothing is outstanding: no unacknowledged or backlogged op, every tracked delivery made, and
    /// every client of a document at the same version. Returns whether it settled and how long it took.
    /// </summary>
    public async Task<(bool Settled, double Seconds)> SettleAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        long start = Clock.Now;
        long deadline = start + Clock.FromSeconds(timeout.TotalSeconds);
        while (true)
        {
            if (IsSettled())
            {
                return (true, Clock.ToSeconds(Clock.Now - start));
            }

            if (Clock.Now >= deadline)
            {
                return (false, Clock.ToSeconds(Clock.Now - start));
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Unacknowledged ops, backlogged ops and undelivered broadcasts right now.</summary>
    public (long Unacked, long Backlog, long MissingDeliveries) Outstanding()
    {
        long unacked = 0;
        long backlog = 0;
        long missing = 0;
        foreach (LightClient client in _connected)
        {
            (_, _, int pending, int queued) = client.Progress;
            unacked += pending;
            backlog += queued;
            if (client.Track is not null)
            {
                missing += client.Track.Outstanding(client.LastSeq);
            }
        }

        return (unacked, backlog, missing);
    }

    private bool IsSettled()
    {
        (long unacked, long backlog, long missing) = Outstanding();
        if (unacked != 0 || backlog != 0 || missing != 0)
        {
            return false;
        }

        foreach (DocState doc in Docs)
        {
            long version = -1;
            foreach (LightClient client in doc.Clients)
            {
                long v = client.Progress.Version;
                if (version >= 0 && v != version)
                {
                    return false;
                }

                version = v;
            }
        }

        return true;
    }

    /// <summary>Every connection drops at once (RST); each client then reconnects with its backoff and resumes.</summary>
    public int DropAll()
    {
        int dropped = 0;
        foreach (LightClient client in _connected)
        {
            if (client.State == ClientState.Live)
            {
                client.Drop();
                dropped++;
            }
        }

        return dropped;
    }

    public void CloseAll()
    {
        foreach (LightClient client in _all)
        {
            client.Close();
        }
    }

    /// <summary>
    /// Compares every client with the server: per document a fresh connection fetches the snapshot; every client
    /// must be at its version with its length and nothing pending, and every replica must hold its exact text.
    /// </summary>
    public async Task<ConvergenceReport> CheckConvergenceAsync(bool settled, CancellationToken cancellationToken)
    {
        int converged = 0;
        int checkedClients = 0;
        int replicas = 0;
        int behind = 0;
        int mismatched = 0;
        int pendingClients = 0;
        int faulted = 0;
        int checkerFailures = 0;
        var examples = new List<string>();
        void Example(string text)
        {
            lock (examples)
            {
                if (examples.Count < 10)
                {
                    examples.Add(text);
                }
            }
        }

        using var gate = new SemaphoreSlim(Math.Min(64, _options.ConnectConcurrency));
        var tasks = Docs.Where(static d => d.Clients.Count > 0).Select(async doc =>
        {
            await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                LightClient first = doc.Clients[0];
                var checker = new LightClient(_ctx, -1 - doc.Index, doc, first.Server, first.Source, ClientRole.Checker, replica: false, trackCapacity: 0);
                string text;
                byte[] content;
                long version;
                try
                {
                    await checker.ConnectAsync(cancellationToken).ConfigureAwait(false);
                    text = checker.SnapshotText ?? string.Empty;
                    content = checker.SnapshotContent;
                    version = checker.Progress.Version;
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    Interlocked.Increment(ref checkerFailures);
                    Example($"{doc.Id}: could not fetch the server snapshot: {ex.Message}");
                    return;
                }
                finally
                {
                    checker.Close();
                }

                long length = checker.Model.SnapshotLength(text, content);
                bool docOk = true;
                foreach (LightClient client in doc.Clients)
                {
                    Interlocked.Increment(ref checkedClients);
                    (long v, long l, int pending, int backlog) = client.Progress;
                    if (client.Fault is { } fault)
                    {
                        Interlocked.Increment(ref faulted);
                        Example($"{doc.Id} client {client.Index}: {fault}");
                        docOk = false;
                    }

                    if (pending + backlog > 0)
                    {
                        Interlocked.Increment(ref pendingClients);
                        Example($"{doc.Id} client {client.Index}: {pending} unacknowledged and {backlog} unsent ops");
                        docOk = false;
                    }

                    if (v != version)
                    {
                        Interlocked.Increment(ref behind);
                        Example($"{doc.Id} client {client.Index}: at version {v}, server at {version}");
                        docOk = false;
                        continue;
                    }

                    bool same = l == length;
                    if (client.Replica is { } replica)
                    {
                        Interlocked.Increment(ref replicas);
                        same &= replica.Matches(text, content);
                    }

                    if (!same)
                    {
                        Interlocked.Increment(ref mismatched);
                        Example($"{doc.Id} client {client.Index}: document differs from the server's at version {version} (length {l} vs {length})");
                        docOk = false;
                    }
                }

                if (docOk)
                {
                    Interlocked.Increment(ref converged);
                }
            }
            finally
            {
                gate.Release();
            }
        });
        await Task.WhenAll(tasks).ConfigureAwait(false);

        return new ConvergenceReport
        {
            DocsChecked = Docs.Count(static d => d.Clients.Count > 0),
            DocsConverged = converged,
            ClientsChecked = checkedClients,
            ReplicasCompared = replicas,
            ClientsBehind = behind,
            ClientsMismatched = mismatched,
            ClientsWithPendingOps = pendingClients,
            ClientsFaulted = faulted,
            CheckerFailures = checkerFailures,
            Examples = examples,
            Settled = settled,
        };
    }
}
