using System.Net.Sockets;
using System.Text;
using Collab.LoadTest.Metrics;
using Google.Protobuf;

namespace Collab.LoadTest.Client;

/// <summary>The receive loop: reads the socket, parses RFC 6455 frames (fragments, control frames) and hands each message on.</summary>
internal sealed partial class LightClient
{
    private async Task ReceiveLoopAsync(Socket socket, int generation, byte[] buffer, int filled)
    {
        Exception? failure = null;
        try
        {
            long now = Clock.Now;
            while (true)
            {
                int required = ProcessFrames(buffer, ref filled, generation, now, out bool closed);
                if (closed)
                {
                    break;
                }

                if (required > buffer.Length)
                {
                    byte[] larger = new byte[Math.Max(required, buffer.Length * 2)];
                    buffer.AsSpan(0, filled).CopyTo(larger);
                    buffer = larger;
                }

                int read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                now = Clock.Now;
                filled += read;
                Interlocked.Add(ref _ctx.Counters.BytesReceived, read);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or WebSocketProtocolException or WireFormatException or InvalidProtocolBufferException or System.Text.Json.JsonException)
        {
            failure = ex;
        }
        catch (Exception ex)
        {
            // A bug in the generator: the loop is fire-and-forget, so record it loudly rather than lose the client silently.
            _ctx.Errors.Add("generator-bug", ex.ToString());
            failure = ex;
        }

        OnConnectionLost(socket, generation, failure);
    }

    /// <summary>Handles every complete frame in the buffer and compacts it; returns the size a partial frame needs.</summary>
    private int ProcessFrames(byte[] buffer, ref int filled, int generation, long now, out bool closed)
    {
        closed = false;
        int offset = 0;
        int required = 0;
        while (WebSocketFraming.TryReadServerHeader(buffer.AsSpan(offset, filled - offset), out ServerFrameHeader header))
        {
            if (filled - offset < header.FrameLength)
            {
                required = header.FrameLength;
                break;
            }

            ReadOnlySpan<byte> payload = buffer.AsSpan(offset + header.HeaderLength, header.PayloadLength);
            offset += header.FrameLength;
            switch (header.Opcode)
            {
                case WsOpcode.Binary or WsOpcode.Text when header.Opcode != MessageOpcode:
                    // Collab speaks binary protobuf, ShareDB JSON text: the other kind means the wrong server.
                    throw new WebSocketProtocolException($"the server sent a {header.Opcode.ToString().ToLowerInvariant()} message");
                case WsOpcode.Binary or WsOpcode.Text when header.Fin && _fragmentLength == 0:
                    HandleMessage(payload, generation, now);
                    break;
                case WsOpcode.Binary or WsOpcode.Text or WsOpcode.Continuation:
                    if (!AppendFragment(header.Opcode, payload, header.Fin, generation, now))
                    {
                        throw new WebSocketProtocolException("continuation frame without a message to continue");
                    }

                    break;
                case WsOpcode.Ping:
                    lock (_gate)
                    {
                        if (generation == _generation)
                        {
                            SendFrameLocked(WsOpcode.Pong, payload);
                        }
                    }

                    break;
                case WsOpcode.Close:
                    bool serverInitiated;
                    lock (_gate)
                    {
                        // Our own Close() moved the generation on: this is the server's answer to it, not news.
                        serverInitiated = generation == _generation;
                        if (serverInitiated)
                        {
                            SendFrameLocked(WsOpcode.Close, payload.Length >= 2 ? payload[..2] : []);
                        }
                    }

                    closed = true;
                    if (serverInitiated)
                    {
                        _ctx.Errors.Add("server-close", payload.Length >= 2 ? $"close {(payload[0] << 8) | payload[1]} {Encoding.UTF8.GetString(payload[2..])}" : "close");
                    }

                    return 0;
                default:
                    break; // Pong: nothing to do.
            }
        }

        if (offset > 0)
        {
            buffer.AsSpan(offset, filled - offset).CopyTo(buffer);
            filled -= offset;
        }

        return required;
    }

    private bool AppendFragment(WsOpcode opcode, ReadOnlySpan<byte> payload, bool fin, int generation, long now)
    {
        if (opcode == WsOpcode.Continuation && _fragmentLength == 0 && _fragments is null)
        {
            return false;
        }

        _fragments ??= new byte[Math.Max(4096, payload.Length)];
        if (_fragmentLength + payload.Length > _fragments.Length)
        {
            Array.Resize(ref _fragments, Math.Max(_fragmentLength + payload.Length, _fragments.Length * 2));
        }

        payload.CopyTo(_fragments.AsSpan(_fragmentLength));
        _fragmentLength += payload.Length;
        if (fin)
        {
            int length = _fragmentLength;
            _fragmentLength = 0;
            HandleMessage(_fragments.AsSpan(0, length), generation, now);
            _fragments = null;
        }

        return true;
    }
}
