using System.Globalization;
using Collab.LoadTest.Client;

namespace Collab.LoadTest;

/// <summary>The scenarios of docs/PERFORMANCE.md, "Load tests".</summary>
internal enum ScenarioKind
{
    /// <summary>D documents × C clients, every client writing R ops/s; a list of rates is a ramp.</summary>
    Small,

    /// <summary>One document, 200+ clients: fan-out.</summary>
    Big,

    /// <summary>N subscribed idle connections: server memory per connection.</summary>
    Idle,

    /// <summary>Small rooms under load, then every connection drops at once and reconnects.</summary>
    Storm,

    /// <summary>Small rooms against a server on PostgreSQL.</summary>
    Durable,

    /// <summary>Small rooms with clients spread over several nodes (--servers).</summary>
    Cluster,
}

/// <summary>How much of the convergence check every client carries.</summary>
internal enum VerifyMode
{
    /// <summary>Versions, lengths and op hashes on every client; no text replica.</summary>
    None,

    /// <summary>As <see cref="None"/>, plus a full text replica on one client per document (the default).</summary>
    Light,

    /// <summary>A full text replica on every client (costs generator CPU: every client applies every op).</summary>
    Full,
}

/// <summary>The command line, typed. <see cref="Parse"/> applies the scenario's defaults, then the options.</summary>
internal sealed class LoadTestOptions
{
    public const string Usage = """
        Collab load generator (open loop, HdrHistogram latencies, NBomber-style report).

        usage: dotnet run -c Release --project loadtest -- <scenario> [options]
               dotnet run -c Release --project loadtest -- compare REPORT.json...   (one table of saved runs)

        scenarios
          small     D docs x C clients, each client R ops/s (default 200 x 5, R=1); --rate 1,2,5,10 ramps
          big       1 doc x 200 clients (fan-out), R=10 ops/s each
          idle      N subscribed idle connections (--connections, default 1000); server RSS per connection
                    right after connecting and after holding them W + T seconds (default 5 + 65)
          storm     small rooms at R=1; every connection drops (RST) at --storm-at and reconnects
          durable   small rooms; the server uses PostgreSQL (--postgres with --spawn-server)
          cluster   small rooms over several nodes (--servers, clients of a document spread round-robin)

        target
          --target collab|sharedb[,...]
                                    the server and its protocol (default collab). sharedb: ShareDB 7's JSON
                                    protocol with its client's discipline (one op in flight, queued, never
                                    composed); spawned from loadtest/peers/sharedb-server.js. Several targets
                                    (with --spawn-server) run one after another, each on its own pinned server,
                                    and the report shows them in one table
          --repeat N                run every target N times, interleaved (a, b, a, b, ...); medians in the table
          --url URL                 one server (default ws://127.0.0.1:8080/ws; ShareDB: ws://host:port/)
          --servers URL,URL,...     several servers (cluster)
          --metrics URL,URL,...     their metrics endpoints, e.g. http://host:9090/metrics on the management port
                                    (default: /metrics on each WebSocket port; --spawn-server uses a management port)
          --server-pid PID[,PID]    read CPU and memory of servers started elsewhere from /proc
          --spawn-server            start the server (src/Server Release, or ShareDB under node) pinned with
                                    taskset, temp data dir, free port
          --server-cmd CMD          command to start instead ({port}, {dataDir} substituted)
          --server-cpus LIST        taskset CPUs for the spawned server (default 0; "none" = unpinned)
          --generator-cpus LIST     re-run the generator under taskset (default 1 with --spawn-server; "none")
          --nice N                  run the spawned server and the re-run generator at nice N (e.g. -20 on a
                                    machine shared with other work; needs root or CAP_SYS_NICE; a larger CPU
                                    share, not faster wake-ups: see --generator-slice)
          --generator-slice US      the EEVDF slice of the generator's scheduler and socket threads, 100..100000
                                    microseconds (Linux 6.12+; 0 = the kernel's default): a shorter slice lets
                                    them preempt other work on their CPU when they wake (spawned servers keep the
                                    default; give the server Server:SchedulerSlice with --server-arg)
          --postgres CONNSTR        spawned server uses PostgreSQL
          --server-arg ARG          extra Collab server argument (repeatable; not passed to ShareDB)
          --build-server            rebuild src/Server before spawning it
          --keep-data               keep the spawned server's data directory

        shape and load
          --docs D  --clients C     documents, clients per document
          --connections N           N connections as N/C docs x C clients (idle: C = 10)
          --writers K               clients per document that submit (default all; the rest only receive)
          --rate R[,R2,...]         ops/s per writing client; several values make a ramp (one step each)
          --duration T  --warmup W  measured and warm-up seconds per step (default 20 and 5)
          --drain S                 seconds to wait for outstanding acks/broadcasts after a step (default 10)
          --init-len L              characters the first client inserts into each document before the run (64)
          --submit pipelined|one-in-flight|ping
                                    pipelined (default for Collab alone): every op leaves on schedule, base =
                                    last known version; one-in-flight (default with sharedb, its only op
                                    mode): ShareDB's client queue, next op after the previous ack;
                                    ping: a protocol Ping per slot, the Pong counted as its ack (the floor
                                    under the ack latency: socket, framing and session, no sequencing or storage)
          --type text|rich-text     the documents' OT type (default text: 4-character inserts). rich-text: Quill
                                    Delta ops in the rich binary encoding: formatted inserts, format retains
                                    over ranges, deletes, line formats, embeds (Collab only)
          --verify none|light|full  document replicas: none, one per document (default), every client
          --slo-p99 MS              ack p99 target for ramps (default 50); a ramp stops after the first miss
          --no-ramp-stop            run every ramp step
          --storm-at S              storm: seconds into the measured window when all connections drop (5)
          --reconnect-delay MS      minimum reconnect backoff (default 250 = the SDK's; 0 = all at once)
          --source-ips K            spread connections over 127.0.0.1..127.0.0.K (default: 8 for idle, else auto)
          --connect-concurrency N   connections being opened at once (default 200)
          --track N                 ops per writer kept for broadcast matching (default: rate x 30 s)
          --seed N                  random seed (positions, phases)

        output
          --out-dir DIR             default loadtest/results (relative to the repository)
          --json PATH  --chart PATH --no-chart   (default: <out-dir>/<scenario>-<time>.json/.png)
          --label TEXT              free text stored in the report
          --no-inline-completions   run socket continuations on the thread pool instead of the epoll thread
          --quiet                   no per-second progress lines
        """;

