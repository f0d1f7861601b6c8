using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Threading.Channels;
using Collab.Client.Transport;

namespace Collab.Client.Tests;

/// <summary>How a <see cref="FakeServer"/> reaches its client.</summary>
public enum FakeWire
{
    /// <summary>In memory: the SDK's state machines alone.</summary>
    InMemory,

    /// <summary>Over a loopback socket through the SDK's Pipelines transport.</summary>
    Pipelines,

    /// <summary>Over a loopback socket through the SDK's ClientWebSocket transport.</summary>
    ClientWebSocket,
}

/// <summary>
/// The socket side of <see cref="FakeServer"/>: one loopback listener for the whole test run. A connect registers its
/// <see cref="FakeConnection"/> under a fresh path; the server end of the WebSocket is .NET's own implementation
/// (<see cref="WebSocket.CreateFromStream(Stream, WebSocketCreationOptions)"/>), so the client transports are checked
/// against framing they share no code with. A scripted connect failure becomes a real HTTP error status or a real
/// refused connection.
/// </summary>
internal static class FakeSocketHost
{
    private static readonly ConcurrentDictionary<string, (FakeConnection Connection, Exception? Failure)> s_pending = new();
    private static readonly Lazy<TcpListener> s_listener = new(Start);
    private static long s_nextId;

    public static IClientTransportFactory Factory(FakeWire wire) => wire switch
    {
        FakeWire.Pipelines => PipelinesTransportFactory.Instance,
        FakeWire.ClientWebSocket => WebSocketTransportFactory.Instance,
        _ => throw new ArgumentOutOfRangeException(nameof(wire)),
    };

    /// <summary>
    /// Connects <paramref name="connection"/>'s client end through the real transport of <paramref name="wire"/>. A
    /// <paramref name="failure"/> is acted out: <see cref="TransportConnectException"/> as its HTTP status, anything else
    /// as a connection the server drops before answering.
    /// </summary>
    public static async ValueTask<IClientTransport> ConnectAsync(FakeWire wire, FakeConnection connection, Exception? failure, CancellationToken cancellationToken)
    {
        int port = ((IPEndPoint)s_listener.Value.LocalEndpoint).Port;
        string id = Interlocked.Increment(ref s_nextId).ToString(System.Globalization.CultureInfo.InvariantCulture);
        s_pending[id] = (connection, failure);
        var uri = new UriBuilder(connection.Request.Uri) { Scheme = "ws", Host = "127.0.0.1", Port = port, Path = "/fake/" + id }.Uri;
        try
        {
            return await Factory(wire).ConnectAsync(connection.Request with { Uri = uri }, cancellationToken);
        }
        finally
        {
            s_pending.TryRemove(id, out _);
        }
    }

    private static TcpListener Start()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        _ = Task.Run(async () =>
        {
            while (true)
            {
                Socket socket = await listener.AcceptSocketAsync();
                _ = Task.Run(() => ServeAsync(socket));
            }
        });
        return listener;
    }

    private static async Task ServeAsync(Socket socket)
    {
        var stream = new NetworkStream(socket, ownsSocket: true);
        try
        {
            (string requestLine, Dictionary<string, string> headers) = await RawWebSocketServer.ReadRequestHeadAsync(stream);
            string path = requestLine.Split(' ')[1];
            string id = path[(path.LastIndexOf('/') + 1)..].Split('?')[0];
            if (!s_pending.TryGetValue(id, out var pending))
            {
                throw new InvalidOperationException($"No fake connection is waiting for {requestLine}.");
            }

            switch (pending.Failure)
            {
                case TransportConnectException rejected:
                    await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {rejected.HttpStatusCode} Rejected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
                    await stream.FlushAsync();
                    socket.Shutdown(SocketShutdown.Both);
                    await stream.DisposeAsync();
                    return;
                case not null:
                    Reset(socket);
                    return;
            }

            // Select collab.v1 as the real server does; never a bearer.<token> offer.
            string? subProtocol = headers.TryGetValue("Sec-WebSocket-Protocol", out string? offered)
                ? offered.Split(',').Select(p => p.Trim()).FirstOrDefault(p => !p.StartsWith(WebSocketTransportFactory.BearerSubProtocolPrefix, StringComparison.Ordinal))
                : null;
            WebSocket webSocket = WebSocket.CreateFromStream(stream, new WebSocketCreationOptions { IsServer = true, SubProtocol = subProtocol, KeepAliveInterval = TimeSpan.Zero });
            pending.Connection.Attach(socket, webSocket, requestLine, headers);
            await stream.WriteAsync(Encoding.ASCII.GetBytes(RawWebSocketServer.SwitchingProtocols(headers, subProtocol)));
            await stream.FlushAsync();
        }
        catch (Exception ex) when (ex is IOException or SocketException or InvalidOperationException)
        {
            Reset(socket);
        }
    }

    /// <summary>Breaks a connection as a network failure does: RST, no close handshake.</summary>
    public static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        socket.Dispose();
    }
}

