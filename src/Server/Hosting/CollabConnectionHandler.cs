using System.Net;
using Collab.Server.Transport;
using Microsoft.AspNetCore.Connections;

namespace Collab.Server.Hosting;

/// <summary>
/// Kestrel hands every accepted TCP (or TLS-terminated) connection here; from then on the transport
/// reads and writes the connection's pipes itself. No ASP.NET Core HTTP pipeline is involved.
/// </summary>
internal sealed class CollabConnectionHandler : ConnectionHandler
{
    private readonly TransportServices _services;

    public CollabConnectionHandler(TransportServices services)
    {
        _services = services;
    }

    public override Task OnConnectedAsync(ConnectionContext connection)
    {
        var transportConnection = new TransportConnection(_services, connection.Transport, connection.RemoteEndPoint as IPEndPoint, connection);
        return transportConnection.RunAsync();
    }
}
