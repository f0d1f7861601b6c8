namespace Collab.Client;

/// <summary>Settings of one <see cref="CollabHttpClient"/>. Read once when the client is created.</summary>
public sealed class CollabHttpClientOptions
{
    /// <summary>
    /// Returns the access token to present as <c>Authorization: Bearer</c>, or null for none (an anonymous server). Called
    /// before every request (cache the token in the provider). The same delegate as
    /// <see cref="CollabClientOptions.AccessTokenProvider"/>: one provider can serve the socket and the API.
    /// </summary>
    public Func<CancellationToken, ValueTask<string?>>? AccessTokenProvider { get; init; }

    /// <summary>
    /// How many times a request the server says may succeed later is retried (429, 503 <c>OVERLOADED</c>/<c>UNAVAILABLE</c>,
    /// a proxy's 502/504, a connection that failed): reads and edits (an edit always travels with an
    /// <c>Idempotency-Key</c>, so its retry is applied at most once); creates and deletes only on 429, which the server
    /// answers before doing anything. 0 turns retries off. Default 3.
    /// </summary>
    public int MaxRetries { get; init; } = 3;

    /// <summary>
    /// The longest wait before a retry: a <c>Retry-After</c> longer than this is not waited out (the error is thrown,
    /// with <see cref="CollabApiException.RetryAfter"/>). Default 30 s.
    /// </summary>
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The first wait before retrying a failed connection (doubled per attempt, with jitter), when the server named none. Positive, at most <see cref="MaxRetryDelay"/>. Default 200 ms.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(MaxRetries);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(RetryDelay, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxRetryDelay, RetryDelay);
    }
}
