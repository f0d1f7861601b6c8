using System.Net;
using System.Security.Cryptography.X509Certificates;
using Collab.Server.Transport;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Collab.Server.Hosting;

/// <summary>
/// Wiring for the composition root:
/// <code>
/// var options = TransportOptions.FromConfiguration(builder.Configuration);
/// builder.Services.AddSingleton&lt;IWebSocketApplication, MyApplication&gt;();
/// builder.Services.AddCollabTransport(options);
/// builder.WebHost.ConfigureCollabKestrel(options);
/// var app = builder.Build();
/// app.UseCollabTransport();   // probes and the pipeline's side of the WebSocket path
/// </code>
/// </summary>
public static class CollabTransportHostingExtensions
{
    private const long InputBufferBytes = 4 * TransportConnection.InlineFrameLimit;
    private const long OutputBufferBytes = 64 * 1024;

    /// <summary>
    /// Registers the transport: options, connection registry and heartbeat, metrics, readiness
    /// (<see cref="IReadinessCheck"/> registry with the transport's own check), probes, the management port and the
    /// graceful drain. The application must be registered separately as <see cref="IWebSocketApplication"/>.
    /// </summary>
    public static IServiceCollection AddCollabTransport(this IServiceCollection services, TransportOptions options)
    {
        options.Validate();
        services.AddSingleton(options);
        services.AddSingleton(sp => new ConnectionRegistry(options));
        services.AddSingleton(sp => new TransportReadinessCheck(sp.GetRequiredService<ConnectionRegistry>(), options));
        services.AddSingleton<IReadinessCheck>(sp => sp.GetRequiredService<TransportReadinessCheck>());
        services.AddSingleton(sp => new ReadinessRegistry(sp.GetServices<IReadinessCheck>()));
        services.AddSingleton(sp => new ProbeEndpoints(sp.GetRequiredService<ReadinessRegistry>()));
        services.AddSingleton(sp => new TransportServices(
            options,
            sp.GetRequiredService<IWebSocketApplication>(),
            sp.GetRequiredService<ConnectionRegistry>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Collab.Server.Transport")));
        services.AddHostedService<TransportLifetimeService>();
        services.AddSingleton<ManagementListener>();
        services.AddHostedService(sp => sp.GetRequiredService<ManagementListener>());

        // The host must not cut the drain short: give it the transport's deadline plus a margin.
        services.Configure<HostOptions>(host =>
        {
            TimeSpan needed = options.ShutdownTimeout + TimeSpan.FromSeconds(5);
            if (host.ShutdownTimeout < needed)
            {
                host.ShutdownTimeout = needed;
            }
        });
        return services;
    }

    /// <summary>
    /// The transport's part of the HTTP pipeline: counts requests (<c>collab_http_requests_total</c>), asks clients to
    /// close their keep-alive connections once the drain has begun, and maps /healthz, /readyz and /metrics (see
    /// <see cref="TransportOptions.ManagementEndpointsPrivate"/>) and the WebSocket path for upgrades that arrive on a
    /// keep-alive connection the pipeline already owns (<see cref="PipelineWebSocketEndpoint"/>).
    /// </summary>
    public static WebApplication UseCollabTransport(this WebApplication app)
    {
        TransportOptions options = app.Services.GetRequiredService<TransportOptions>();
        ConnectionRegistry registry = app.Services.GetRequiredService<ConnectionRegistry>();
        app.Use(async (context, next) =>
        {
            if (registry.IsShuttingDown)
            {
                // Draining: this response is the connection's last, so it does not outlive the shutdown.
                context.Response.Headers.Connection = "close";
            }

            await next(context).ConfigureAwait(false);
            string endpoint = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText?.TrimStart('/') is { Length: > 0 } pattern
                ? pattern
                : context.Response.StatusCode == StatusCodes.Status404NotFound ? "not_found" : "other";
            TransportMetrics.CountHttpRequest(endpoint);
        });
        ProbeEndpoints.Map(app, options);
        PipelineWebSocketEndpoint.Map(app, options);
        return app;
    }

    /// <summary>
    /// Makes Kestrel listen on <see cref="TransportOptions.Port"/> (behind TLS when a certificate is configured) with
    /// <see cref="CollabConnectionMiddleware"/> in front of the HTTP pipeline: a connection whose first request is for
    /// the WebSocket path is served by the raw transport, every other one by ASP.NET Core. HTTP/1.1 only: the raw path
    /// speaks HTTP/1.1 itself, and ALPN must not offer h2 to browsers (a WebSocket over HTTP/2 would bypass it).
    /// </summary>
    public static IWebHostBuilder ConfigureCollabKestrel(this IWebHostBuilder builder, TransportOptions options)
    {
        options.Validate();
        X509Certificate2? certificate = options.UseTls ? LoadCertificate(options) : null;

        // Backpressure thresholds of each connection's pipes. Input: a socket read pauses once this much is
        // buffered unread; it must hold one whole inline frame (TransportConnection.InlineFrameLimit) with
        // room to spare, and bounds what a flooding client can make the server buffer. Output: FlushAsync
        // waits above this much unsent, which stops the drain and lets the outbound queue bound apply.
        // Zero-byte reads (the default) keep idle connections free of any receive buffer.
        builder.UseSockets(sockets =>
        {
            sockets.MaxReadBufferSize = InputBufferBytes;
            sockets.MaxWriteBufferSize = OutputBufferBytes;
            sockets.WaitForDataBeforeAllocatingBuffer = true;
        });
        return builder.UseKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;

            // The same thresholds for the TLS layer's own pipes.
            kestrel.Limits.MaxRequestBufferSize = InputBufferBytes;
            kestrel.Limits.MaxResponseBufferSize = OutputBufferBytes;

            // The HTTP pipeline's connections hold pending-handshake slots too: the same deadlines as the raw path (a
            // request head within HandshakeTimeout, an idle keep-alive connection closed after it) and the same bound
            // on the request head.
            kestrel.Limits.RequestHeadersTimeout = options.HandshakeTimeout;
            kestrel.Limits.KeepAliveTimeout = options.HandshakeTimeout;
            kestrel.Limits.MaxRequestHeadersTotalSize = options.MaxRequestHeaderBytes;
            if (string.IsNullOrEmpty(options.ListenAddress))
            {
                kestrel.ListenAnyIP(options.Port, Configure);
            }
            else
            {
                kestrel.Listen(IPAddress.Parse(options.ListenAddress), options.Port, Configure);
            }
        });

        void Configure(ListenOptions listen)
        {
            listen.Protocols = HttpProtocols.Http1;
            if (certificate is not null)
            {
                listen.UseHttps(https =>
                {
                    https.ServerCertificate = certificate;
                    https.HandshakeTimeout = options.HandshakeTimeout;
                });
            }

            IServiceProvider services = listen.ApplicationServices;
            listen.Use(next =>
            {
                var middleware = new CollabConnectionMiddleware(next, services.GetRequiredService<TransportServices>());
                return middleware.OnConnectedAsync;
            });
        }
    }

    /// <summary>Loads a PFX/PKCS#12 file, or a PEM certificate with its PEM key.</summary>
    public static X509Certificate2 LoadCertificate(TransportOptions options)
    {
        string path = options.CertificatePath ?? throw new InvalidOperationException("No certificate configured.");
        try
        {
            if (!string.IsNullOrEmpty(options.CertificateKeyPath))
            {
                return string.IsNullOrEmpty(options.CertificatePassword)
                    ? X509Certificate2.CreateFromPemFile(path, options.CertificateKeyPath)
                    : X509Certificate2.CreateFromEncryptedPemFile(path, options.CertificatePassword, options.CertificateKeyPath);
            }

            return X509CertificateLoader.LoadPkcs12FromFile(path, options.CertificatePassword);
        }
        catch (System.Security.Cryptography.CryptographicException ex)
        {
            throw SettingErrors.ForSetting(TransportOptions.Section, typeof(TransportOptions), nameof(TransportOptions.CertificatePath), $"cannot load '{path}' (PFX, or PEM with CertificateKeyPath; right CertificatePassword?): {ex.Message}");
        }
    }
}
