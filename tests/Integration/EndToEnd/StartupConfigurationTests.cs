using System.Text.RegularExpressions;
using Collab.Integration.Tests.Infrastructure;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>
/// The built server binary started with invalid settings, as an operator would mistype them: it exits 2 and prints one
/// line per invalid setting, "collab: invalid configuration: &lt;setting&gt;: &lt;why&gt;", and nothing else on stderr:
/// no unhandled exception (which aborted with 134), no stack trace, no second misleading error.
/// </summary>
public sealed partial class StartupConfigurationTests : IDisposable
{
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("collab-config-").FullName;

    public static TheoryData<string[], string[]> InvalidSettings() => new()
    {
        { ["--Auth:Mode=jwt-typo"], ["Auth:Mode"] },
        { ["--Auth:Mode=5"], ["Auth:Mode"] },
        { ["--Auth:Mod=Jwt"], ["Auth:Mod"] },
        { ["--Auth:AllowedAlgorithms:0=none"], ["Auth:AllowedAlgorithms:0"] },
        {
            ["--Auth:Mode=Jwt", "--Auth:Issuers:0=https://idp/", "--Auth:Audiences:0=collab", "--Auth:SigningKey=0123456789abcdef0123456789abcdef", "--Auth:AllowedAlgorithms:0=none"],
            ["Auth:AllowedAlgorithms:0"]
        },
        { ["--Auth:AllowedAlgorithms=HS256"], ["Auth:AllowedAlgorithms"] },
        { ["--Transport:Port=abc"], ["Transport:Port"] },
        { ["--port", "http"], ["Transport:Port"] },
        { ["--Transport:PingInterval=30s"], ["Transport:PingInterval"] },
        { ["--Transport:MaxConnections=0"], ["Transport:MaxConnections"] },
        { ["--Storage:Provider=Mongo"], ["Storage:Provider"] },
        { ["--postgres", "Hots=db;Username=collab"], ["Storage:PostgresConnectionString"] },
        { ["--Documents:MaxOpBytes=-1"], ["Documents:MaxOpBytes"] },
        { ["--Limits:OpsPerSecond=fast"], ["Limits:OpsPerSecond"] },
        { ["--Cluster:Enabled=maybe"], ["Cluster:Enabled"] },
        { ["--Node:NodeId="], ["Node:NodeId"] },
        { ["--Server:SchedulerSlice=00:00:00.00005"], ["Server:SchedulerSlice"] },
        { ["--Server:SchedulerSlice=00:00:01"], ["Server:SchedulerSlice"] },
        { ["--Server:SchedulerSlice=-00:00:00.001"], ["Server:SchedulerSlice"] },
        { ["--Server:SchedulerSlice=100us"], ["Server:SchedulerSlice"] },
        { ["--Server:Slice=00:00:00.0001"], ["Server:Slice"] },
        { ["--prot", "9000"], ["--prot"] },
        { ["-p", "8080"], ["-p"] },
        { ["--Trasnport:Port=9000"], ["Trasnport:Port"] },
        { ["--Auth:Mode=jwt-typo", "--Transport:Port=abc", "--Documents:MaxOpBytes=0", "--Storage:SnapshotsToKeep=-1"], ["Auth:Mode", "Transport:Port", "Documents:MaxOpBytes", "Storage:SnapshotsToKeep"] },
    };

    [Theory]
    [MemberData(nameof(InvalidSettings))]
    public async Task An_invalid_setting_exits_2_naming_the_setting(string[] arguments, string[] settings)
    {
        (int exitCode, string stdout, string stderr) = await ServerProcess.RunToExitAsync(["--data-dir", _dataDirectory, "--port", "0", .. arguments]);
        AssertInvalidConfiguration(exitCode, stdout, stderr, settings);
    }

    [Fact]
    public async Task Environment_variables_are_checked_the_same_way()
    {
        (int exitCode, string stdout, string stderr) = await ServerProcess.RunToExitAsync(
            ["--data-dir", _dataDirectory, "--port", "0"],
            new Dictionary<string, string> { ["Auth:Mode"] = "jwt-typo", ["Transport:CloseTimeout"] = "five seconds" });
        AssertInvalidConfiguration(exitCode, stdout, stderr, ["Auth:Mode", "Transport:CloseTimeout"]);
    }

    [Fact]
    public async Task Environment_variables_that_only_share_a_sections_name_are_not_settings()
    {
        // npm runs every script with NODE=/path/to/node: it once made the server refuse to start ("Node:*").
        (int exitCode, string stdout, string stderr) = await ServerProcess.RunToExitAsync(
            ["--data-dir", _dataDirectory, "--port", "0", "--Transport:PingInterval=soon"],
            new Dictionary<string, string> { ["NODE"] = "/usr/bin/node", ["API"] = "x", ["WEB"] = "on", ["Storage"] = "y" });
        AssertInvalidConfiguration(exitCode, stdout, stderr, ["Transport:PingInterval"]);
    }

    [Fact]
    public async Task A_certificate_that_does_not_load_is_an_invalid_setting()
    {
        string notACertificate = Path.Combine(_dataDirectory, "not-a-certificate.pfx");
        await File.WriteAllTextAsync(notACertificate, "this is not PKCS#12");
        (int exitCode, string stdout, string stderr) = await ServerProcess.RunToExitAsync(["--data-dir", _dataDirectory, "--port", "0", "--Transport:CertificatePath=" + notACertificate]);
        AssertInvalidConfiguration(exitCode, stdout, stderr, ["Transport:CertificatePath"]);
    }

    public void Dispose() => Directory.Delete(_dataDirectory, recursive: true);

    private static void AssertInvalidConfiguration(int exitCode, string stdout, string stderr, string[] settings)
    {
        string output = $"exit {exitCode}\nstdout:\n{stdout}\nstderr:\n{stderr}";
        Assert.True(exitCode == 2, output);
        string[] lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var named = new List<string>();
        foreach (string line in lines)
        {
            Match match = ErrorLine().Match(line);
            Assert.True(match.Success, $"Not an invalid-configuration line: '{line}'\n{output}");
            named.Add(match.Groups["setting"].Value);
        }

        Assert.Equal(settings.Order(StringComparer.Ordinal), named.Order(StringComparer.Ordinal));
        Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^collab: invalid configuration: (?<setting>--?[a-z][a-z-]*|[A-Za-z]+(:[A-Za-z0-9]+)+): (?<why>\S.*)$")]
    private static partial Regex ErrorLine();
}
