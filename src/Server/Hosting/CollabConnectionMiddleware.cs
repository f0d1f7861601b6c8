using System.Net;
using Collab.Server.Transport;
using Microsoft.AspNetCore.Connections;

namespace Collab.Server.Hosting;

/// <summary>
/// The seam between the two HTTP stacks on the one public port, a Kestrel connection middleware (after TLS):
/// <list type="number">
/// <item>Takes the connection's pending-handshake slot (server-wide and per client address), or refuses the connection
/// at once, before anything is parsed: both stacks' connections count, so one address holding idle connections cannot
/// take the capacity of the other clients whichever path it aims at.</item>
/// <item>Peeks at the request line (<c>TransportConnection.RunAsync</c>): a request for the WebSocket path is
/// served by the raw RFC 6455 transport; anything else is passed on, unconsumed, to ASP.NET Core's HTTP pipeline
/// (the API, the page, the probes), which keeps the connection and the slot until it closes.</item>
/// </list>
/// </summary>
internal sealed class CollabConnectionMiddleware
{
    private readonly ConnectionDelegate _next;
    private readonly TransportServices _services;

    public CollabConnectionMiddleware(ConnectionDelegate next, TransportServices services)
    {
        _next = next;
        _services = services;
    }

    /// <summary>
    /// Not an async method: the connection's one asynchronous frame is <c>TransportConnection.RunCoreAsync</c>, which
    /// also awaits the pipeline for a handed-off connection (an idle WebSocket's memory is counted per byte).
    /// </summary>
    public Task OnConnectedAsync(ConnectionContext connection)
    {
        var remote = connection.RemoteEndPoint as IPEndPoint;
        if (!_services.Registry.TryEnterHandshake(remote, out ConnectionRegistry.PendingSlot? slot, out ConnectionRejection rejection))
        {
            // Refused before reading anything: a flood of slow handshakes must not cost a request parse each.
            TransportMetrics.Rejected(rejection).Inc();
            return RefuseAsync(connection, rejection);
        }

        return new TransportConnection(_services, connection.Transport, remote, connection, slot, _next).RunAsync();
    }

    private static async Task RefuseAsync(ConnectionContext connection, ConnectionRejection rejection)
    {
        (int status, string message) = rejection == ConnectionRejection.PendingHandshakesPerAddress
            ? (429, "too many pending connections from this address")
            : (503, "too many pending handshakes");
        HttpResponseWriter.WriteError(connection.Transport.Output, status, message, "Retry-After: 1\r\n");
        try
        {
            await connection.Transport.Output.FlushAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or ConnectionAbortedException or ObjectDisposedException)
        {
            // The client is gone already.
        }

        await connection.Transport.Output.CompleteAsync().ConfigureAwait(false);
        await connection.Transport.Input.CompleteAsync().ConfigureAwait(false);
    }
}