    public ScenarioKind Scenario { get; private set; }

    /// <summary>The servers to run against, in order (one run each, per repeat).</summary>
    public IReadOnlyList<ServerKind> Targets { get; private set; } = [ServerKind.Collab];

    /// <summary>The server of this run (<see cref="ForTarget"/> picks one of <see cref="Targets"/>).</summary>
    public ServerKind Target { get; private set; } = ServerKind.Collab;

    /// <summary>Runs per target.</summary>
    public int Repeat { get; private set; } = 1;

    /// <summary>Server processes started elsewhere whose CPU and memory the report reads from /proc.</summary>
    public List<int> ServerPids { get; } = [];

    public List<Uri> Servers { get; } = [new Uri("ws://127.0.0.1:8080/ws")];

    /// <summary>Where to scrape each server's metrics (one per server, in order); empty: /metrics on the WebSocket port.</summary>
    public List<Uri> MetricsUrls { get; } = [];

    public bool SpawnServer { get; private set; }

    public string? ServerCommand { get; private set; }

    public string? ServerCpus { get; private set; } = "0";

    /// <summary>CPUs for the generator (re-exec under taskset); null runs wherever it was started.</summary>
    public string? GeneratorCpus { get; private set; }

    public string? Postgres { get; private set; }

    /// <summary>Nice value for the spawned server and the pinned generator (0: leave the priority alone).</summary>
    public int Nice { get; private set; }

    /// <summary>EEVDF slice of the generator's threads in microseconds (<c>--generator-slice</c>; 0: the kernel's default).</summary>
    public int GeneratorSliceMicros { get; private set; }

    public List<string> ServerArgs { get; } = [];

    public bool BuildServer { get; private set; }

    public bool KeepData { get; private set; }

    public int Docs { get; private set; } = 200;

    public int ClientsPerDoc { get; private set; } = 5;

    /// <summary>Writing clients per document; null = all.</summary>
    public int? WritersPerDoc { get; private set; }

    public IReadOnlyList<double> Rates { get; private set; } = [1];

