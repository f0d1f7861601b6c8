using Collab.Engine;
using Collab.Engine.Text;

namespace Collab.LoadTest.Client;

/// <summary>
/// A client's full copy of the server's text, for the convergence check: remote ops are applied as sequenced;
/// an own op is transformed exactly as the server did it (side Left, against every op sequenced after its base
/// version), which the replica can do because all those ops reached this client before the ack (protocol
/// guarantee 2). Only the ops the pending submits still need are kept.
/// </summary>
internal sealed class DocReplica
{
    private readonly List<(long Version, TextOp Op)> _log = [];
    private Rope _text = Rope.Empty;

    public Rope Text => _text;

    public void Reset(string text)
    {
        _text = Rope.FromString(text);
        _log.Clear();
    }

    /// <summary>Applies an op as the server sequenced it; <paramref name="oldestPendingBase"/> is -1 with nothing pending.</summary>
    public void ApplySequenced(long version, ReadOnlySpan<byte> encoded, long oldestPendingBase) =>
        ApplySequenced(version, TextOpCodec.Decode(encoded), oldestPendingBase);

    /// <summary>Applies an op as the server sequenced it, already decoded.</summary>
    public void ApplySequenced(long version, TextOp op, long oldestPendingBase)
    {
        _text = TextType.Apply(_text, op);
        Remember(version, op, oldestPendingBase);
    }

    /// <summary>
    /// Applies this client's own op, acknowledged at <paramref name="version"/>, that it made against
    /// <paramref name="baseVersion"/>; <paramref name="oldestPendingBase"/> is the base of the next pending op, or -1.
    /// </summary>
    public void ApplyOwn(long version, TextOp original, long baseVersion, long oldestPendingBase)
    {
        TextOp op = original;
        foreach ((long seen, TextOp other) in _log)
        {
            if (seen > baseVersion)
            {
                op = TextType.Transform(op, other, TransformSide.Left);
            }
        }

        _text = TextType.Apply(_text, op);
        Remember(version, op, oldestPendingBase);
    }

    private void Remember(long version, TextOp op, long oldestPendingBase)
    {
        if (oldestPendingBase < 0)
        {
            _log.Clear();
            return;
        }

        int stale = 0;
        while (stale < _log.Count && _log[stale].Version <= oldestPendingBase)
        {
            stale++;
        }

        _log.RemoveRange(0, stale);
        if (version > oldestPendingBase)
        {
            _log.Add((version, op));
        }
    }
}
