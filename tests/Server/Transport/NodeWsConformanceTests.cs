using System.Diagnostics;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;

namespace Collab.Server.Tests.Transport;

/// <summary>
/// Conformance with Node's `ws` package, an independent client implementation. Dependencies come from
/// tests/Server/node/package-lock.json (CI: <c>npm ci --prefix tests/Server/node</c>; the test runs the
/// same command itself when node_modules is missing).
/// </summary>
[Trait("Category", "Slow")]
public sealed class NodeWsConformanceTests
{
    private static readonly SemaphoreSlim s_install = new(1, 1);

    [Fact]
    public async Task Node_ws_client_passes_every_conformance_case()
    {
        string directory = FindNodeDirectory();
        await EnsureInstalledAsync(directory);

        var app = new TestApplication
        {
            Handshake = request => HandshakeDecision.Accept(request.SubProtocols.Contains("collab.v1") ? "collab.v1" : null),
        };
        const int maxMessageBytes = 1024 * 1024;
        await using TestTransportServer server = await TestTransportServer.StartAsync(app, new TransportOptions
        {
            MaxMessageBytes = maxMessageBytes,
            PingInterval = TimeSpan.FromMilliseconds(100),
            HeartbeatInterval = TimeSpan.FromMilliseconds(20),
        });

        (int exitCode, string output) = await RunAsync(directory, "node", $"conformance.mjs {server.WebSocketUri} {maxMessageBytes}", TimeSpan.FromSeconds(90));
        Assert.True(exitCode == 0, output);
        foreach (string name in new[]
        {
            "text echo", "binary echo of every length class", "fragmented message", "ping gets a pong with the same payload",
            "server pings are answered automatically", "close code and reason are echoed", "sub-protocol negotiation",
            "invalid UTF-8 text fails with 1007", "oversized message fails with 1009",
        })
        {
            Assert.Contains("ok " + name, output);
        }
    }

    private static string FindNodeDirectory()
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "Server", "node");
            if (File.Exists(Path.Combine(candidate, "package-lock.json")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/Server/node not found above " + AppContext.BaseDirectory);
    }

    private static async Task EnsureInstalledAsync(string directory)
    {
        await s_install.WaitAsync();
        try
        {
            if (File.Exists(Path.Combine(directory, "node_modules", "ws", "package.json")))
            {
                return;
            }

            (int exitCode, string output) = await RunAsync(directory, "npm", "ci --no-audit --no-fund", TimeSpan.FromMinutes(3));
            Assert.True(exitCode == 0, "npm ci failed: " + output);
        }
        finally
        {
            s_install.Release();
        }
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string directory, string command, string arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(command, arguments)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using Process process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {command}");
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{command} {arguments} did not finish within {timeout}: {await stdout}{await stderr}");
        }

        return (process.ExitCode, await stdout + await stderr);
    }
}
