using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using Collab.Engine.Sequencing;

namespace Collab.Engine.Tests.Sequencing;

// The sequencer alone, without storage or subscribers: shared by the tests and by bench's EngineSequencerBenchmarks,
// which links this file, so the allocation budgets and the benchmark measure the same thing.

/// <summary>Commits instantly, like a stage whose storage never waits.</summary>
public sealed class NoopDurabilityStage : IDurabilityStage
{
    public ValueTask CommitAsync(OpRecord op, CancellationToken cancellationToken) => default;
}

/// <summary>Ignores every batch and every end.</summary>
public sealed class NoopSequencerListener<TSnapshot, TOp> : ISequencerListener<TSnapshot, TOp>
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

/// <summary>A number and ops that add to it: commutative, so transform is the identity and only the sequencer's own cost is left.</summary>
public sealed class CounterType : IOtType<long, long>
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

    public string ToText(long snapshot) => snapshot.ToString(CultureInfo.InvariantCulture);

    public long FromText(string text) => long.Parse(text, CultureInfo.InvariantCulture);
}
