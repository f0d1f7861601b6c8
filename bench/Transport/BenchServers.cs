using System.Buffers;
using System.Net;
using System.Net.WebSockets;
using Collab.Server.Hosting;
using Collab.Server.Transport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Collab.Bench.Transport;

/// <summary>The two echo servers compared: our transport, and ASP.NET Core's WebSocket middleware on Kestrel.</summary>
public sealed class BenchServer : IAsyncDisposable
{
    public const string Collab = "Collab";
    public const string AspNetCore = "AspNetCore";

    private readonly WebApplication _app;

    private BenchServer(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }

    public Uri WebSocketUri => new($"ws://127.0.0.1:{Port}/ws");

    public static Task<BenchServer> StartAsync(string kind) => kind switch
    {
        Collab => StartCollabAsync(),
        AspNetCore => StartAspNetCoreAsync(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown server"),
    };

    public static async Task<BenchServer> StartCollabAsync()
    {
        var options = new TransportOptions { Port = 0, ListenAddress = "127.0.0.1", MaxConnections = 19_000, MaxOutboundBytesPerConnection = 64 * 1024 * 1024 };
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IWebSocketApplication, EchoApplication>();
        builder.Services.AddCollabTransport(options);
        builder.WebHost.ConfigureCollabKestrel(options);
        WebApplication app = builder.Build();
        app.UseCollabTransport(); // as the server does: the HTTP pipeline behind the connection middleware
        return await StartAsync(app);
    }

    public static async Task<BenchServer> StartAspNetCoreAsync()
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        WebApplication app = builder.Build();
        app.UseWebSockets();
        app.Map("/ws", async (HttpContext context) =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = 400;
                return;
            }

            using WebSocket socket = await context.WebSockets.AcceptWebSocketAsync();
            await EchoLoopAsync(socket);
        });
        return await StartAsync(app);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static async Task<BenchServer> StartAsync(WebApplication app)
    {
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new BenchServer(app, new Uri(address).Port);
    }

    /// <summary>The idiomatic efficient middleware echo: one pooled 4 KiB buffer, ValueTask APIs, streamed fragments.</summary>
    private static async Task EchoLoopAsync(WebSocket socket)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            while (true)
            {
                ValueWebSocketReceiveResult result = await socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                    return;
                }

                await socket.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, CancellationToken.None);
            }
        }
        catch (WebSocketException)
        {
            // client vanished
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private sealed class EchoApplication : IWebSocketApplication
    {
        public ValueTask<HandshakeDecision> OnHandshakeAsync(HandshakeRequest request, CancellationToken cancellationToken) =>
            ValueTask.FromResult(HandshakeDecision.Accept());

        public IWebSocketSession OnOpen(IWebSocketConnection connection, object? handshakeState) => new Session(connection);

        private sealed class Session(IWebSocketConnection connection) : IWebSocketSession
        {
            public ValueTask OnMessageAsync(ReadOnlySequence<byte> payload, bool isText)
            {
                using OutboundMessage reply = isText ? OutboundMessage.CreateText((int)payload.Length) : OutboundMessage.CreateBinary((int)payload.Length);
                foreach (ReadOnlyMemory<byte> segment in payload)
                {
                    segment.Span.CopyTo(reply.GetSpan(segment.Length));
                    reply.Advance(segment.Length);
                }

                reply.Complete();
                connection.TrySend(reply);
                return ValueTask.CompletedTask;
            }

            public void OnClosed(ConnectionEndReason reason)
            {
            }
        }
    }
}
