using System.Net.Sockets;
using Collab.Protocol.V1;
using Google.Protobuf;

namespace Collab.LoadTest.Client;

/// <summary>Sending: client framing into one reused scratch buffer, non-blocking writes, and an outbox flushed asynchronously when the socket buffer is full.</summary>
internal sealed partial class LightClient
{
    private void SendControlMessageLocked(ClientMessage message)
    {
        int length = message.CalculateSize();
        EnsureScratch(length);
        message.WriteTo(_scratch.AsSpan(HeaderGap, length));
        SendPreparedLocked(WsOpcode.Binary, length);
    }

    private void SendFrameLocked(WsOpcode opcode, ReadOnlySpan<byte> payload)
    {
        EnsureScratch(payload.Length);
        payload.CopyTo(_scratch.AsSpan(HeaderGap));
        SendPreparedLocked(opcode, payload.Length);
    }

    /// <summary>Frames and sends the payload already written at <see cref="HeaderGap"/> in the scratch buffer.</summary>
    private void SendPreparedLocked(WsOpcode opcode, int payloadLength)
    {
        uint maskKey = (uint)NextRandom();
        int headerLength = WebSocketFraming.ClientHeaderLength(payloadLength);
        int start = HeaderGap - headerLength;
        WebSocketFraming.WriteClientHeader(_scratch.AsSpan(start), opcode, payloadLength, maskKey);
        WebSocketFraming.Mask(_scratch.AsSpan(HeaderGap, payloadLength), maskKey);
        WriteLocked(_scratch.AsSpan(start, headerLength + payloadLength));
    }

    private void WriteLocked(ReadOnlySpan<byte> frame)
    {
        Socket? socket = _socket;
        if (socket is null)
        {
            return; // Disconnected: pending ops are resent after the reconnect.
        }

        if (!_flushing)
        {
            while (!frame.IsEmpty)
            {
                int sent;
                SocketError error;
                try
                {
                    sent = socket.Send(frame, SocketFlags.None, out error);
                }
                catch (ObjectDisposedException)
                {
                    return; // Dropped under us (storm): the receive loop reconnects and pending ops are resent.
                }

                if (error == SocketError.Success)
                {
                    frame = frame[sent..];
                    continue;
                }

                if (error != SocketError.WouldBlock)
                {
                    return; // The receive loop sees the broken connection and reconnects.
                }

                break;
            }

            if (frame.IsEmpty)
            {
                return;
            }

            _flushing = true;
            AppendOutbox(frame);
            _ = FlushAsync(socket, _generation);
            return;
        }

        AppendOutbox(frame);
    }

    private void AppendOutbox(ReadOnlySpan<byte> frame)
    {
        _outbox ??= new byte[Math.Max(4096, frame.Length)];
        if (_outboxLength + frame.Length > _outbox.Length)
        {
            Array.Resize(ref _outbox, Math.Max(_outboxLength + frame.Length, _outbox.Length * 2));
        }

        frame.CopyTo(_outbox.AsSpan(_outboxLength));
        _outboxLength += frame.Length;
    }

    private async Task FlushAsync(Socket socket, int generation)
    {
        byte[]? spare = null;
        try
        {
            while (true)
            {
                byte[] chunk;
                int length;
                lock (_gate)
                {
                    if (generation != _generation || _outboxLength == 0 || _outbox is null)
                    {
                        _flushing = false;
                        _outboxLength = 0;
                        return;
                    }

                    chunk = _outbox;
                    length = _outboxLength;
                    _outbox = spare;
                    _outboxLength = 0;
                }

                await socket.SendAsync(chunk.AsMemory(0, length), SocketFlags.None).ConfigureAwait(false);
                spare = chunk;
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            lock (_gate)
            {
                _flushing = false;
                _outboxLength = 0;
            }
        }
    }

    private void EnsureScratch(int payloadLength)
    {
        if (_scratch.Length < HeaderGap + payloadLength)
        {
            _scratch = new byte[HeaderGap + payloadLength];
        }
    }

    private ulong NextRandom()
    {
        // xorshift64*: fast, per client, seeded from the run's seed. Positions and mask keys need no crypto strength.
        ulong x = _rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        _rng = x;
        return x * 0x2545F4914F6CDD1DUL;
    }

    private double NextDouble()
    {
        lock (_gate)
        {
            return (NextRandom() >> 11) * (1.0 / (1UL << 53));
        }
    }
}
