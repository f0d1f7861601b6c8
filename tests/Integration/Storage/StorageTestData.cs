using Collab.Engine.Sequencing;

namespace Collab.Integration.Tests.Storage;

/// <summary>Builders for op records and snapshots used across the storage tests.</summary>
internal static class StorageTestData
{
    /// <summary>A fixed "now" in Unix ms, so timestamps compare exactly.</summary>
    public static readonly long NowMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    public static OpRecord Op(string docId, long version, string clientId = "client-1", long? clientSeq = null, string? author = "alice", byte[]? op = null, long? timestampMs = null) =>
        new(docId, version, clientId, clientSeq ?? version, author, op ?? OpBytes(docId, version), timestampMs ?? NowMs);

    /// <summary>Distinct, recognisable op bytes per (doc, version).</summary>
    public static byte[] OpBytes(string docId, long version)
    {
        var bytes = new byte[8 + (docId.Length % 7)];
        BitConverter.TryWriteBytes(bytes, version);
        for (var i = 8; i < bytes.Length; i++)
        {
            bytes[i] = (byte)(docId[i % docId.Length] + i);
        }

        return bytes;
    }

    /// <summary>Ops <paramref name="from"/>..<paramref name="to"/> of one document.</summary>
    public static List<OpRecord> Ops(string docId, long from, long to, string clientId = "client-1", long? timestampMs = null)
    {
        var ops = new List<OpRecord>();
        for (var v = from; v <= to; v++)
        {
            ops.Add(Op(docId, v, clientId, timestampMs: timestampMs));
        }

        return ops;
    }

    public static SnapshotRecord Snapshot(string docId, long version, string? text = null, long? timestampMs = null) =>
        new(docId, version, text ?? $"text of {docId} at {version}", new byte[] { 1, 2, (byte)version }, timestampMs ?? NowMs);

    /// <summary>Asserts two op records are equal field by field (op bytes by content).</summary>
    public static void AssertSame(OpRecord expected, OpRecord actual)
    {
        Assert.Equal(expected.DocId, actual.DocId);
        Assert.Equal(expected.Version, actual.Version);
        Assert.Equal(expected.ClientId, actual.ClientId);
        Assert.Equal(expected.ClientSeq, actual.ClientSeq);
        Assert.Equal(expected.Author, actual.Author);
        Assert.Equal(expected.Op.ToArray(), actual.Op.ToArray());
        Assert.Equal(expected.TimestampMs, actual.TimestampMs);
    }

    public static void AssertSame(IReadOnlyList<OpRecord> expected, IReadOnlyList<OpRecord> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            AssertSame(expected[i], actual[i]);
        }
    }

    public static string TempDirectory()
    {
        var path = Path.Combine(Path.GetTempPath(), "collab-store-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(path);
        return path;
    }
}
