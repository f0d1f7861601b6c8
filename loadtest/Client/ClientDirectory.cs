using System.Numerics;
using System.Text;

namespace Collab.LoadTest.Client;

/// <summary>
/// Finds the simulated client behind a client id given as UTF-8 bytes (the form it has inside an Ops message),
/// without allocating a string per lookup: open addressing on an FNV-1a hash, verified by comparing the bytes.
/// Built once after every client has its server-assigned id; read-only (and so thread-safe) afterwards.
/// </summary>
internal sealed class ClientDirectory
{
    private readonly ulong[] _hashes;
    private readonly LightClient?[] _entries;
    private readonly int _mask;

    public ClientDirectory(IEnumerable<LightClient> clients)
    {
        List<LightClient> list = [.. clients.Where(static c => c.ClientIdUtf8.Length > 0)];
        int size = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, list.Count * 2));
        _hashes = new ulong[size];
        _entries = new LightClient?[size];
        _mask = size - 1;
        foreach (LightClient client in list)
        {
            ulong hash = Hash(client.ClientIdUtf8);
            int slot = (int)(hash & (ulong)_mask);
            while (_entries[slot] is { } existing)
            {
                if (existing.ClientIdUtf8.AsSpan().SequenceEqual(client.ClientIdUtf8))
                {
                    throw new InvalidOperationException($"Two simulated clients have the client id '{Encoding.UTF8.GetString(client.ClientIdUtf8)}'.");
                }

                slot = (slot + 1) & _mask;
            }

            _hashes[slot] = hash;
            _entries[slot] = client;
        }
    }

    public static ClientDirectory Empty { get; } = new([]);

    public bool TryFind(ReadOnlySpan<byte> clientId, out LightClient client)
    {
        ulong hash = Hash(clientId);
        int slot = (int)(hash & (ulong)_mask);
        while (_entries[slot] is { } entry)
        {
            if (_hashes[slot] == hash && entry.ClientIdUtf8.AsSpan().SequenceEqual(clientId))
            {
                client = entry;
                return true;
            }

            slot = (slot + 1) & _mask;
        }

        client = null!;
        return false;
    }

    /// <summary>64-bit FNV-1a.</summary>
    public static ulong Hash(ReadOnlySpan<byte> bytes)
    {
        ulong hash = 14695981039346656037UL;
        foreach (byte b in bytes)
        {
            hash = (hash ^ b) * 1099511628211UL;
        }

        return hash;
    }
}
