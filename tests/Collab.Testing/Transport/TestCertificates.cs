using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Collab.Server.Tests.Transport.Infrastructure;

/// <summary>A self-signed certificate for 127.0.0.1/localhost written to a temporary PFX file.</summary>
public sealed class TestCertificate : IDisposable
{
    private TestCertificate(string path, string password, X509Certificate2 certificate)
    {
        PfxPath = path;
        Password = password;
        Certificate = certificate;
    }

    public string PfxPath { get; }

    public string Password { get; }

    public X509Certificate2 Certificate { get; }

    public static TestCertificate Create()
    {
        using RSA key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(new OidCollection { new Oid("1.3.6.1.5.5.7.3.1") }, critical: false));
        using X509Certificate2 created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
        string password = Convert.ToHexString(RandomNumberGenerator.GetBytes(8));
        byte[] pfx = created.Export(X509ContentType.Pfx, password);
        string path = Path.Combine(Path.GetTempPath(), $"collab-test-{Guid.NewGuid():N}.pfx");
        File.WriteAllBytes(path, pfx);
        return new TestCertificate(path, password, X509CertificateLoader.LoadPkcs12(pfx, password));
    }

    public void Dispose()
    {
        Certificate.Dispose();
        File.Delete(PfxPath);
    }
}
