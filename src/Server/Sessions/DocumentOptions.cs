namespace Collab.Server.Sessions;

/// <summary>Per-document and per-session limits (configuration section "Collab:Documents").</summary>
public sealed class DocumentOptions
{
    public const string Section = "Documents";

    /// <summary>Largest encoded op a client may submit.</summary>
    public int MaxOpBytes { get; set; } = 256 * 1024;

    /// <summary>Largest document, in code points; an op that would grow past it is refused (DOC_TOO_LARGE).</summary>
    public int MaxDocumentLength { get; set; } = 8 * 1024 * 1024;

    /// <summary>Submissions queued for one document before callers get OVERLOADED (retryable).</summary>
    public int MaxPendingSubmissions { get; set; } = 8192;

    /// <summary>Sequenced ops kept in memory per document for transforms and resuming clients.</summary>
    public int HistoryMaxOps { get; set; } = 10_000;

    /// <summary>Bytes of sequenced ops kept in memory per document.</summary>
    public int HistoryMaxBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>Documents subscribed by one connection.</summary>
    public int MaxSubscriptionsPerConnection { get; set; } = 1000;

    /// <summary>
    /// Submits one connection may have waiting for their outcome (ack or error). At the limit the session stops
    /// reading that connection until one completes, so a pipelining client is slowed by TCP instead of queueing
    /// unbounded work (and ever staler base versions) in the server. The SDK keeps one op in flight.
    /// </summary>
    public int MaxSubmitsInFlightPerConnection { get; set; } = 16;

    /// <summary>
    /// How long a subscribe may wait for its document to open (loaded from the store; in a cluster also its lease and
    /// stream) and for its catch-up history. Past it the client gets a retryable UNAVAILABLE, as a forwarded submit does
    /// after Cluster:ForwardTimeout, instead of no answer while the store is unreachable; the load goes on, and the retry
    /// finds the document open once it completes.
    /// </summary>
    public TimeSpan OpenTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>A document with no subscribers closes (after a final snapshot) once idle this long.</summary>
    public TimeSpan IdleCloseAfter { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Ops per Ops message when a resuming client catches up.</summary>
    public int CatchUpBatchOps { get; set; } = 256;

    /// <summary>Most ops one FetchOps answer carries (clients page through longer ranges).</summary>
    public int MaxFetchOps { get; set; } = 10_000;

    /// <summary>Largest presence user_data blob.</summary>
    public int MaxPresenceUserDataBytes { get; set; } = 512;

    public void Validate()
    {
        static void Positive(long v, string name)
        {
            if (v <= 0)
            {
                throw new Microsoft.Extensions.Options.OptionsValidationException(Section, typeof(DocumentOptions), [$"{Section}:{name} must be positive (was {v})."]);
            }
        }

        Positive(MaxOpBytes, nameof(MaxOpBytes));
        Positive(MaxDocumentLength, nameof(MaxDocumentLength));
        Positive(MaxPendingSubmissions, nameof(MaxPendingSubmissions));
        Positive(HistoryMaxOps, nameof(HistoryMaxOps));
        Positive(HistoryMaxBytes, nameof(HistoryMaxBytes));
        Positive(MaxSubscriptionsPerConnection, nameof(MaxSubscriptionsPerConnection));
        Positive(MaxSubmitsInFlightPerConnection, nameof(MaxSubmitsInFlightPerConnection));
        Positive(CatchUpBatchOps, nameof(CatchUpBatchOps));
        Positive(MaxFetchOps, nameof(MaxFetchOps));
        Positive(MaxPresenceUserDataBytes, nameof(MaxPresenceUserDataBytes));
        if (IdleCloseAfter <= TimeSpan.Zero)
        {
            throw new Microsoft.Extensions.Options.OptionsValidationException(Section, typeof(DocumentOptions), [$"{Section}:{nameof(IdleCloseAfter)} must be positive."]);
        }

        if (OpenTimeout <= TimeSpan.Zero)
        {
            throw new Microsoft.Extensions.Options.OptionsValidationException(Section, typeof(DocumentOptions), [$"{Section}:{nameof(OpenTimeout)} must be positive."]);
        }
    }
}
