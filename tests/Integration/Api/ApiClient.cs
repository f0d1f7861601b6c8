using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Collab.Integration.Tests.Api;

/// <summary>An HttpClient for the /v1 API with the few helpers the tests repeat.</summary>
internal sealed class ApiClient : IDisposable
{
    private readonly HttpClient _http;

    public ApiClient(Uri baseUri, string? bearerToken = null)
    {
        _http = new HttpClient { BaseAddress = baseUri };
        if (bearerToken is not null)
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearerToken);
        }
    }

    public HttpClient Http => _http;

    public static string Path(string docId) => "/v1/docs/" + docId.Replace("/", "%2F", StringComparison.Ordinal);

    public Task<HttpResponseMessage> CreateAsync(string docId, string content, string? type = null) =>
        _http.PutAsync(Path(docId), JsonContent.Create(new { type, content }));

    public Task<HttpResponseMessage> GetAsync(string docId, string query = "", string? ifNoneMatch = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, Path(docId) + query);
        if (ifNoneMatch is not null)
        {
            request.Headers.TryAddWithoutValidation("If-None-Match", ifNoneMatch);
        }

        return _http.SendAsync(request);
    }

    public async Task<JsonElement> GetJsonAsync(string docId, string query = "")
    {
        using HttpResponseMessage response = await GetAsync(docId, query);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {docId}{query}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return await Json(response);
    }

    public Task<HttpResponseMessage> SubmitAsync(string docId, long baseVersion, string opJson, string? idempotencyKey = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, Path(docId) + "/ops")
        {
            Content = new StringContent($"{{\"baseVersion\":{baseVersion},\"op\":{opJson}}}", Encoding.UTF8, "application/json"),
        };
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        return _http.SendAsync(request);
    }

    public static async Task<JsonElement> Json(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();

    /// <summary>Asserts an RFC 9457 problem with the status and code.</summary>
    public static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status} {code}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        JsonElement problem = JsonDocument.Parse(body).RootElement.Clone();
        Assert.Equal(code, problem.GetProperty("code").GetString());
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.Equal("no-store", response.Headers.NonValidated["Cache-Control"].ToString());
        return problem;
    }

    public void Dispose() => _http.Dispose();
}