    public double DurationSeconds { get; private set; } = 20;

    public double WarmupSeconds { get; private set; } = 5;

    public double DrainSeconds { get; private set; } = 10;

    public int InitLength { get; private set; } = 64;

    public SubmitMode Submit { get; private set; } = SubmitMode.Pipelined;

    /// <summary>The documents' OT type: text-unicode (default) or rich-text (formatted ops in the rich binary encoding).</summary>
    public DocumentKind Document { get; private set; } = DocumentKind.Text;

    public VerifyMode Verify { get; private set; } = VerifyMode.Light;

    public double SloP99Ms { get; private set; } = 50;

    public bool RampStop { get; private set; } = true;

    public double StormAtSeconds { get; private set; } = 5;

    public double ReconnectDelayMs { get; private set; } = 250;

    /// <summary>Source addresses 127.0.0.1..K; 0 = automatic (one per 25,000 connections, all 127.0.0.1 below that).</summary>
    public int SourceAddresses { get; private set; }

    public int ConnectConcurrency { get; private set; } = 200;

    /// <summary>Broadcast tracking ring per writer; 0 = automatic.</summary>
    public int TrackCapacity { get; private set; }

    public int Seed { get; private set; } = Environment.TickCount;

    public string? OutDir { get; private set; }

    public string? JsonPath { get; private set; }

    public string? ChartPath { get; private set; }

    public bool NoChart { get; private set; }

    public string? Label { get; private set; }

    public bool InlineCompletions { get; private set; } = true;

    public bool Quiet { get; private set; }

    /// <summary>Total simulated clients.</summary>
    public int Connections => Docs * ClientsPerDoc;

    /// <summary>Writers per document after defaults.</summary>
    public int EffectiveWriters => Math.Min(WritersPerDoc ?? ClientsPerDoc, ClientsPerDoc);

    /// <summary>Source addresses after defaults.</summary>
    public int EffectiveSourceAddresses => SourceAddresses > 0
        ? SourceAddresses
        : Scenario == ScenarioKind.Idle ? 8 : Math.Max(1, (int)Math.Ceiling((Connections + Docs) / 25_000.0));

