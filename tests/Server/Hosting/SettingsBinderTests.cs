using Collab.Server.Security;
using Collab.Server.Transport;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace Collab.Server.Tests.Hosting;

/// <summary>
/// SettingsBinder: every key of a section is checked against the options class before the configuration binder runs,
/// so a typo or a value of the wrong type is a "Section:Name: why" error (all of them at once), and every valid form
/// still binds exactly as the binder binds it.
/// </summary>
public sealed class SettingsBinderTests
{
    private static IConfiguration Config(params (string Key, string? Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => KeyValuePair.Create(v.Key, v.Value))).Build();

    [Fact]
    public void Valid_values_of_every_kind_bind()
    {
        TransportOptions transport = SettingsBinder.Bind<TransportOptions>(Config(
            ("Transport:port", "9000"), // keys are case-insensitive, as for the binder
            ("Transport:ManagementPort", "9090"),
            ("Transport:PingInterval", "00:00:20"),
            ("Transport:AllowedOrigins:0", "https://a.example"),
            ("Transport:AllowedOrigins:1", "https://b.example"),
            ("Transport:ListenAddress", "")), TransportOptions.Section);
        Assert.Equal(9000, transport.Port);
        Assert.Equal(9090, transport.ManagementPort);
        Assert.Equal(TimeSpan.FromSeconds(20), transport.PingInterval);
        Assert.Equal(["https://a.example", "https://b.example"], transport.AllowedOrigins);

        AuthOptions auth = SettingsBinder.Bind<AuthOptions>(Config(("Auth:Mode", "jwt"), ("Auth:AllowQueryToken", "False")), AuthOptions.Section);
        Assert.Equal(AuthMode.Jwt, auth.Mode);
        Assert.False(auth.AllowQueryToken);

        LimitsOptions limits = SettingsBinder.Bind<LimitsOptions>(Config(("Limits:OpsPerSecond", "2.5")), LimitsOptions.Section);
        Assert.Equal(2.5, limits.OpsPerSecond);
    }

    [Fact]
    public void An_absent_section_gives_the_defaults() =>
        Assert.Equal(new TransportOptions().Port, SettingsBinder.Bind<TransportOptions>(Config(), TransportOptions.Section).Port);

    [Fact]
    public void Every_bad_key_is_reported_with_its_setting_and_why()
    {
        OptionsValidationException error = Assert.Throws<OptionsValidationException>(() => SettingsBinder.Bind<AuthOptions>(Config(
            ("Auth:Mode", "jwt-typo"),
            ("Auth:Mod", "Jwt"),
            ("Auth:ClockSkew", "30s"),
            ("Auth:AllowQueryToken", "yes"),
            ("Auth:Issuers", "https://idp/"),
            ("Auth:Audiences:first", "collab"),
            ("Auth:RightsClaim:x", "y")), AuthOptions.Section));

        Assert.Equal(
            [
                "Auth:AllowQueryToken: 'yes' is not true or false.",
                "Auth:Audiences:first: list entries are numbered Auth:Audiences:0, Auth:Audiences:1, ...",
                "Auth:ClockSkew: '30s' is not a duration as [d.]hh:mm:ss[.fff], e.g. 00:00:05 for 5 s.",
                "Auth:Issuers: is a list: set Auth:Issuers:0, Auth:Issuers:1, ... (environment: Auth__Issuers__0), not one value.",
                "Auth:Mod: is not a setting; did you mean Auth:Mode?",
                "Auth:Mode: 'jwt-typo' is not one of Anonymous, Jwt.",
                "Auth:RightsClaim: is a single value (a String), not a section.",
            ],
            error.Failures.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("Transport:MaxConnections", "1.5", "a whole number (32-bit)")]
    [InlineData("Transport:MaxConnections", "99999999999", "a whole number (32-bit)")]
    [InlineData("Transport:ManagementPort", "none", "a whole number (32-bit)")]
    [InlineData("Transport:MaxConnections", "", "is empty")]
    [InlineData("Transport:Whatever", "1", "is not a setting.")]
    public void Values_that_do_not_convert_are_refused(string key, string value, string why)
    {
        OptionsValidationException error = Assert.Throws<OptionsValidationException>(() => SettingsBinder.Bind<TransportOptions>(Config((key, value)), TransportOptions.Section));
        string failure = Assert.Single(error.Failures);
        Assert.StartsWith(key + ": ", failure, StringComparison.Ordinal);
        Assert.Contains(why, failure, StringComparison.Ordinal);
    }

    [Fact]
    public void A_nullable_setting_may_be_left_empty() =>
        Assert.Null(SettingsBinder.Bind<TransportOptions>(Config(("Transport:ManagementPort", "")), TransportOptions.Section).ManagementPort);

    [Fact]
    public void Command_line_arguments_that_set_nothing_are_reported()
    {
        var switches = new Dictionary<string, string> { ["--port"] = "port", ["--data-dir"] = "Storage:DataDirectory" };
        string[] sections = ["Transport", "Storage", "Logging"];

        Assert.Empty(SettingsBinder.CheckCommandLine(
            ["--port", "9000", "--data-dir=/d", "--Transport:PingInterval", "00:00:05", "/Storage:Provider=Sqlite", "--Logging:LogLevel:Default=Warning", "--environment", "Production"],
            switches,
            sections));
        Assert.Equal(
            [
                "--prot: is not a setting; did you mean --port?",
                "Trasnport:Port: is not a setting; did you mean Transport:Port?",
                "-x: is not a switch; the switches are --port, --data-dir, and --Section:Name=value sets any setting.",
                "stray: is an argument without a setting; write --Section:Name=value (or --Section:Name value).",
                "--Transport: is a section, not a setting; write --Transport:Name=value.",
            ],
            SettingsBinder.CheckCommandLine(["--prot", "9000", "--Trasnport:Port=1", "-x", "1", "stray", "--Transport=1"], switches, sections));
    }
}
