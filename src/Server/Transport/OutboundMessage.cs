using System.Buffers;
using System.Diagnostics;
using System.Text;

namespace Collab.Server.Transport;

/// <summary>
/// A complete server-to-client frame in pooled memory, reference-counted so that one broadcast is
/// encoded and framed once and the same bytes are written to every recipient.
/// </summary>
/// <remarks>
/// <para>Lifecycle: <see cref="CreateBinary(int)"/> (or <see cref="CreateText(int)"/>) rents a message
/// holding one reference for its creator. The creator writes the payload through the
/// <see cref="IBufferWriter{T}"/> interface (protobuf's <c>WriteTo(IBufferWriter&lt;byte&gt;)</c> serializes
/// straight into it), calls <see cref="Complete"/>, hands it to any number of connections with
/// <see cref="IWebSocketConnection.TrySend"/> (each takes its own reference until the bytes are copied to
/// its socket pipe) and finally disposes it to drop the creator's reference. The buffer and the message
/// object return to their pools when the last reference is released.</para>
/// <para>The payload is written after a 10-byte gap; <see cref="Complete"/> writes the header right-aligned
/// into the gap, so the frame is one contiguous span and the payload is never moved.</para>
/// <para>A message must not be touched after <see cref="Dispose"/>: the object is recycled.</para>
/// </remarks>
public sealed partial class OutboundMessage : IBufferWriter<byte>, IDisposable
{
    private const int HeaderReserve = WebSocketFrame.MaxServerHeaderLength;
    private const int MinimumBufferSize = 256;

    private byte[] _buffer = Array.Empty<byte>();
    private int _payloadLength;
    private int _frameStart;
    private int _refCount;
    private bool _completed;
    private bool _creatorReleased;
    private WebSocketOpcode _opcode;

    private OutboundMessage()
    {
    }

    /// <summary>Whether the payload is a text message (opcode 0x1) rather than binary.</summary>
    public bool IsText => _opcode == WebSocketOpcode.Text;

    /// <summary>The frame's opcode.</summary>
    public WebSocketOpcode Opcode => _opcode;

    /// <summary>Payload bytes written so far.</summary>
    public int PayloadLength => _payloadLength;

    /// <summary>True once <see cref="Complete"/> has framed the message; only then can it be sent.</summary>
    public bool IsCompleted => _completed;

    /// <summary>The whole frame (header and payload) once completed.</summary>
    internal ReadOnlyMemory<byte> Frame => _buffer.AsMemory(_frameStart, HeaderReserve - _frameStart + _payloadLength);

    /// <summary>The whole frame as an array segment, for a gathered socket send (<c>Socket.Send(IList&lt;ArraySegment&lt;byte&gt;&gt;)</c>).</summary>
    internal ArraySegment<byte> FrameSegment => new(_buffer, _frameStart, HeaderReserve - _frameStart + _payloadLength);

    /// <summary>Frame length in bytes (header and payload) once completed; what a connection's outbound bound counts.</summary>
    internal int FrameLength => HeaderReserve - _frameStart + _payloadLength;

    /// <summary>The payload written so far (for tests and diagnostics).</summary>
    internal ReadOnlySpan<byte> Payload => _buffer.AsSpan(HeaderReserve, _payloadLength);

    /// <summary>Rents an empty binary message to be written through <see cref="IBufferWriter{T}"/>.</summary>
    public static OutboundMessage CreateBinary(int sizeHint = 0) => Rent(WebSocketOpcode.Binary, sizeHint);

    /// <summary>Rents an empty text message; the caller writes valid UTF-8 (it is not re-validated).</summary>
    public static OutboundMessage CreateText(int sizeHint = 0) => Rent(WebSocketOpcode.Text, sizeHint);

    /// <summary>Rents a completed binary message holding a copy of <paramref name="payload"/>.</summary>
    public static OutboundMessage CreateBinary(ReadOnlySpan<byte> payload) => CreateCompleted(WebSocketOpcode.Binary, payload);

    /// <summary>Rents a completed text message holding <paramref name="text"/> encoded as UTF-8.</summary>
    public static OutboundMessage CreateText(ReadOnlySpan<char> text)
    {
        OutboundMessage message = Rent(WebSocketOpcode.Text, Encoding.UTF8.GetMaxByteCount(text.Length));
        int written = Encoding.UTF8.GetBytes(text, message.GetSpan(0));
        message.Advance(written);
        message.Complete();
        return message;
    }

    /// <summary>A completed control frame (close, ping, pong); payload at most 125 bytes.</summary>
    internal static OutboundMessage CreateControl(WebSocketOpcode opcode, ReadOnlySpan<byte> payload)
    {
        Debug.Assert(payload.Length <= WebSocketFrame.MaxControlPayload);
        return CreateCompleted(opcode, payload);
    }

    /// <summary>A completed close frame carrying a status code and a UTF-8 reason truncated to fit 125 bytes.</summary>
    internal static OutboundMessage CreateClose(ushort statusCode, string? reason)
    {
        Span<byte> payload = stackalloc byte[WebSocketFrame.MaxControlPayload];
        payload[0] = (byte)(statusCode >> 8);
        payload[1] = (byte)statusCode;
        int length = 2 + EncodeReason(reason, payload.Slice(2));
        return CreateCompleted(WebSocketOpcode.Close, payload.Slice(0, length));
    }

    /// <summary>UTF-8 encodes as much of the reason as fits, never splitting a character.</summary>
    internal static int EncodeReason(string? reason, Span<byte> destination)
    {
        if (string.IsNullOrEmpty(reason))
        {
            return 0;
        }

        Encoding.UTF8.GetEncoder().Convert(reason, destination, flush: true, out _, out int bytesUsed, out _);
        return bytesUsed;
    }

