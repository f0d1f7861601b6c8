using System.Text;

namespace Collab.Server.Cluster;

/// <summary>
/// Rendezvous (highest-random-weight) hashing: every node scores every document and the highest score owns it. When a
/// node joins only the documents it now wins move to it; when one leaves only its documents move, spread over the others.
/// The hash must be identical in every process, so it is a fixed FNV-1a 64 with a murmur finalizer, never
/// <see cref="string.GetHashCode()"/> (randomized per process).
/// </summary>
internal static class Rendezvous
{
    /// <summary>The node among <paramref name="nodes"/> that should own <paramref name="docId"/>; null when there is none.</summary>
    public static string? Choose(string docId, IReadOnlyCollection<string> nodes)
    {
        string? best = null;
        ulong bestScore = 0;
        ulong docHash = Hash(docId, 0xcbf29ce484222325UL);
        foreach (string node in nodes)
        {
            ulong score = Mix(Hash(node, docHash));

            // Ties (practically impossible) break on the id so every node agrees.
            if (best is null || score > bestScore || (score == bestScore && string.CompareOrdinal(node, best) < 0))
            {
                best = node;
                bestScore = score;
            }
        }

        return best;
    }

    private static ulong Hash(string value, ulong seed)
    {
        const ulong Prime = 0x100000001b3UL;
        ulong hash = seed;
        Span<byte> buffer = stackalloc byte[256];
        int length = Encoding.UTF8.GetByteCount(value);
        Span<byte> bytes = length <= buffer.Length ? buffer[..length] : new byte[length];
        Encoding.UTF8.GetBytes(value, bytes);
        foreach (byte b in bytes)
        {
            hash ^= b;
            hash *= Prime;
        }

        // Separator: ("ab", "c") and ("a", "bc") must not hash alike.
        hash ^= 0xff;
        hash *= Prime;
        return hash;
    }

    private static ulong Mix(ulong h)
    {
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdUL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53UL;
        h ^= h >> 33;
        return h;
    }
}
