using System.Buffers;

namespace Collab.Server.Transport;

/// <summary>
/// The read side of an open WebSocket: frames parsed from the pipe, control frames answered, payloads unmasked once
/// (in place for single-frame messages up to <see cref="InlineFrameLimit"/>, else assembled in a pooled buffer) and
/// messages handed to the session in batches whose replies are flushed together.
/// </summary>
internal sealed partial class TransportConnection
{
    // Inbound: the frame being streamed into the assembly buffer and the message being assembled.
    private long _frameRemaining;
    private uint _frameMask;
    private bool _frameFin;
    private bool _inMessage;
    private bool _messageIsText;
    private byte[]? _assembly;
    private int _assemblyLength;
    private Utf8Validator _utf8;
    private long _framesInBatch;

    private enum ReadStep
    {
        NeedMoreData,
        DeliverInline,
        DeliverAssembled,
        Stop,
    }

    /// <summary>
    /// Consumes frames from <paramref name="buffer"/> until a complete message is ready, more bytes are
    /// needed, or reading must stop. Control frames are answered here; payloads are unmasked exactly once.
    /// </summary>
    private ReadStep ProcessFrames(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> message, out bool isText)
    {
        message = default;
        isText = false;
        long frames = 0;
        try
        {
            while (true)
            {
                if (_failed)
                {
                    // The connection was failed (RFC 6455 section 7.1.7): our Close is queued, and the peer's stream
                    // cannot be parsed any further, so its Close is not awaited. Stop reading; TCP closes once our
                    // Close is flushed.
                    return ReadStep.Stop;
                }

                if (_frameRemaining > 0)
                {
                    if (buffer.IsEmpty)
                    {
                        return ReadStep.NeedMoreData;
                    }

                    long take = Math.Min(_frameRemaining, buffer.Length);
                    if (!_discarding)
                    {
                        AppendPayload(buffer.Slice(0, take));
                        if (_failed)
                        {
                            return ReadStep.Stop;
                        }
                    }

                    buffer = buffer.Slice(take);
                    _frameRemaining -= take;
                    if (_frameRemaining > 0)
                    {
                        return ReadStep.NeedMoreData;
                    }

                    if (_frameFin && !_discarding && TryFinishMessage(out message, out isText))
                    {
                        return ReadStep.DeliverAssembled;
                    }

                    continue;
                }

                if (!WebSocketFrame.TryParseHeader(buffer, out FrameHeader header))
                {
                    return ReadStep.NeedMoreData;
                }

                if (_discarding)
                {
                    // After our Close: only the peer's Close matters; everything else is skipped unparsed.
                    if (header.Opcode == WebSocketOpcode.Close)
                    {
                        buffer = buffer.Slice(Math.Min(buffer.Length, header.HeaderLength + (long)Math.Min(header.PayloadLength, 125UL)));
                        return ReadStep.Stop;
                    }

                    buffer = buffer.Slice(header.HeaderLength);
                    _frameRemaining = header.PayloadLength > long.MaxValue ? long.MaxValue : (long)header.PayloadLength;
                    continue;
                }

                ushort violation = WebSocketFrame.Validate(header, _options.MaxMessageBytes);
                if (violation == 0 && !header.IsControl)
                {
                    violation = CheckFragmentation(header);
                }

                if (violation != 0)
                {
                    Fail(violation);
                    buffer = buffer.Slice(header.HeaderLength);
                    _frameRemaining = header.PayloadLength > long.MaxValue ? long.MaxValue : (long)header.PayloadLength;
                    continue;
                }

                long payloadLength = (long)header.PayloadLength;
                if (header.IsControl)
                {
                    long total = header.HeaderLength + payloadLength;
                    if (buffer.Length < total)
                    {
                        return ReadStep.NeedMoreData;
                    }

                    frames++;
                    bool keepReading = HandleControlFrame(header, buffer.Slice(header.HeaderLength, payloadLength));
                    buffer = buffer.Slice(total);
                    if (!keepReading)
                    {
                        return ReadStep.Stop;
                    }

                    continue;
                }

                if (header.Opcode != WebSocketOpcode.Continuation)
                {
                    if (header.Fin && header.HeaderLength + payloadLength <= InlineFrameLimit)
                    {
                        long total = header.HeaderLength + payloadLength;
                        if (buffer.Length < total)
                        {
                            return ReadStep.NeedMoreData;
                        }

                        // Zero copy: unmask in the pipe's own memory, hand out a slice of it.
                        ReadOnlySequence<byte> payload = buffer.Slice(header.HeaderLength, payloadLength);
                        buffer = buffer.Slice(total);
                        frames++;
                        isText = header.Opcode == WebSocketOpcode.Text;
                        if (!UnmaskAndValidate(payload, header.MaskKey, isText))
                        {
                            Fail(WebSocketCloseCodes.InvalidPayload);
                            continue;
                        }

                        message = payload;
                        return ReadStep.DeliverInline;
                    }

                    _inMessage = true;
                    _messageIsText = header.Opcode == WebSocketOpcode.Text;
                    _assemblyLength = 0;
                    _utf8.Reset();
                }

                if (_assemblyLength + payloadLength > _options.MaxMessageBytes)
                {
                    Fail(WebSocketCloseCodes.MessageTooBig);
                    buffer = buffer.Slice(header.HeaderLength);
                    _frameRemaining = payloadLength;
                    continue;
                }

                EnsureAssembly(_assemblyLength + payloadLength);
                buffer = buffer.Slice(header.HeaderLength);
                frames++;
                _frameRemaining = payloadLength;
                _frameMask = header.MaskKey;
                _frameFin = header.Fin;
                if (payloadLength == 0 && header.Fin && TryFinishMessage(out message, out isText))
                {
                    return ReadStep.DeliverAssembled;
                }
            }
        }
        finally
        {
            _framesInBatch += frames;
        }
    }

