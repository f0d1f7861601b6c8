using System.Globalization;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Collab.Client;
using Collab.Integration.Tests.Infrastructure;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Deploy;

/// <summary>
/// A real Prometheus loads deploy/'s rules and scrapes a running Collab node (the server binary, SQLite store, JWT auth,
/// scraped on its management port as in production) while C# SDK clients edit through it. Every collab_* series the
/// rules and the dashboard select that a single node exports is then in Prometheus, every rule evaluates, every
/// dashboard query runs, and an alert fires from the node's real metrics. The collab_cluster_* series need a cluster:
/// <see cref="ClusterScrapeTests"/>.
/// </summary>
public sealed class SingleNodeScrapeTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Issuer = "https://idp.deploy.test/";
    private const string Audience = "collab";
    private const string Secret = "a-deploy-test-secret-long-enough-for-hs256!";
    private const string AdminToken = "deploy-test-admin-token-for-the-revocation";
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(90);

    private readonly string _directory = System.IO.Directory.CreateTempSubdirectory("collab-deploy-scrape-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        System.IO.Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Prometheus_scraping_a_node_has_every_series_the_rules_and_dashboard_use_and_fires_an_alert()
    {
        string keySet = Path.Combine(_directory, "jwks.json");
        await File.WriteAllTextAsync(keySet, """{"keys":[]}""");
        int managementPort = InProcessServer.FreePort();
        await using ServerProcess node = await ServerProcess.StartAsync(new Dictionary<string, string>
        {
            ["Node:NodeId"] = "deploy-node",
            ["Storage:DataDirectory"] = Path.Combine(_directory, "data"),
            ["Transport:ManagementPort"] = managementPort.ToString(CultureInfo.InvariantCulture),
            ["Auth:Mode"] = "Jwt",
            ["Auth:Issuers:0"] = Issuer,
            ["Auth:Audiences:0"] = Audience,
            ["Auth:SigningKey"] = Secret,
            ["Auth:AdminToken"] = AdminToken,
            // A key set file as well as the shared secret: its loads are what CollabJwksRefreshFailing watches. Only a
            // token naming an unknown key reloads it during the test.
            ["Auth:JwksPath"] = keySet,
            ["Auth:JwksRefreshInterval"] = "01:00:00",
            ["Auth:JwksMinRefreshInterval"] = "00:00:00.100",
        });
        await using PrometheusServer prometheus = await PrometheusServer.StartAsync([$"127.0.0.1:{managementPort}"]);

        // The node is a target of job "collab", scraped on its management port, named by the deployment's relabelling.
        await prometheus.WaitForAsync("the node was not scraped", async () =>
        {
            var targets = await prometheus.TargetsAsync();
            var collab = targets.Where(t => t.Labels["job"] == DeployAssets.Job).ToList();
            return collab.Count == 1 && collab[0].Health == "up" ? [] : [string.Join("; ", collab.Select(t => $"{t.ScrapeUrl} {t.Health}"))];
        }, s_timeout);
        var target = (await prometheus.TargetsAsync()).Single(t => t.Labels["job"] == DeployAssets.Job);
        Assert.Equal($"http://127.0.0.1:{managementPort}/metrics", target.ScrapeUrl);
        Assert.Equal("127.0.0.1", target.Labels["instance"]);

        // Real edits: one author on three documents, a second subscriber on the first (broadcast fan-out).
        using var typing = new CancellationTokenSource();
        await using CollabClient author = await CollabClient.ConnectAsync(node.WebSocketUri, Options(Token("author", "author-1")));
        await using CollabClient reader = await CollabClient.ConnectAsync(node.WebSocketUri, Options(Token("reader", "reader-1")));
        var documents = new List<CollabDocument>();
        for (int i = 0; i < 3; i++)
        {
            documents.Add(await author.OpenDocumentAsync($"deploy/doc-{i}"));
        }

        await using CollabDocument watched = await reader.OpenDocumentAsync("deploy/doc-0");
        for (int round = 0; round < 20; round++)
        {
            foreach (CollabDocument document in documents)
            {
                document.Insert(document.Text.Length, "x");
            }

            await Task.WhenAll(documents.Select(d => d.WhenSyncedAsync()));
        }

        Assert.Equal(20, (await WaitForTextAsync(watched, 20)).Length);

        // Ops keep coming while Prometheus catches up, so the 1-minute rates behind the ratios stay above zero.
        Task typist = TypeUntilCancelledAsync(documents[0], typing.Token);

        // What the labelled series need to exist: a refused token, a document the token gives no right to (an error
        // to the client), a plain HTTP request on the WebSocket port, and a revoked session.
        await Assert.ThrowsAsync<WebSocketException>(() => RawProtocolClient.ConnectAsync(node.WebSocketUri, bearerToken: Token("mallory", "forged", secret: Secret + "-wrong")));
        await using (CollabClient outsider = await CollabClient.ConnectAsync(node.WebSocketUri, Options(Token("outsider", "outsider-1", rights: """{"read":["elsewhere/*"]}"""))))
        {
            await Assert.ThrowsAsync<CollabServerException>(() => outsider.OpenDocumentAsync("deploy/doc-0"));
        }

        using var http = new HttpClient();
        (await http.GetAsync(new Uri(node.HttpUri, "healthz"))).EnsureSuccessStatusCode();
        await using RawProtocolClient victim = await RawProtocolClient.ConnectAsync(node.WebSocketUri, bearerToken: Token("victim", "victim-token"));
        Task<WebSocketCloseStatus?> victimClosed = victim.ReceiveCloseAsync();
        using (var revoke = new HttpRequestMessage(HttpMethod.Post, new Uri(node.HttpUri, "admin/revoke?jti=victim-token&ttl=600")))
        {
            revoke.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
            (await http.SendAsync(revoke)).EnsureSuccessStatusCode();
        }

        Assert.Equal((WebSocketCloseStatus)4001, await victimClosed.WaitAsync(s_timeout));

        IReadOnlyList<SeriesSelector> selectors = await ScrapeChecks.CollabSelectorsAsync();
        var nodeSelectors = selectors.Where(s => !ScrapeChecks.IsClusterOnly(s.Name)).ToList();
        output.WriteLine($"{nodeSelectors.Count} single-node selectors; {selectors.Count - nodeSelectors.Count} need a cluster: "
            + string.Join(", ", selectors.Where(s => ScrapeChecks.IsClusterOnly(s.Name)).Select(s => s.Name).Distinct()));
        await ScrapeChecks.AssertSeriesExistAsync(prometheus, nodeSelectors, s_timeout);
        Assert.Empty(await prometheus.SeriesAsync("{__name__=~\"collab_cluster_.+\"}"));

        await ScrapeChecks.AssertRecordedAsync(prometheus, DeployAssets.RecordedNames().Where(n => !ScrapeChecks.IsClusterOnly(n)), s_timeout);
        var ackQuantiles = await prometheus.QueryAsync("instance_quantile:collab_submit_ack_seconds:rate5m");
        Assert.Equal(["0.5", "0.9", "0.99"], ackQuantiles.Select(s => s.Labels["quantile"]).Order(StringComparer.Ordinal));
        Assert.All(ackQuantiles, s => Assert.InRange(s.Value, 0, 5));
        Assert.All(await prometheus.QueryAsync("instance:collab_ops_committed:rate1m"), s => Assert.True(s.Value > 0, $"ops/s {s.Value}"));
        await ScrapeChecks.AssertRulesHealthyAsync(prometheus, s_timeout);
        await ScrapeChecks.AssertDashboardQueriesAnswerAsync(prometheus, ScrapeChecks.IsClusterOnly, s_timeout);

        // Nothing is wrong yet, so nothing fires (CollabNodeDown, CollabStorageNotReady and the rest stay quiet).
        Assert.DoesNotContain(await prometheus.AlertsAsync(), a => a.State == "firing");

        // One failed key-set load fires CollabJwksRefreshFailing at once: the key file is broken, and a token signed
        // with a key the node does not have (its key id unknown) makes it reload. The failed counter was scraped at 0
        // before, so increase() sees the one failure.
        Assert.Contains(await prometheus.QueryAsync("collab_auth_jwks_refresh_total{result=\"failed\"}"), s => s.Value == 0);
        await File.WriteAllTextAsync(keySet, "{ this is not a key set");
        await Assert.ThrowsAsync<WebSocketException>(() => RawProtocolClient.ConnectAsync(
            node.WebSocketUri, bearerToken: Token("author", "rotated-1", secret: "the-issuer-rotated-to-this-new-signing-key", keyId: "rotated-key")));

        await prometheus.WaitForAsync("CollabJwksRefreshFailing did not fire", async () =>
        {
            var alerts = await prometheus.AlertsAsync();
            return alerts.Any(a => a.Name == "CollabJwksRefreshFailing" && a.State == "firing" && a.Labels["severity"] == "warning" && a.Labels["instance"] == "127.0.0.1")
                ? []
                : [string.Join(", ", alerts.Select(a => $"{a.Name} {a.State}"))];
        }, s_timeout);
        Assert.Contains(await prometheus.QueryAsync("count(ALERTS{alertstate=\"firing\",alertname=~\"Collab.*\"}) or vector(0)"), s => s.Value >= 1);

        await typing.CancelAsync();
        await typist;
        foreach (CollabDocument document in documents)
        {
            await document.DisposeAsync();
        }
    }

    private static async Task<string> WaitForTextAsync(CollabDocument document, int length)
    {
        var deadline = DateTime.UtcNow + s_timeout;
        while (document.Text.Length < length && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        return document.Text;
    }

    private static async Task TypeUntilCancelledAsync(CollabDocument document, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            document.Insert(document.Text.Length, "y");
            try
            {
                await document.WhenSyncedAsync(cancellationToken);
                await Task.Delay(100, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static CollabClientOptions Options(string token) => new()
    {
        AccessTokenProvider = _ => ValueTask.FromResult<string?>(token),
        ConnectTimeout = TimeSpan.FromSeconds(10),
    };

    private static string Token(string subject, string jti, string rights = """{"read":["*"],"write":["*"]}""", string secret = Secret, string? keyId = null) =>
        new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            Claims = new Dictionary<string, object>
            {
                ["sub"] = subject,
                ["jti"] = jti,
                ["collab"] = JsonDocument.Parse(rights).RootElement.Clone(),
            },
            Expires = DateTime.UtcNow.AddMinutes(30),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)) { KeyId = keyId }, SecurityAlgorithms.HmacSha256),
        });
}
