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
/// <item>Peeks at the request line (TransportConnection.RunAsync): a request for the WebSocket path is
/// served by the raw RFC 6455 transport; anything else is passed on, unconsumed, to ASP.NET Core's HTTP pipeline
/// (the API, the page, the probes), which keeps the connection and the slot until it closes.</item>
/// </list>
/// </summary>
internal sealed class CollabConnectionMiddleware
{
    /// <summary>Where the pipeline finds the slot of its connection when a WebSocket upgrade arrives on it (keep-alive).</summary>
    internal static readonly object PendingSlotKey = new();

    private readonly ConnectionDelegate _next;
    private readonly TransportServices _services;

    public CollabConnectionMiddleware(ConnectionDelegate next, TransportServices services)
    {
        _next = next;
        _services = services;
    }

    public async Task OnConnectedAsync(ConnectionContext connection)
    {
        TransportMetrics metrics = _services.Metrics;
        metrics.TcpConnectionsOpen.Inc();
        try
        {
            var remote = connection.RemoteEndPoint as IPEndPoint;
            if (!_services.Registry.TryEnterHandshake(remote, out ConnectionRegistry.PendingSlot? slot, out ConnectionRejection rejection))
            {
                // Refused before reading anything: a flood of slow handshakes must not cost a request parse each.
                metrics.Rejected(rejection).Inc();
                await RefuseAsync(connection, rejection).ConfigureAwait(false);
                return;
            }

            try
            {
                var transport = new TransportConnection(_services, connection.Transport, remote, connection, slot);
                if (await transport.RunAsync().ConfigureAwait(false) == TransportOutcome.HandedOff)
                {
                    connection.Items[PendingSlotKey] = slot;
                    await _next(connection).ConfigureAwait(false);
                }
            }
            finally
            {
                slot!.Release();
            }
        }
        finally
        {
            metrics.TcpConnectionsOpen.Dec();
        }
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
