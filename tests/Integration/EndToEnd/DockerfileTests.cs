using System.Diagnostics;
using System.Text.RegularExpressions;
using Collab.Integration.Tests.Infrastructure;
using Collab.Testing;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>
/// The Dockerfile checked without a Docker engine: its ENV settings are given to the real server binary (ports and the
/// data directory moved to free/temporary ones), which must accept every one of them and do what they say (listen on
/// COLLAB_PORT, serve the probes on the management port, keep its database under COLLAB_DATA_DIR = the VOLUME); EXPOSE
/// names exactly those two ports; the HEALTHCHECK command itself is run against that server; the run example does not
/// publish the management port; the ENTRYPOINT is the server's assembly; and .dockerignore keeps local build output
/// and data out of the build context without excluding what the Dockerfile copies.
/// </summary>
public sealed partial class DockerfileTests
{
    private static readonly Lazy<Dockerfile> s_dockerfile = new(() => Dockerfile.Parse(File.ReadAllText(RepositoryFiles.PathOf("Dockerfile"))));

    [Fact]
    public async Task The_server_takes_every_ENV_setting_and_the_HEALTHCHECK_passes_against_it()
    {
        Dockerfile docker = s_dockerfile.Value;
        int webSocketPort = int.Parse(docker.Env["COLLAB_PORT"], System.Globalization.CultureInfo.InvariantCulture);
        int managementPort = int.Parse(docker.Env["Transport__ManagementPort"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(new[] { webSocketPort, managementPort }.Order(), docker.Expose.Order());
        Assert.Equal([docker.Env["COLLAB_DATA_DIR"]], docker.Volumes);

        // The image's environment, with free ports and a temporary data directory in place of 8080, 9090 and /data.
        int freeWebSocket = InProcessServer.FreePort();
        int freeManagement = InProcessServer.FreePort();
        string data = Directory.CreateTempSubdirectory("collab-docker-").FullName;
        var environment = new Dictionary<string, string>(docker.Env, StringComparer.Ordinal)
        {
            ["COLLAB_PORT"] = freeWebSocket.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Transport__ManagementPort"] = freeManagement.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["COLLAB_DATA_DIR"] = data,
        };
        try
        {
            // No --port: COLLAB_PORT must be what puts the server on its port (StartAsync waits for /readyz there).
            await using ServerProcess server = await ServerProcess.StartAsync(environment, freeWebSocket, portOnCommandLine: false);
            Assert.True(File.Exists(Path.Combine(data, "collab.db")), "the database is not under COLLAB_DATA_DIR");

            Assert.Equal(0, await RunHealthCheckAsync(docker.HealthCheck, environment));

            // And it can fail: pointed at a port nobody serves, the check reports the container unhealthy.
            environment["Transport__ManagementPort"] = InProcessServer.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
            Assert.NotEqual(0, await RunHealthCheckAsync(docker.HealthCheck, environment));
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public void The_run_example_publishes_only_the_websocket_port_and_says_the_management_port_stays_private()
    {
        Dockerfile docker = s_dockerfile.Value;
        string run = docker.Comments.Single(c => c.Contains("docker run", StringComparison.Ordinal));
        string[] published = [.. PublishedPort().Matches(run).Select(m => m.Groups[1].Value)];
        Assert.Equal([docker.Env["COLLAB_PORT"]], published);
        Assert.Contains(docker.Comments, c => c.Contains("must stay private", StringComparison.Ordinal));
        Assert.Equal(["dotnet", "Collab.Server.dll"], docker.Entrypoint);
        Assert.True(File.Exists(Path.Combine(RepositoryFiles.Root, "src", "Server", "Collab.Server.csproj")));
    }

    [Fact]
    public void Dockerignore_keeps_local_output_and_data_out_but_not_the_sources()
    {
        string[] patterns = [.. File.ReadAllLines(Path.Combine(RepositoryFiles.Root, ".dockerignore")).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))];
        foreach (string required in new[] { "**/bin/", "**/obj/", "**/data/", "**/node_modules/", "artifacts/", ".git" })
        {
            Assert.Contains(required, patterns);
        }

        foreach (string copied in s_dockerfile.Value.CopiedSources)
        {
            Assert.DoesNotContain(patterns, p => string.Equals(p.TrimEnd('/'), copied.TrimEnd('/'), StringComparison.Ordinal));
        }
    }

    private static async Task<int> RunHealthCheckAsync(string[] command, IReadOnlyDictionary<string, string> environment)
    {
        var info = new ProcessStartInfo(command[0]) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in command[1..])
        {
            info.ArgumentList.Add(argument);
        }

        foreach ((string key, string value) in environment)
        {
            info.Environment[key] = value;
        }

        using Process process = Process.Start(info)!;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await process.WaitForExitAsync(cts.Token);
        return process.ExitCode;
    }

    [GeneratedRegex(@"-p (\d+):\d+")]
    private static partial Regex PublishedPort();
}
