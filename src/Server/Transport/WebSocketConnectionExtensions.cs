using Collab.Protocol.V1;

namespace Collab.Server.Transport;

/// <summary>One-off sends: frame a single reply in pooled memory and queue it (no allocation in steady state).</summary>
public static class WebSocketConnectionExtensions
{
    /// <summary>Starts the close handshake with one of the protocol's close codes (docs/PROTOCOL.md section 10).</summary>
    public static void Close(this IWebSocketConnection connection, CloseCode code, string reason) => connection.Close((ushort)code, reason);

    /// <summary>Copies <paramref name="payload"/> into a pooled binary frame and queues it; false when the connection refuses it.</summary>
    public static bool TrySendBinary(this IWebSocketConnection connection, ReadOnlySpan<byte> payload)
    {
        using OutboundMessage message = OutboundMessage.CreateBinary(payload);
        return connection.TrySend(message);
    }

    /// <summary>Encodes <paramref name="text"/> as UTF-8 into a pooled text frame and queues it.</summary>
    public static bool TrySendText(this IWebSocketConnection connection, ReadOnlySpan<char> text)
    {
        using OutboundMessage message = OutboundMessage.CreateText(text);
        return connection.TrySend(message);
    }

    /// <summary>Serializes straight into a pooled binary frame through <paramref name="write"/> (e.g. protobuf's WriteTo) and queues it.</summary>
    public static bool TrySendBinary<TState>(this IWebSocketConnection connection, int sizeHint, TState state, Action<TState, System.Buffers.IBufferWriter<byte>> write)
    {
        using OutboundMessage message = OutboundMessage.CreateBinary(sizeHint);
        write(state, message);
        message.Complete();
        return connection.TrySend(message);
    }
}
