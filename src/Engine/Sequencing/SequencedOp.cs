namespace Collab.Engine.Sequencing;

/// <summary>A sequenced op in both forms: as stored and broadcast (<see cref="Record"/>, encoded once) and decoded (<see cref="Op"/>).</summary>
public readonly record struct SequencedOp<TOp>(OpRecord Record, TOp Op)
    where TOp : notnull;
