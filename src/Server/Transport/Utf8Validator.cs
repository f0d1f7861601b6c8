using System.Text;
using System.Text.Unicode;

namespace Collab.Server.Transport;

/// <summary>
/// Incremental UTF-8 validation across arbitrary chunk boundaries (frame fragments and pipe
/// segments), so a text message fails fast with 1007 and never needs to be contiguous to be checked.
/// Holds at most three bytes of an incomplete code point between chunks.
/// </summary>
internal struct Utf8Validator
{
    private uint _pending; // up to 3 bytes of an incomplete sequence, first byte lowest
    private int _pendingCount;

    /// <summary>True when no partial code point is carried over (required at the end of a message).</summary>
    public readonly bool IsComplete => _pendingCount == 0;

    public void Reset()
    {
        _pending = 0;
        _pendingCount = 0;
    }

    /// <summary>Validates the next chunk; returns false as soon as the input cannot be valid UTF-8.</summary>
    public bool TryAppend(ReadOnlySpan<byte> chunk)
    {
        if (_pendingCount != 0)
        {
            if (!TryCompletePending(ref chunk))
            {
                return false;
            }

            if (chunk.IsEmpty)
            {
                return true;
            }
        }

        if (Utf8.IsValid(chunk))
        {
            return true;
        }

        // Invalid as a whole: acceptable only if the chunk ends inside a code point whose prefix is valid.
        int lead = chunk.Length - 1;
        int stop = Math.Max(0, chunk.Length - 3);
        while (lead > stop && (chunk[lead] & 0xC0) == 0x80)
        {
            lead--;
        }

        ReadOnlySpan<byte> tail = chunk.Slice(lead);
        if (tail.Length > 3 || !Utf8.IsValid(chunk.Slice(0, lead)))
        {
            return false;
        }

        if (Rune.DecodeFromUtf8(tail, out _, out _) != System.Buffers.OperationStatus.NeedMoreData)
        {
            return false;
        }

        Store(tail);
        return true;
    }

    private bool TryCompletePending(ref ReadOnlySpan<byte> chunk)
    {
        Span<byte> scratch = stackalloc byte[4];
        for (int i = 0; i < _pendingCount; i++)
        {
            scratch[i] = (byte)(_pending >> (8 * i));
        }

        byte first = scratch[0];
        int sequenceLength = first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : 2;
        int take = Math.Min(sequenceLength - _pendingCount, chunk.Length);
        chunk.Slice(0, take).CopyTo(scratch.Slice(_pendingCount));
        int available = _pendingCount + take;
        switch (Rune.DecodeFromUtf8(scratch.Slice(0, available), out _, out _))
        {
            case System.Buffers.OperationStatus.Done:
                Reset();
                chunk = chunk.Slice(take);
                return true;
            case System.Buffers.OperationStatus.NeedMoreData:
                Store(scratch.Slice(0, available));
                chunk = chunk.Slice(take);
                return true;
            default:
                return false;
        }
    }

    private void Store(ReadOnlySpan<byte> bytes)
    {
        uint value = 0;
        for (int i = 0; i < bytes.Length; i++)
        {
            value |= (uint)bytes[i] << (8 * i);
        }

        _pending = value;
        _pendingCount = bytes.Length;
    }
}