    /// <summary>Disarms the first-message deadline (<see cref="HandshakeDecision.RequireFirstMessage"/>).</summary>
    private void FirstMessageArrived()
    {
        lock (_sync)
        {
            _awaitingFirstMessage = false;
            if (_phase == PhaseOpen)
            {
                _deadline = long.MaxValue; // a closing connection keeps its close deadline
            }
        }
    }

    private ushort CheckFragmentation(in FrameHeader header)
    {
        bool continuation = header.Opcode == WebSocketOpcode.Continuation;
        if (continuation != _inMessage)
        {
            // A continuation with nothing to continue, or a new message inside a fragmented one (5.4).
            return WebSocketCloseCodes.ProtocolError;
        }

        return 0;
    }

    /// <summary>Copies and unmasks one chunk of the current frame into the assembly buffer, validating text on the way.</summary>
    private void AppendPayload(ReadOnlySequence<byte> chunk)
    {
        foreach (ReadOnlyMemory<byte> segment in chunk)
        {
            Span<byte> destination = _assembly.AsSpan(_assemblyLength, segment.Length);
            WebSocketMask.Apply(segment.Span, destination, _frameMask);
            _frameMask = WebSocketMask.Rotate(_frameMask, segment.Length);
            _assemblyLength += segment.Length;
            if (_messageIsText && !_utf8.TryAppend(destination))
            {
                Fail(WebSocketCloseCodes.InvalidPayload);
                return;
            }
        }
    }

    private bool TryFinishMessage(out ReadOnlySequence<byte> message, out bool isText)
    {
        _inMessage = false;
        isText = _messageIsText;
        if (isText && !_utf8.IsComplete)
        {
            Fail(WebSocketCloseCodes.InvalidPayload); // the message ended inside a code point
            message = default;
            ReturnAssembly();
            return false;
        }

        message = _assembly is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(_assembly, 0, _assemblyLength);
        return true;
    }

    private static bool UnmaskAndValidate(ReadOnlySequence<byte> payload, uint mask, bool isText)
    {
        var utf8 = default(Utf8Validator);
        foreach (ReadOnlyMemory<byte> segment in payload)
        {
            // The pipe hands out read-only memory, but the bytes are ours until AdvanceTo: unmask in place.
            Span<byte> span = System.Runtime.InteropServices.MemoryMarshal.AsMemory(segment).Span;
            mask = WebSocketMask.ApplyInPlace(span, mask);
            if (isText && !utf8.TryAppend(span))
            {
                return false;
            }
        }

        return !isText || utf8.IsComplete;
    }

