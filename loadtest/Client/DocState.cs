using System.Text;

namespace Collab.LoadTest.Client;

/// <summary>
/// What the generator knows about one document: its id, its simulated clients, and a ring of (version, op hash)
/// that lets every receiver check it got the same op at each version as the others (the cheap half of the
/// convergence check; the other half compares versions, lengths and replica texts with the server's snapshot).
/// </summary>
internal sealed class DocState
{
    private const int HashRing = 4096;

    private readonly Lock _gate = new();
    private readonly long[] _versions = new long[HashRing];
    private readonly ulong[] _hashes = new ulong[HashRing];

    public DocState(int index, string id)
    {
        Index = index;
        Id = id;
        IdUtf8 = Encoding.UTF8.GetBytes(id);
        IdJson = ShareDbWire.Escape(id);
    }

    public int Index { get; }

    public string Id { get; }

    public byte[] IdUtf8 { get; }

    /// <summary>The id JSON-escaped, without quotes (ShareDB messages).</summary>
    public byte[] IdJson { get; }

    public List<LightClient> Clients { get; } = [];

    /// <summary>Generator clients that receive each op of a writer here (all subscribed clients but the author).</summary>
    public int ReceiversPerOp { get; set; }

    /// <summary>
    /// Records or checks the hash of the op sequenced at <paramref name="version"/>; false when another client of
    /// this document received different bytes for it. Versions older than the ring are not checked.
    /// </summary>
    public bool VerifyOp(long version, ulong hash)
    {
        int slot = (int)(version & (HashRing - 1));
        lock (_gate)
        {
            if (_versions[slot] == version)
            {
                return _hashes[slot] == hash;
            }

            if (_versions[slot] < version)
            {
                _versions[slot] = version;
                _hashes[slot] = hash;
            }

            return true;
        }
    }
}
