using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Collab.Integration.Tests.Infrastructure;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.Cluster;

/// <summary>A token revoked through one node is refused at once on every node, and still after a node restarts.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterRevocationTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private const string Secret = "a-cluster-test-secret-long-enough-for-hs256!";
    private const string AdminToken = "cluster-admin-token-for-the-revocation-test";

    [Fact]
    public async Task A_token_revoked_on_one_node_is_refused_on_every_node_and_after_a_restart()
    {
        await using ClusterHarness cluster = await ClusterHarness.StartAsync(postgres, output, nodes: 2, settings: new Dictionary<string, string>
        {
            ["Auth:Mode"] = "Jwt",
            ["Auth:Issuers:0"] = "https://idp.test/",
            ["Auth:Audiences:0"] = "collab",
            ["Auth:SigningKey"] = Secret,
            ["Auth:AdminToken"] = AdminToken,
        });
        ServerProcess first = cluster.Nodes[0], second = cluster.Nodes[1];
        string token = CreateToken(jti: "token-1");

        await using RawProtocolClient victim = await RawProtocolClient.ConnectAsync(first.WebSocketUri, bearerToken: token);
        Task<WebSocketCloseStatus?> closed = victim.ReceiveCloseAsync();

        using var http = new HttpClient();
        using var revoke = new HttpRequestMessage(HttpMethod.Post, new Uri(second.HttpUri, "admin/revoke?jti=token-1&ttl=600"));
        revoke.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        using HttpResponseMessage answer = await http.SendAsync(revoke);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);

        // The session on the other node ends at once with "auth expired/revoked".
        Assert.Equal((WebSocketCloseStatus)4001, await closed.WaitAsync(TimeSpan.FromSeconds(10)));
        await AssertRefusedAsync(first, token);
        await AssertRefusedAsync(second, token);

        // A node that starts afresh loads the deny list from PostgreSQL.
        await first.StopAsync();
        await first.StartAgainAsync();
        await AssertRefusedAsync(first, token);

        // Other tokens of the same user are unaffected.
        await using RawProtocolClient other = await RawProtocolClient.ConnectAsync(first.WebSocketUri, bearerToken: CreateToken(jti: "token-2"));
        Assert.False(string.IsNullOrEmpty(other.ClientId));
    }

    private static async Task AssertRefusedAsync(ServerProcess node, string token)
    {
        var error = await Assert.ThrowsAsync<WebSocketException>(() => RawProtocolClient.ConnectAsync(node.WebSocketUri, bearerToken: token));
        Assert.Contains("401", error.Message, StringComparison.Ordinal);
    }

    private static string CreateToken(string jti) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
    {
        Issuer = "https://idp.test/",
        Audience = "collab",
        Claims = new Dictionary<string, object>
        {
            ["sub"] = "alice",
            ["jti"] = jti,
            ["collab"] = JsonDocument.Parse("""{"read":["*"],"write":["*"]}""").RootElement.Clone(),
        },
        Expires = DateTime.UtcNow.AddMinutes(10),
        SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(Secret)), SecurityAlgorithms.HmacSha256),
    });
}