    private void EnsureAssembly(long required)
    {
        if (_assembly is not null && _assembly.Length >= required)
        {
            return;
        }

        int size = (int)Math.Min(_options.MaxMessageBytes, Math.Max(required, Math.Max(4096, (_assembly?.Length ?? 0) * 2L)));
        byte[] larger = ArrayPool<byte>.Shared.Rent(size);
        if (_assembly is not null)
        {
            _assembly.AsSpan(0, _assemblyLength).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_assembly);
        }

        _assembly = larger;
    }

    private void ReturnAssembly()
    {
        // Give the buffer back after every assembled message: an idle connection holds no memory.
        if (_assembly is not null)
        {
            ArrayPool<byte>.Shared.Return(_assembly);
            _assembly = null;
        }

        _assemblyLength = 0;
    }

    /// <summary>Answers ping, notes pong, runs the close handshake; false when reading must stop.</summary>
    private bool HandleControlFrame(in FrameHeader header, ReadOnlySequence<byte> maskedPayload)
    {
        Span<byte> payload = stackalloc byte[WebSocketFrame.MaxControlPayload];
        payload = payload.Slice(0, (int)maskedPayload.Length);
        maskedPayload.CopyTo(payload);
        WebSocketMask.ApplyInPlace(payload, header.MaskKey);

        switch (header.Opcode)
        {
            case WebSocketOpcode.Ping:
                TryEnqueueControl(OutboundMessage.CreateControl(WebSocketOpcode.Pong, payload), countTowardBound: true);
                return true;
            case WebSocketOpcode.Pong:
                _pingOutstanding = false;
                _missedPongs = 0;
                return true;
        }

        ushort code = 0;
        if (payload.Length == 1)
        {
            Fail(WebSocketCloseCodes.ProtocolError);
            return false;
        }

        if (payload.Length >= 2)
        {
            code = (ushort)((payload[0] << 8) | payload[1]);
            if (!WebSocketCloseCodes.IsValidOnWire(code))
            {
                Fail(WebSocketCloseCodes.ProtocolError);
                return false;
            }

            if (!System.Text.Unicode.Utf8.IsValid(payload.Slice(2)))
            {
                Fail(WebSocketCloseCodes.InvalidPayload);
                return false;
            }
        }

        // Echo the status code (7.1.5); the empty-Close case is answered with an empty Close.
        bool sent = false;
        lock (_sync)
        {
            if (_phase == PhaseOpen)
            {
                _phase = PhaseClosing;
                _closeSent = true;
                _deadline = Environment.TickCount64 + _services.CloseTimeoutMs;
                sent = true;
            }
        }

        if (sent)
        {
            RecordEnd(ConnectionEndReason.ClientClosed);
            _discarding = true;
            OutboundMessage reply = OutboundMessage.CreateControl(WebSocketOpcode.Close, payload.Length >= 2 ? payload.Slice(0, 2) : default);
            EnqueueFinal(reply);
        }

        return false;
    }

    /// <summary>
    /// Fails the connection for a protocol violation (RFC 6455 section 7.1.7): queues our Close and stops reading, so the
    /// TCP connection closes as soon as the Close is flushed, without waiting for a Close from a peer whose byte stream
    /// can no longer be parsed.
    /// </summary>
    private void Fail(ushort code)
    {
        _failed = true;
        TransportMetrics.Violation(code).Inc();
        ConnectionEndReason reason = code switch
        {
            WebSocketCloseCodes.InvalidPayload => ConnectionEndReason.InvalidPayload,
            WebSocketCloseCodes.MessageTooBig => ConnectionEndReason.MessageTooBig,
            _ => ConnectionEndReason.ProtocolError,
        };
        string text = code switch
        {
            WebSocketCloseCodes.InvalidPayload => "invalid UTF-8",
            WebSocketCloseCodes.MessageTooBig => "message too big",
            _ => "protocol error",
        };
        _inMessage = false;
        ReturnAssembly();
        StartClose(code, text, reason, _services.CloseTimeoutMs, dropQueued: false);
        _discarding = true;
    }
}
