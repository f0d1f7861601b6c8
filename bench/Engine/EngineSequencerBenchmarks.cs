using System.Buffers;
using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using Collab.Engine;
using Collab.Engine.RichText;
using Collab.Engine.Sequencing;
using Collab.Engine.Text;

namespace Collab.Bench.Engine;

/// <summary>
/// Sequencer throughput in process: 1 or 8 concurrent submitters, each awaiting its previous op and submitting against
/// the latest committed version (like a client that receives every broadcast; with 8 submitters an op is transformed
/// against the others' ops sequenced meanwhile), with a durability stage that commits instantly. Target: 1,000,000 ops/s (1 µs per op or less), allocating little beyond the
/// op's encoded bytes. <see cref="Text"/> uses the real text type (a one-character insert), <see cref="Rich"/> the
/// rich-text type (a one-character bold insert; target 500,000 ops/s); <see cref="Counter"/> a trivial type, to show the
/// sequencer's own cost.
/// </summary>
[MemoryDiagnoser]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "[IterationCleanup] disposes each iteration's sequencers.")]
public class EngineSequencerBenchmarks
{
    private const int OpsPerInvoke = 200_000;

    private static readonly TextOp s_insert = TextOp.Insert(0, "a");
    private static readonly RichOp s_richInsert = RichOp.Insert(0, "a", AttributeMap.Of("bold", true));

    private DocumentSequencer<Rope, TextOp>? _text;
    private DocumentSequencer<long, long>? _counter;
    private DocumentSequencer<RichDocument, RichOp>? _rich;

    [Params(1, 8)]
    public int Submitters { get; set; }

    /// <summary>Run SubmitAsync continuations inline on the sequencer's worker instead of on the thread pool.</summary>
    [Params(false, true)]
    public bool InlineContinuations { get; set; }

    [IterationSetup]
    public void Setup()
    {
        // A fresh document per iteration keeps the text from growing across iterations.
        var options = new SequencerOptions { RunContinuationsAsynchronously = !InlineContinuations };
        _text = new DocumentSequencer<Rope, TextOp>(
            "bench-text", TextType.Instance, DocumentState.Empty(TextType.Instance, options), NoopStage.Instance, null, new NoopListener<Rope, TextOp>(), options);
        _rich = new DocumentSequencer<RichDocument, RichOp>(
            "bench-rich", RichTextType.Default, DocumentState.Empty(RichTextType.Default, options), NoopStage.Instance, null, new NoopListener<RichDocument, RichOp>(), options);
        _counter = new DocumentSequencer<long, long>(
            "bench-counter", CounterType.Instance, DocumentState.Empty(CounterType.Instance, options), NoopStage.Instance, null, new NoopListener<long, long>(), options);
    }

    [IterationCleanup]
    public void Cleanup()
    {
        _text!.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _counter!.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _rich!.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(OperationsPerInvoke = OpsPerInvoke)]
    public Task Text() => RunAsync(_text!, s_insert);

    [Benchmark(OperationsPerInvoke = OpsPerInvoke)]
    public Task Rich() => RunAsync(_rich!, s_richInsert);

    [Benchmark(OperationsPerInvoke = OpsPerInvoke)]
    public Task Counter() => RunAsync(_counter!, 1L);

    private Task RunAsync<TSnapshot, TOp>(DocumentSequencer<TSnapshot, TOp> sequencer, TOp op)
        where TSnapshot : notnull
        where TOp : notnull
    {
        int perSubmitter = OpsPerInvoke / Submitters;
        var submitters = new Task[Submitters];
        for (int s = 0; s < submitters.Length; s++)
        {
            string clientId = "client-" + s;
            submitters[s] = Task.Run(() => SubmitLoopAsync(sequencer, clientId, perSubmitter, op));
        }

        return Task.WhenAll(submitters);
    }

    private static async Task SubmitLoopAsync<TSnapshot, TOp>(DocumentSequencer<TSnapshot, TOp> sequencer, string clientId, int count, TOp op)
        where TSnapshot : notnull
        where TOp : notnull
    {
        for (int seq = 1; seq <= count; seq++)
        {
            SubmitResult result;
            do
            {
                // On a loaded machine a submitter can be descheduled between reading the version and submitting while
                // the others sequence more ops than the window holds; like a real client it then retries on a fresh base.
                var submission = new Submission<TOp>(clientId, seq, sequencer.CommittedVersion, op, null);
                result = await sequencer.SubmitAsync(submission).ConfigureAwait(false);
            }
            while (result.Status == SubmitStatus.VersionTooOld);

            if (result.Status != SubmitStatus.Acked)
            {
                throw new InvalidOperationException($"Unexpected result {result}.");
            }
        }
    }

    private sealed class NoopStage : IDurabilityStage
    {
        public static NoopStage Instance { get; } = new();

        public ValueTask CommitAsync(OpRecord op, CancellationToken cancellationToken) => default;
    }

    private sealed class NoopListener<TSnapshot, TOp> : ISequencerListener<TSnapshot, TOp>
        where TSnapshot : notnull
        where TOp : notnull
    {
        public void OnCommitted(in CommittedBatch<TSnapshot, TOp> batch)
        {
        }

        public void OnFenced(VersionConflictException conflict)
        {
        }

        public void OnFaulted(Exception exception)
        {
        }
    }

    /// <summary>A document that is a number and ops that add to it: commutative, so transform is the identity.</summary>
    private sealed class CounterType : IOtType<long, long>
    {
        public static CounterType Instance { get; } = new();

        public string Name => "counter";

        public long Empty => 0;

        public void Validate(long op, long snapshot)
        {
        }

        public long Apply(long snapshot, long op) => snapshot + op;

        public long Transform(long op, long other, TransformSide side) => op;

        public long Compose(long first, long second) => first + second;

        public bool IsNoop(long op) => op == 0;

        public int TransformCursor(int cursor, long op, bool isOwnOp) => cursor;

        public int SizeOf(long op) => sizeof(long);

        public long LengthOf(long snapshot) => 0;

        public void Encode(long op, IBufferWriter<byte> output)
        {
            BinaryPrimitives.WriteInt64LittleEndian(output.GetSpan(sizeof(long)), op);
            output.Advance(sizeof(long));
        }

        public long Decode(ReadOnlySpan<byte> input) => BinaryPrimitives.ReadInt64LittleEndian(input);

        public string ToText(long snapshot) => snapshot.ToString(System.Globalization.CultureInfo.InvariantCulture);

        public long FromText(string text) => long.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
    }
}
