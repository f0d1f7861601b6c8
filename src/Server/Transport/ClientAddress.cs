using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Collab.Server.Transport;

/// <summary>
/// What counts as one client for per-address limits (the pending-handshake gate here, the connection-attempt and API
/// rate limits in Security): an IPv4 address alone (IPv4-mapped IPv6 too), an IPv6 address by its /64 prefix, the
/// smallest block a single subscriber is normally assigned, so rotating through one's own /64 gains nothing.
/// </summary>
internal static class ClientAddress
{
    /// <summary>
    /// Any loopback address, also as IPv4-mapped IPv6, which is how a dual-stack listener sees IPv4 clients:
    /// <see cref="IPAddress.IsLoopback"/> alone only knows ::ffff:127.0.0.1 of the mapped 127.0.0.0/8, so clients on
    /// 127.0.0.2 and up (a load generator spreading its source ports over several addresses) were counted.
    /// </summary>
    public static bool IsLoopback(IPAddress address) =>
        IPAddress.IsLoopback(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);

    /// <summary>IPv4 (and IPv4-mapped) addresses as themselves, IPv6 as their /64 prefix.</summary>
    public static UInt128 KeyOf(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        Span<byte> bytes = stackalloc byte[16];
        bytes.Clear();
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            address.TryWriteBytes(bytes[12..], out _);
            return new UInt128(BinaryPrimitives.ReadUInt64BigEndian(bytes), BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]));
        }

        // The low half of an IPv4 key never exceeds 32 bits, so all ones keeps IPv6 keys apart from it.
        address.TryWriteBytes(bytes, out _);
        return new UInt128(BinaryPrimitives.ReadUInt64BigEndian(bytes), ulong.MaxValue);
    }
}
