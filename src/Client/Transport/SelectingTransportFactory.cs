using System.Net;

namespace Collab.Client.Transport;

/// <summary>
/// The factory behind <see cref="CollabClientOptions.Transport"/>: picks the transport for each connection attempt, as a
/// redirect can send the client to an address the proxy settings treat differently.
/// </summary>
internal sealed class SelectingTransportFactory : IClientTransportFactory
{
    private static readonly SelectingTransportFactory s_automatic = new(TransportKind.Automatic);
    private static readonly SelectingTransportFactory s_pipelines = new(TransportKind.Pipelines);
    private static readonly SelectingTransportFactory s_clientWebSocket = new(TransportKind.ClientWebSocket);

    private SelectingTransportFactory(TransportKind kind) => Kind = kind;

    public TransportKind Kind { get; }

    public static SelectingTransportFactory For(TransportKind kind) => kind switch
    {
        TransportKind.Pipelines => s_pipelines,
        TransportKind.ClientWebSocket => s_clientWebSocket,
        _ => s_automatic,
    };

    public ValueTask<IClientTransport> ConnectAsync(TransportConnectRequest request, CancellationToken cancellationToken)
        => Select(Kind, request.Uri, System.Net.Http.HttpClient.DefaultProxy).ConnectAsync(request, cancellationToken);

    /// <summary>The transport for <paramref name="uri"/>: <see cref="TransportKind.Automatic"/> falls back to ClientWebSocket where a proxy applies.</summary>
    internal static IClientTransportFactory Select(TransportKind kind, Uri uri, IWebProxy? proxy) => kind switch
    {
        TransportKind.Pipelines => PipelinesTransportFactory.Instance,
        TransportKind.ClientWebSocket => WebSocketTransportFactory.Instance,
        _ => UsesProxy(uri, proxy) ? WebSocketTransportFactory.Instance : PipelinesTransportFactory.Instance,
    };

    /// <summary>
    /// Whether <paramref name="proxy"/> (the system one: HTTP_PROXY / HTTPS_PROXY / NO_PROXY on Linux and macOS, the
    /// registry on Windows) sends <paramref name="uri"/> through a proxy. ws:// is looked up as http://, wss:// as
    /// https://, as ClientWebSocket's own connection does.
    /// </summary>
    internal static bool UsesProxy(Uri uri, IWebProxy? proxy)
    {
        if (proxy is null)
        {
            return false;
        }

        var http = new UriBuilder(uri) { Scheme = uri.Scheme == "wss" ? Uri.UriSchemeHttps : Uri.UriSchemeHttp }.Uri;
        if (proxy.IsBypassed(http))
        {
            return false;
        }

        Uri? via = proxy.GetProxy(http);
        return via is not null && via != http;
    }
}
