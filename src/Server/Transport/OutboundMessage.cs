namespace Collab.Server.Transport;

/// <summary>
/// A complete server-to-client frame in pooled memory, reference-counted so that one broadcast is
/// encoded and framed once and the same bytes are written to every recipient.
/// (Contract placeholder: the transport layer owns the implementation.)
/// </summary>
public sealed partial class OutboundMessage
{
}
