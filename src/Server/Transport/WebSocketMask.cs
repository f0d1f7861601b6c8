using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Collab.Server.Transport;

/// <summary>
/// RFC 6455 section 5.3 masking: payload[i] ^= key[i % 4]. Vectorized with the widest vectors the
/// CPU accelerates; every vector width is a multiple of four bytes, so the key pattern stays aligned
/// and a single broadcast key serves the whole run.
/// </summary>
internal static class WebSocketMask
{
    /// <summary>
    /// Rotates a key so that it applies to a payload continuing at byte <paramref name="offset"/> of
    /// the frame (the key was read little-endian, so byte i of the payload uses bits 8*i..8*i+7).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Rotate(uint key, long offset) => BitOperations.RotateRight(key, (int)(offset & 3) * 8);

    /// <summary>Unmasks in place; returns the key rotated for the byte after <paramref name="data"/>.</summary>
    public static uint ApplyInPlace(Span<byte> data, uint key)
    {
        Apply(data, data, key);
        return Rotate(key, data.Length);
    }

    /// <summary>
    /// XORs <paramref name="source"/> with the key into <paramref name="destination"/> (which may be the
    /// same memory as the source, but must not partially overlap it).
    /// </summary>
    public static void Apply(ReadOnlySpan<byte> source, Span<byte> destination, uint key)
    {
        int length = source.Length;
        if (destination.Length < length)
        {
            ThrowHelper.ThrowArgumentException("Destination is shorter than the source.", nameof(destination));
        }

        ref byte src = ref MemoryMarshal.GetReference(source);
        ref byte dst = ref MemoryMarshal.GetReference(destination);
        nuint i = 0;
        nuint n = (nuint)length;

        if (Vector512.IsHardwareAccelerated && n >= (nuint)Vector512<byte>.Count)
        {
            Vector512<byte> k = Vector512.Create(key).AsByte();
            nuint last = n - (nuint)Vector512<byte>.Count;
            for (; i <= last; i += (nuint)Vector512<byte>.Count)
            {
                (Vector512.LoadUnsafe(ref src, i) ^ k).StoreUnsafe(ref dst, i);
            }
        }

        if (Vector256.IsHardwareAccelerated && n - i >= (nuint)Vector256<byte>.Count)
        {
            Vector256<byte> k = Vector256.Create(key).AsByte();
            nuint last = n - (nuint)Vector256<byte>.Count;
            for (; i <= last; i += (nuint)Vector256<byte>.Count)
            {
                (Vector256.LoadUnsafe(ref src, i) ^ k).StoreUnsafe(ref dst, i);
            }
        }

        if (Vector128.IsHardwareAccelerated && n - i >= (nuint)Vector128<byte>.Count)
        {
            Vector128<byte> k = Vector128.Create(key).AsByte();
            nuint last = n - (nuint)Vector128<byte>.Count;
            for (; i <= last; i += (nuint)Vector128<byte>.Count)
            {
                (Vector128.LoadUnsafe(ref src, i) ^ k).StoreUnsafe(ref dst, i);
            }
        }

        ulong key64 = key | ((ulong)key << 32);
        for (; n - i >= 8; i += 8)
        {
            ulong v = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref src, i)) ^ key64;
            Unsafe.WriteUnaligned(ref Unsafe.Add(ref dst, i), v);
        }

        // Scalar tail: i is a multiple of 4 here only if n was; index the key by position.
        for (; i < n; i++)
        {
            Unsafe.Add(ref dst, i) = (byte)(Unsafe.Add(ref src, i) ^ (byte)(key >> (int)((i & 3) * 8)));
        }
    }
}
