using Collab.Server.Transport;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace Collab.Server.Tests.Transport;

public sealed class TransportOptionsTests
{
    [Fact]
    public void Defaults_are_valid_and_match_the_documented_values()
    {
        var options = new TransportOptions();
        options.Validate();
        Assert.Equal(8080, options.Port);
        Assert.Equal("/ws", options.WebSocketPath);
        Assert.Equal(1024 * 1024, options.MaxMessageBytes);
        Assert.Equal(TimeSpan.FromSeconds(10), options.HandshakeTimeout);
        Assert.Empty(options.AllowedOrigins);
        Assert.False(options.UseTls);
    }

    [Fact]
    public void Port_comes_from_the_command_line_before_the_environment()
    {
        IConfiguration both = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["COLLAB_PORT"] = "9001", ["Transport:MaxConnections"] = "7" })
            .AddCommandLine(new[] { "--port", "9002" })
            .Build();
        TransportOptions options = TransportOptions.FromConfiguration(both);
        Assert.Equal(9002, options.Port);
        Assert.Equal(7, options.MaxConnections);

        IConfiguration environmentOnly = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["COLLAB_PORT"] = "9001" }).Build();
        Assert.Equal(9001, TransportOptions.FromConfiguration(environmentOnly).Port);

        IConfiguration bad = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["COLLAB_PORT"] = "http" }).Build();
        Assert.Throws<OptionsValidationException>(() => TransportOptions.FromConfiguration(bad));
    }

    [Fact]
    public void Validate_lists_every_invalid_setting()
    {
        var options = new TransportOptions
        {
            Port = 70000,
            WebSocketPath = "ws",
            MaxMessageBytes = 0,
            HandshakeTimeout = TimeSpan.Zero,
            AllowedOrigins = { "https://ok.example.com", "not an origin", "https://x.example.com/path" },
            CertificatePath = "/nonexistent.pfx",
        };
        OptionsValidationException error = Assert.Throws<OptionsValidationException>(options.Validate);
        foreach (string fragment in new[] { "Port", "WebSocketPath", "MaxMessageBytes", "HandshakeTimeout", "not an origin", "/path", "CertificatePath" })
        {
            Assert.Contains(fragment, error.Message);
        }

        Assert.DoesNotContain("ok.example.com", error.Message);
        Assert.Throws<OptionsValidationException>(new TransportOptions { WebSocketPath = "/metrics" }.Validate);
    }
}