    private static OutboundMessage CreateCompleted(WebSocketOpcode opcode, ReadOnlySpan<byte> payload)
    {
        OutboundMessage message = Rent(opcode, payload.Length);
        payload.CopyTo(message.GetSpan(payload.Length));
        message.Advance(payload.Length);
        message.Complete();
        return message;
    }

    private static OutboundMessage Rent(WebSocketOpcode opcode, int sizeHint)
    {
        if (sizeHint < 0)
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(sizeHint), "The size hint must not be negative.");
        }

        OutboundMessage message = Pool.Rent();
        message._buffer = ArrayPool<byte>.Shared.Rent(Math.Max(MinimumBufferSize, HeaderReserve + sizeHint));
        message._opcode = opcode;
        message._payloadLength = 0;
        message._frameStart = HeaderReserve;
        message._completed = false;
        message._creatorReleased = false;
        message._refCount = 1;
        return message;
    }

    /// <inheritdoc />
    public void Advance(int count)
    {
        if (_completed)
        {
            ThrowHelper.ThrowInvalidOperation("The message is already completed.");
        }

        if ((uint)count > (uint)(_buffer.Length - HeaderReserve - _payloadLength))
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(count), "Advanced past the end of the buffer.");
        }

        _payloadLength += count;
    }

    /// <inheritdoc />
    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        EnsureCapacity(sizeHint);
        return _buffer.AsMemory(HeaderReserve + _payloadLength);
    }

    /// <inheritdoc />
    public Span<byte> GetSpan(int sizeHint = 0)
    {
        EnsureCapacity(sizeHint);
        return _buffer.AsSpan(HeaderReserve + _payloadLength);
    }

    /// <summary>Writes the frame header; after this the message is immutable and can be sent.</summary>
    public void Complete()
    {
        if (_completed)
        {
            ThrowHelper.ThrowInvalidOperation("The message is already completed.");
        }

        int headerLength = WebSocketFrame.ServerHeaderLength(_payloadLength);
        _frameStart = HeaderReserve - headerLength;
        WebSocketFrame.WriteServerHeader(_buffer.AsSpan(_frameStart, headerLength), _opcode, _payloadLength);
        _completed = true;
    }

    /// <summary>Drops the creator's reference; the memory is recycled once every connection has written it.</summary>
    public void Dispose()
    {
        if (_creatorReleased)
        {
            return;
        }

        _creatorReleased = true;
        Release();
    }

    /// <summary>Takes a reference for a connection's outbound queue.</summary>
    internal void AddReference()
    {
        if (Interlocked.Increment(ref _refCount) <= 1)
        {
            ThrowHelper.ThrowObjectDisposed(nameof(OutboundMessage));
        }
    }

    /// <summary>Releases one reference; the last one returns the buffer and the object to their pools.</summary>
    internal void Release()
    {
        int remaining = Interlocked.Decrement(ref _refCount);
        if (remaining > 0)
        {
            return;
        }

        if (remaining < 0)
        {
            ThrowHelper.ThrowObjectDisposed(nameof(OutboundMessage));
        }

        byte[] buffer = _buffer;
        _buffer = Array.Empty<byte>();
        _payloadLength = 0;
        Timestamps = default;
        ArrayPool<byte>.Shared.Return(buffer);
        Pool.Return(this);
    }

    private void EnsureCapacity(int sizeHint)
    {
        if (_completed)
        {
            ThrowHelper.ThrowInvalidOperation("The message is already completed.");
        }

        int required = HeaderReserve + _payloadLength + Math.Max(sizeHint, 1);
        if (required <= _buffer.Length)
        {
            return;
        }

        // Grow geometrically so a serializer asking for small spans stays O(n); the header gap moves with the payload.
        int newSize = (int)Math.Min(Array.MaxLength, Math.Max((long)_buffer.Length * 2, required));
        byte[] larger = ArrayPool<byte>.Shared.Rent(newSize);
        _buffer.AsSpan(0, HeaderReserve + _payloadLength).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = larger;
    }

    /// <summary>
    /// A small lock-free pool of message objects (the buffers live in <see cref="ArrayPool{T}"/>), so
    /// steady-state sending allocates nothing. Same shape as Microsoft.Extensions.ObjectPool's default pool:
    /// one fast slot plus an array scanned with compare-exchange.
    /// </summary>
    private static class Pool
    {
        private static readonly OutboundMessage?[] s_items = new OutboundMessage?[Math.Max(64, Environment.ProcessorCount * 32)];
        private static OutboundMessage? s_fast;

        public static OutboundMessage Rent()
        {
            OutboundMessage? item = s_fast;
            if (item is not null && Interlocked.CompareExchange(ref s_fast, null, item) == item)
            {
                return item;
            }

            OutboundMessage?[] items = s_items;
            for (int i = 0; i < items.Length; i++)
            {
                item = items[i];
                if (item is not null && Interlocked.CompareExchange(ref items[i], null, item) == item)
                {
                    return item;
                }
            }

            return new OutboundMessage();
        }

        public static void Return(OutboundMessage message)
        {
            if (s_fast is null && Interlocked.CompareExchange(ref s_fast, message, null) is null)
            {
                return;
            }

            OutboundMessage?[] items = s_items;
            for (int i = 0; i < items.Length; i++)
            {
                if (Interlocked.CompareExchange(ref items[i], message, null) is null)
                {
                    return;
                }
            }

            // Pool full: let the GC have it.
        }
    }
}
