using System.Buffers;
using Google.Protobuf;
using NATS.Client.Core;

namespace Collab.Server.Cluster;

/// <summary>
/// Protobuf payloads on NATS: serialized straight into the connection's write buffer and parsed straight from the
/// received sequence, with no intermediate byte[].
/// </summary>
internal sealed class ProtobufNatsSerializer<T> : INatsSerializer<T>
    where T : class, IMessage<T>, new()
{
    private static readonly MessageParser<T> s_parser = new(() => new T());

    public static ProtobufNatsSerializer<T> Instance { get; } = new();

    public void Serialize(IBufferWriter<byte> bufferWriter, T value) => value.WriteTo(bufferWriter);

    /// <summary>An empty payload is no message (a "no responders" status reply carries none).</summary>
    public T? Deserialize(in ReadOnlySequence<byte> buffer) => buffer.IsEmpty ? null : s_parser.ParseFrom(buffer);

    public INatsSerializer<T> CombineWith(INatsSerializer<T> next) => throw new NotSupportedException("The protobuf serializer is used on its own.");
}