    /// <summary>Parses the arguments; throws <see cref="OptionsException"/> with a message for the user.</summary>
    public static LoadTestOptions Parse(IReadOnlyList<string> args)
    {
        if (args.Count == 0 || args[0] is "-h" or "--help" or "help")
        {
            throw new OptionsException(null);
        }

        var options = new LoadTestOptions();
        options.Scenario = args[0].ToLowerInvariant() switch
        {
            "small" or "small-rooms" => ScenarioKind.Small,
            "big" or "big-room" => ScenarioKind.Big,
            "idle" => ScenarioKind.Idle,
            "storm" or "reconnect-storm" => ScenarioKind.Storm,
            "durable" => ScenarioKind.Durable,
            "cluster" => ScenarioKind.Cluster,
            _ => throw new OptionsException($"Unknown scenario '{args[0]}'."),
        };
        options.ApplyScenarioDefaults();

        bool serversGiven = false;
        bool generatorCpusGiven = false;
        bool submitGiven = false;
        int? connections = null;
        for (int i = 1; i < args.Count; i++)
        {
            string arg = args[i];
            string name = arg;
            string? inline = null;
            int eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                name = arg[..eq];
                inline = arg[(eq + 1)..];
            }

            string Value()
            {
                if (inline is not null)
                {
                    return inline;
                }

                if (i + 1 >= args.Count)
                {
                    throw new OptionsException($"{name} needs a value.");
                }

                return args[++i];
            }

            switch (name)
            {
                case "--target":
                    options.Targets = [.. Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ParseTarget)];
                    if (options.Targets.Count == 0)
                    {
                        throw new OptionsException("--target needs at least one server (collab, sharedb).");
                    }

                    break;
                case "--repeat":
                    options.Repeat = PositiveInt(name, Value());
                    break;
                case "--server-pid":
                    options.ServerPids.Clear();
                    options.ServerPids.AddRange(Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => PositiveInt(name, v)));
                    break;
                case "--url":
                    options.Servers.Clear();
                    options.Servers.Add(ParseUri(Value()));
                    serversGiven = true;
                    break;
                case "--servers":
                    options.Servers.Clear();
                    options.Servers.AddRange(Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ParseUri));
                    serversGiven = true;
                    break;
                case "--metrics":
                    options.MetricsUrls.Clear();
                    options.MetricsUrls.AddRange(Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ParseHttpUri));
                    break;
                case "--spawn-server":
                    options.SpawnServer = true;
                    break;
                case "--server-cmd":
                    options.ServerCommand = Value();
                    break;
                case "--server-cpus":
                    options.ServerCpus = NoneToNull(Value());
                    break;
                case "--generator-cpus":
                    options.GeneratorCpus = NoneToNull(Value());
                    generatorCpusGiven = true;
                    break;
                case "--postgres":
                    options.Postgres = Value();
                    break;
                case "--nice":
                    options.Nice = int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int nice) && nice is >= -20 and <= 19
                        ? nice
                        : throw new OptionsException("--nice takes -20..19.");
                    break;
                case "--generator-slice":
                    options.GeneratorSliceMicros = int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int slice) && (slice == 0 || slice is >= 100 and <= 100_000)
                        ? slice
                        : throw new OptionsException("--generator-slice takes 0 (the kernel's default) or 100..100000 microseconds.");
                    break;
                case "--server-arg":
                    options.ServerArgs.Add(Value());
                    break;
                case "--build-server":
                    options.BuildServer = true;
                    break;
                case "--keep-data":
                    options.KeepData = true;
                    break;
                case "--docs":
                    options.Docs = PositiveInt(name, Value());
                    break;
                case "--clients":
                    options.ClientsPerDoc = PositiveInt(name, Value());
                    break;
                case "--connections":
                    connections = PositiveInt(name, Value());
                    break;
                case "--writers":
                    options.WritersPerDoc = NonNegativeInt(name, Value());
                    break;
                case "--rate":
                    options.Rates = [.. Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => NonNegativeDouble(name, v))];
                    if (options.Rates.Count == 0)
                    {
                        throw new OptionsException("--rate needs at least one value.");
                    }

                    break;
                case "--duration":
                    options.DurationSeconds = PositiveDouble(name, Value());
                    break;
                case "--warmup":
                    options.WarmupSeconds = NonNegativeDouble(name, Value());
                    break;
                case "--drain":
                    options.DrainSeconds = NonNegativeDouble(name, Value());
                    break;
                case "--init-len":
                    options.InitLength = NonNegativeInt(name, Value());
                    break;
                case "--type":
                    options.Document = Value().ToLowerInvariant() switch
                    {
                        "text" or "text-unicode" => DocumentKind.Text,
                        "rich" or "rich-text" => DocumentKind.Rich,
                        string other => throw new OptionsException($"--type: unknown document type '{other}' (text, rich-text)."),
                    };
                    break;
                case "--submit":
                    submitGiven = true;
                    options.Submit = Value().ToLowerInvariant() switch
                    {
                        "pipelined" => SubmitMode.Pipelined,
                        "one-in-flight" or "oneinflight" or "queue" => SubmitMode.OneInFlight,
                        "ping" => SubmitMode.Ping,
                        string other => throw new OptionsException($"--submit: unknown mode '{other}' (pipelined, one-in-flight, ping)."),
                    };
                    break;
                case "--verify":
                    options.Verify = Value().ToLowerInvariant() switch
                    {
                        "none" => VerifyMode.None,
                        "light" => VerifyMode.Light,
                        "full" => VerifyMode.Full,
                        string other => throw new OptionsException($"--verify: unknown mode '{other}' (none, light, full)."),
                    };
                    break;
                case "--slo-p99":
                    options.SloP99Ms = PositiveDouble(name, Value());
                    break;
                case "--no-ramp-stop":
                    options.RampStop = false;
                    break;
                case "--storm-at":
                    options.StormAtSeconds = NonNegativeDouble(name, Value());
                    break;
                case "--reconnect-delay":
                    options.ReconnectDelayMs = NonNegativeDouble(name, Value());
                    break;
                case "--source-ips":
                    options.SourceAddresses = PositiveInt(name, Value());
                    if (options.SourceAddresses > 254)
                    {
                        throw new OptionsException("--source-ips is at most 254 (127.0.0.1..127.0.0.254).");
                    }

                    break;
                case "--connect-concurrency":
                    options.ConnectConcurrency = PositiveInt(name, Value());
                    break;
                case "--track":
                    options.TrackCapacity = PositiveInt(name, Value());
                    break;
                case "--seed":
                    options.Seed = int.Parse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture);
                    break;
                case "--out-dir":
                    options.OutDir = Value();
                    break;
                case "--json":
                    options.JsonPath = Value();
                    break;
                case "--chart":
                    options.ChartPath = Value();
                    break;
                case "--no-chart":
                    options.NoChart = true;
                    break;
                case "--label":
                    options.Label = Value();
                    break;
                case "--no-inline-completions":
                    options.InlineCompletions = false;
                    break;
                case "--quiet":
                    options.Quiet = true;
                    break;
                default:
                    throw new OptionsException($"Unknown option '{arg}'.");
            }
        }

        if (connections is int n)
        {
            options.Docs = Math.Max(1, n / options.ClientsPerDoc);
        }

        if (options.SpawnServer && !generatorCpusGiven && Environment.ProcessorCount >= 2)
        {
            options.GeneratorCpus = "1";
        }

        if (!submitGiven && options.Targets.Contains(ServerKind.ShareDb))
        {
            // ShareDB's client has one op in flight; Collab beside it is measured under the same discipline.
            options.Submit = SubmitMode.OneInFlight;
        }

        options.Target = options.Targets[0];
        if (options.Target == ServerKind.ShareDb && !serversGiven)
        {
            options.Servers[0] = new Uri("ws://127.0.0.1:9101/");
        }

        options.Validate(serversGiven);
        return options;
    }

    /// <summary>Total runs: every target, <see cref="Repeat"/> times.</summary>
    public int RunCount => Targets.Count * Repeat;

    /// <summary>Tells this run's files apart from the other runs of the same invocation (null for a single run).</summary>
    public string? RunTag { get; private set; }

    /// <summary>This run's options for one of the <see cref="Targets"/>; <paramref name="run"/> counts repeats from 1.</summary>
    public LoadTestOptions ForTarget(ServerKind target, int run = 1)
    {
        var copy = (LoadTestOptions)MemberwiseClone();
        copy.Target = target;
        copy.RunTag = RunCount > 1 ? $"{(target == ServerKind.ShareDb ? "sharedb" : "collab")}-{run}" : null;
        return copy;
    }

    private static ServerKind ParseTarget(string value) => value.ToLowerInvariant() switch
    {
        "collab" => ServerKind.Collab,
        "sharedb" => ServerKind.ShareDb,
        _ => throw new OptionsException($"--target: unknown server '{value}' (collab, sharedb)."),
    };

    private void ApplyScenarioDefaults()
    {
        switch (Scenario)
        {
            case ScenarioKind.Big:
                Docs = 1;
                ClientsPerDoc = 200;
                Rates = [10];
                break;
            case ScenarioKind.Idle:
                Docs = 100;
                ClientsPerDoc = 10;
                Rates = [0];

                // Held 70 s: past two rounds of the server's keep-alive pings (30 s by default), which is where idle
                // memory settles. A few seconds after connecting it reads lower (PERFORMANCE.md, finding 16), and the
                // report gives that figure too.
                DurationSeconds = 65;
                WarmupSeconds = 5;
                InitLength = 0;
                break;
            case ScenarioKind.Storm:
                Rates = [1];
                break;
            default:
                break;
        }
    }

    private void Validate(bool serversGiven)
    {
        if (Targets.Distinct().Count() != Targets.Count)
        {
            throw new OptionsException("--target lists a server twice; use --repeat for several runs.");
        }

        if (Targets.Count > 1 && !SpawnServer)
        {
            throw new OptionsException("Several --target servers need --spawn-server (each run starts its own server; one --url cannot be both).");
        }

        if (Targets.Count > 1 && ServerCommand is not null)
        {
            throw new OptionsException("--server-cmd replaces one server's launch; it cannot serve several --target servers.");
        }

        if (Targets.Contains(ServerKind.ShareDb))
        {
            if (Document != DocumentKind.Text)
            {
                throw new OptionsException("The ShareDB peer (loadtest/peers) serves text-unicode documents: --type rich-text is Collab's.");
            }

            if (Submit == SubmitMode.Pipelined)
            {
                throw new OptionsException("ShareDB's client keeps one op in flight: --submit pipelined does not apply to --target sharedb (one-in-flight or ping).");
            }

            if (Scenario is ScenarioKind.Durable or ScenarioKind.Cluster)
            {
                throw new OptionsException($"The {Scenario.ToString().ToLowerInvariant()} scenario is Collab's (PostgreSQL, several nodes); ShareDB runs small, big, idle and storm.");
            }

            if (MetricsUrls.Count > 0 && Targets.Count == 1)
            {
                throw new OptionsException("ShareDB has no /metrics: give --server-pid to read its CPU and memory instead.");
            }
        }

        if (MetricsUrls.Count > 0 && (SpawnServer || MetricsUrls.Count != Servers.Count))
        {
            throw new OptionsException(SpawnServer
                ? "--metrics is for servers started elsewhere; --spawn-server scrapes the server it starts."
                : $"--metrics lists {MetricsUrls.Count} URLs for {Servers.Count} servers: give one per server, in the same order.");
        }

        if (SpawnServer && serversGiven)
        {
            throw new OptionsException("--spawn-server starts its own server; do not combine it with --url/--servers.");
        }

        if (!SpawnServer && (ServerCommand is not null || Postgres is not null || ServerArgs.Count > 0))
        {
            throw new OptionsException("--server-cmd, --postgres and --server-arg apply to --spawn-server only.");
        }

        if (Scenario == ScenarioKind.Cluster && Servers.Count < 2)
        {
            throw new OptionsException("The cluster scenario needs --servers with at least two nodes.");
        }

        if (Scenario == ScenarioKind.Durable && SpawnServer && Postgres is null && ServerCommand is null)
        {
            throw new OptionsException("The durable scenario runs against PostgreSQL: give --postgres CONNSTR (see scripts/loadtest-durable.sh).");
        }

        if (Scenario != ScenarioKind.Idle && Rates.Any(r => r <= 0))
        {
            throw new OptionsException("Rates must be positive (use the idle scenario for connections without ops).");
        }

        if (Scenario == ScenarioKind.Idle && Rates.Any(r => r != 0))
        {
            throw new OptionsException("The idle scenario submits nothing; --rate does not apply.");
        }

        if (Scenario == ScenarioKind.Storm && Rates.Count != 1)
        {
            throw new OptionsException("The storm scenario takes one rate.");
        }

        if (Scenario == ScenarioKind.Storm && StormAtSeconds >= DurationSeconds)
        {
            throw new OptionsException("--storm-at must fall inside the measured duration.");
        }

        if (EffectiveWriters == 0 && Scenario != ScenarioKind.Idle)
        {
            throw new OptionsException("--writers 0 leaves nobody to submit.");
        }
    }

    private static Uri ParseHttpUri(string value) =>
        Uri.TryCreate(value, UriKind.Absolute, out Uri? uri) && uri.Scheme is "http" or "https"
            ? uri
            : throw new OptionsException($"'{value}' is not an http:// URL.");

    private static Uri ParseUri(string value)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out Uri? uri) || uri.Scheme is not ("ws" or "wss"))
        {
            throw new OptionsException($"'{value}' is not a ws:// URL.");
        }

        if (uri.Scheme == "wss")
        {
            throw new OptionsException("wss:// is not supported by the generator (measure the server, not TLS): use ws://.");
        }

        return uri;
    }

    private static string? NoneToNull(string value) => value is "" or "none" ? null : value;

    private static int PositiveInt(string name, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : throw new OptionsException($"{name} must be a positive integer (was '{value}').");

    private static int NonNegativeInt(string name, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= 0 ? n : throw new OptionsException($"{name} must be a non-negative integer (was '{value}').");

    private static double PositiveDouble(string name, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && d > 0 && double.IsFinite(d) ? d : throw new OptionsException($"{name} must be a positive number (was '{value}').");

    private static double NonNegativeDouble(string name, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && d >= 0 && double.IsFinite(d) ? d : throw new OptionsException($"{name} must be a non-negative number (was '{value}').");
}

/// <summary>Bad command line; the message (null for --help) is shown with the usage.</summary>
internal sealed class OptionsException(string? message) : Exception(message ?? "help")
{
    public bool IsHelp => message is null;
}
