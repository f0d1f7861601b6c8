using BenchmarkDotNet.Attributes;
using Collab.Engine.RichText;
using Collab.Engine.Sequencing;
using Collab.Engine.Tests.Sequencing;
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
    internal const int OpsPerInvoke = 200_000;

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
            "bench-text", TextType.Instance, DocumentState.Empty(TextType.Instance, options), new NoopDurabilityStage(), null, new NoopSequencerListener<Rope, TextOp>(), options);
        _rich = new DocumentSequencer<RichDocument, RichOp>(
            "bench-rich", RichTextType.Default, DocumentState.Empty(RichTextType.Default, options), new NoopDurabilityStage(), null, new NoopSequencerListener<RichDocument, RichOp>(), options);
        _counter = new DocumentSequencer<long, long>(
            "bench-counter", CounterType.Instance, DocumentState.Empty(CounterType.Instance, options), new NoopDurabilityStage(), null, new NoopSequencerListener<long, long>(), options);
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
}
