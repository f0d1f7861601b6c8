using System.Net;
using System.Security.Cryptography.X509Certificates;
using Collab.Server.Transport;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Collab.Server.Hosting;

/// <summary>
/// Wiring for Program.cs:
/// <code>
/// var options = TransportOptions.FromConfiguration(builder.Configuration);
/// builder.Services.AddSingleton&lt;IWebSocketApplication, MyApplication&gt;();
/// builder.Services.AddCollabTransport(options);
/// builder.WebHost.ConfigureCollabKestrel(options);
/// </code>
/// </summary>
public static class CollabTransportHostingExtensions
{
    private const long InputBufferBytes = 4 * TransportConnection.InlineFrameLimit;
    private const long OutputBufferBytes = 64 * 1024;

    /// <summary>
    /// Registers the transport: options, connection registry and heartbeat, metrics, readiness
    /// (<see cref="IReadinessCheck"/> registry with the transport's own check), probes and the graceful
    /// drain. The application must be registered separately as <see cref="IWebSocketApplication"/>.
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
        services.AddSingleton<IPlainHttpRoutes>(sp => sp.GetRequiredService<ProbeEndpoints>());
        services.AddSingleton(sp => new TransportServices(
            options,
            sp.GetRequiredService<IWebSocketApplication>(),
            sp.GetRequiredService<ConnectionRegistry>(),
            MergeRoutes(sp.GetServices<IPlainHttpRoutes>(), options),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Collab.Server.Transport")));
        services.AddSingleton<CollabConnectionHandler>();
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

    /// <summary>Every registered route source in one table; a path served twice (or the WebSocket path) is a start-up error.</summary>
    private static Dictionary<string, PlainHttpRoute> MergeRoutes(IEnumerable<IPlainHttpRoutes> sources, TransportOptions options)
    {
        var routes = new Dictionary<string, PlainHttpRoute>(StringComparer.Ordinal);
        foreach (IPlainHttpRoutes source in sources)
        {
            foreach ((string path, PlainHttpRoute route) in source.Routes)
            {
                if (string.Equals(path, options.WebSocketPath, StringComparison.Ordinal))
                {
                    throw SettingErrors.Single(TransportOptions.SectionName, typeof(TransportOptions), nameof(TransportOptions.WebSocketPath), $"'{path}' is also an HTTP endpoint of the server.");
                }

                if (!routes.TryAdd(path, route))
                {
                    throw new InvalidOperationException($"The HTTP path '{path}' is registered twice.");
                }
            }
        }

        return routes;
    }

    /// <summary>
    /// Makes Kestrel listen on <see cref="TransportOptions.Port"/> with our connection handler (behind
    /// TLS when a certificate is configured). HTTP/1.1 only: the handler speaks HTTP/1.1 itself, and
    /// ALPN must not offer h2 to browsers.
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
                listen.UseHttps(certificate);
            }

            listen.UseConnectionHandler<CollabConnectionHandler>();
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
            throw SettingErrors.Single(TransportOptions.SectionName, typeof(TransportOptions), nameof(TransportOptions.CertificatePath), $"cannot load '{path}' (PFX, or PEM with CertificateKeyPath; right CertificatePassword?): {ex.Message}");
        }
    }
}
