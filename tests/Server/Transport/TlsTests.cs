using System.Net.Security;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using Microsoft.Extensions.Options;

namespace Collab.Server.Tests.Transport;

/// <summary>wss:// through Kestrel's HTTPS connection middleware in front of our handler.</summary>
public sealed class TlsTests : IAsyncLifetime
{
    private readonly TestApplication _app = new();
    private TestCertificate _certificate = null!;
    private TestTransportServer _server = null!;

    public async Task InitializeAsync()
    {
        _certificate = TestCertificate.Create();
        _server = await TestTransportServer.StartAsync(_app, new TransportOptions
        {
            CertificatePath = _certificate.PfxPath,
            CertificatePassword = _certificate.Password,
        });
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _certificate.Dispose();
    }

    [Fact]
    public async Task Wss_echo_works_with_large_and_fragmented_messages()
    {
        Assert.Equal("wss", _server.WebSocketUri.Scheme);
        using var ws = new ClientWebSocket();
        ws.Options.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            certificate is not null && certificate.GetCertHashString() == _certificate.Certificate.GetCertHashString();
        await ws.ConnectAsync(_server.WebSocketUri, CancellationToken.None);

        // Under TLS the frames go through the TLS layer's pipe, never straight to the socket.
        Assert.False(((TransportConnection)await _app.NextOpenedAsync()).WritesToSocket);

        byte[] large = RandomNumberGenerator.GetBytes(300_000);
        await ws.SendAsync(large.AsMemory(0, 100_000), WebSocketMessageType.Binary, false, CancellationToken.None);
        await ws.SendAsync(large.AsMemory(100_000), WebSocketMessageType.Binary, true, CancellationToken.None);
        (byte[] echoed, _) = await ClientWebSocketConformanceTests.ReceiveMessageAsync(ws);
        Assert.Equal(large, echoed);

        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        Assert.Equal(ConnectionEndReason.ClientClosed, await _app.NextClosedAsync());
    }

    [Fact]
    public async Task Probes_are_served_over_https_on_the_same_port()
    {
        using var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                    certificate is not null && certificate.GetCertHashString() == _certificate.Certificate.GetCertHashString(),
            },
        };
        using var http = new HttpClient(handler) { BaseAddress = _server.HttpUri };
        HttpResponseMessage response = await http.GetAsync("/healthz");
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new Version(1, 1), response.Version);
    }

    [Fact]
    public async Task Plain_ws_against_the_tls_port_does_not_upgrade()
    {
        using var ws = new ClientWebSocket();
        var plain = new Uri($"ws://127.0.0.1:{_server.Port}/ws");
        await Assert.ThrowsAnyAsync<WebSocketException>(() => ws.ConnectAsync(plain, CancellationToken.None));
        Assert.Equal(0, _app.OpenedCount);
    }

    [Fact]
    public void Pem_certificate_with_key_file_loads_with_its_private_key()
    {
        string certificatePath = Path.Combine(Path.GetTempPath(), $"collab-{Guid.NewGuid():N}.crt");
        string keyPath = Path.ChangeExtension(certificatePath, ".key");
        try
        {
            File.WriteAllText(certificatePath, _certificate.Certificate.ExportCertificatePem());
            using (RSA key = _certificate.Certificate.GetRSAPrivateKey()!)
            {
                File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
            }

            var options = new TransportOptions { CertificatePath = certificatePath, CertificateKeyPath = keyPath };
            options.Validate();
            using var loaded = Collab.Server.Hosting.CollabTransportHostingExtensions.LoadCertificate(options);
            Assert.True(loaded.HasPrivateKey);
            Assert.Equal(_certificate.Certificate.Thumbprint, loaded.Thumbprint);

            var wrongPassword = new TransportOptions { CertificatePath = _certificate.PfxPath, CertificatePassword = "wrong" };
            Assert.Throws<OptionsValidationException>(() => Collab.Server.Hosting.CollabTransportHostingExtensions.LoadCertificate(wrongPassword));
        }
        finally
        {
            File.Delete(certificatePath);
            File.Delete(keyPath);
        }
    }
}