/// <summary>The server end of one socket <see cref="FakeConnection"/>: pumps its channels to and from the WebSocket.</summary>
internal sealed class FakeSocketEnd
{
    private readonly Socket _socket;
    private readonly WebSocket _webSocket;
    private readonly TaskCompletionSource _inboundDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _serverClosed;

    public FakeSocketEnd(Socket socket, WebSocket webSocket, string requestLine, Dictionary<string, string> headers)
    {
        _socket = socket;
        _webSocket = webSocket;
        RequestLine = requestLine;
        Headers = headers;
    }

    public string RequestLine { get; }

    public Dictionary<string, string> Headers { get; }

    /// <summary>Completes when the server end read everything the client will send (its close, or the end of the connection).</summary>
    public Task InboundDone => _inboundDone.Task;

    public void Start(ChannelReader<FakeConnection.Frame> toClient, ChannelWriter<FakeConnection.Frame> toServer, Action<WebSocketCloseStatus?> clientClosed)
    {
        _ = Task.Run(() => OutboundAsync(toClient));
        _ = Task.Run(() => InboundAsync(toServer, clientClosed));
    }

    private async Task OutboundAsync(ChannelReader<FakeConnection.Frame> toClient)
    {
        try
        {
            await foreach (FakeConnection.Frame frame in toClient.ReadAllAsync())
            {
                if (frame.Fault)
                {
                    FakeSocketHost.Reset(_socket);
                    return;
                }

                if (frame.Payload is null)
                {
                    _serverClosed = true;
                    await _webSocket.CloseOutputAsync(frame.Close ?? WebSocketCloseStatus.NormalClosure, frame.Description, CancellationToken.None);
                    continue;
                }

                await _webSocket.SendAsync(frame.Payload, WebSocketMessageType.Binary, endOfMessage: true, CancellationToken.None);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            // The connection is gone: what the test still sends is lost, as on a real network.
        }
    }

    private async Task InboundAsync(ChannelWriter<FakeConnection.Frame> toServer, Action<WebSocketCloseStatus?> clientClosed)
    {
        var message = new MemoryStream();
        byte[] buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                WebSocketReceiveResult result = await _webSocket.ReceiveAsync(buffer, CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    if (!_serverClosed)
                    {
                        // The client started the close: record it and answer, as a conforming server does.
                        clientClosed(result.CloseStatus);
                        await _webSocket.CloseOutputAsync(result.CloseStatus ?? WebSocketCloseStatus.Empty, null, CancellationToken.None);
                    }

                    toServer.TryWrite(new FakeConnection.Frame(null, result.CloseStatus, result.CloseStatusDescription, false));
                    _socket.Shutdown(SocketShutdown.Both);
                    return;
                }

                message.Write(buffer, 0, result.Count);
                if (result.EndOfMessage)
                {
                    toServer.TryWrite(new FakeConnection.Frame(message.ToArray(), null, null, false));
                    message.SetLength(0);
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException or SocketException)
        {
            toServer.TryWrite(new FakeConnection.Frame(null, null, null, true));
        }
        finally
        {
            _inboundDone.TrySetResult();
        }
    }
}
