using System.IO.Pipelines;
using System.Net;
using Collab.Server.Transport;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;

namespace Collab.Server.Hosting;

/// <summary>
/// The WebSocket path on the HTTP pipeline. A new connection whose first request is for the WebSocket path never
/// reaches the pipeline (<see cref="CollabConnectionMiddleware"/> serves it on the raw transport); this endpoint serves
/// an upgrade that arrives on a keep-alive connection the pipeline already owns (a client that reuses a pooled
/// connection after an API call, as .NET's and Node's HTTP stacks may). Such a request gets exactly the raw path's
/// validation, authentication and answers (<see cref="TransportConnection"/>), the 101 goes out through Kestrel's
/// upgrade, and the frames run over the upgraded stream: slower than the raw path (one copy through a stream), which
/// only this rare case pays.
/// </summary>
internal static class PipelineWebSocketEndpoint
{
    public static void Map(IEndpointRouteBuilder endpoints, TransportOptions options) =>
        endpoints.Map(options.WebSocketPath, ServeAsync).ExcludeFromDescription();

    private static async Task ServeAsync(HttpContext context)
    {
        TransportServices services = context.RequestServices.GetRequiredService<TransportServices>();
        HttpRequest request = context.Request;
        var head = new HttpRequestHead
        {
            Method = request.Method,
            Path = request.Path.Value ?? "",
            Query = request.QueryString.Value ?? "",
            IsHttp11 = HttpProtocol.IsHttp11(request.Protocol),
            Host = Joined(request.Headers.Host),
            Upgrade = Joined(request.Headers.Upgrade),
            Connection = Joined(request.Headers.Connection),
            SecWebSocketKey = request.Headers.SecWebSocketKey.Count == 1 ? request.Headers.SecWebSocketKey[0] : null,
            SecWebSocketKeyCount = request.Headers.SecWebSocketKey.Count,
            SecWebSocketVersion = Joined(request.Headers.SecWebSocketVersion),
            SecWebSocketProtocol = Joined(request.Headers.SecWebSocketProtocol),
            Origin = Joined(request.Headers.Origin),
            Authorization = Joined(request.Headers.Authorization),
            HasBody = request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0,
        };

        object? slot = null;
        context.Features.Get<IConnectionItemsFeature>()?.Items.TryGetValue(ConnectionRegistry.PendingSlot.ItemsKey, out slot);
        IPEndPoint? remote = context.Connection.RemoteIpAddress is { } address ? new IPEndPoint(address, context.Connection.RemotePort) : null;
        var connection = new TransportConnection(services, new UpgradeResponse(context), remote, slot as ConnectionRegistry.PendingSlot);
        await connection.RunUpgradeAsync(head).ConfigureAwait(false);
    }

    private static string? Joined(StringValues values) => values.Count == 0 ? null : values.ToString();

    private sealed class UpgradeResponse(HttpContext context) : IUpgradeResponse
    {
        public async ValueTask RejectAsync(int statusCode, string message, string? extraHeaders)
        {
            HttpResponse response = context.Response;
            response.StatusCode = statusCode;
            response.ContentType = "text/plain; charset=utf-8";
            response.Headers.CacheControl = "no-store";
            foreach (string line in (extraHeaders ?? "").Split("\r\n", StringSplitOptions.RemoveEmptyEntries))
            {
                int colon = line.IndexOf(':', StringComparison.Ordinal);
                response.Headers.Append(line[..colon], line[(colon + 1)..].Trim());
            }

            await response.WriteAsync(message + "\n").ConfigureAwait(false);
        }

        public async ValueTask<IDuplexPipe?> AcceptAsync(string secWebSocketKey, string? subProtocol)
        {
            IHttpUpgradeFeature? upgrade = context.Features.Get<IHttpUpgradeFeature>();
            if (upgrade is not { IsUpgradableRequest: true })
            {
                return null;
            }

            HttpResponse response = context.Response;
            response.Headers.Upgrade = "websocket";
            response.Headers.Connection = "Upgrade";
            response.Headers.SecWebSocketAccept = HttpResponseWriter.ComputeAcceptKey(secWebSocketKey);
            if (subProtocol is not null)
            {
                response.Headers.SecWebSocketProtocol = subProtocol;
            }

            Stream stream = await upgrade.UpgradeAsync().ConfigureAwait(false);
            return new StreamPipes(PipeReader.Create(stream), PipeWriter.Create(stream));
        }

        public void Abort() => context.Abort();
    }
}
