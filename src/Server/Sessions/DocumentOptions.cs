using Collab.Engine.RichText;
using Collab.Protocol;

namespace Collab.Server.Sessions;

/// <summary>Per-document and per-session limits (configuration section "Collab:Documents").</summary>
public sealed class DocumentOptions
{
    public const string Section = "Documents";

    /// <summary>Largest encoded op a client may submit (announced in Welcome.max_op_bytes).</summary>
    public int MaxOpBytes { get; set; } = ProtocolLimits.DefaultMaxOpBytes;

    /// <summary>Largest document, in its type's units (code points for text-unicode, UTF-16 units for rich-text); an op that would grow past it is refused (DOC_TOO_LARGE).</summary>
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

    /// <summary>Largest presence user_data blob (announced in Welcome.max_presence_bytes).</summary>
    public int MaxPresenceUserDataBytes { get; set; } = ProtocolLimits.DefaultMaxPresenceBytes;

    /// <summary>rich-text: most attributes on one op component (Quill's formats number about twenty); more is INVALID_OP.</summary>
    public int RichTextMaxAttributes { get; set; } = 32;

    /// <summary>rich-text: longest attribute name, in UTF-16 units; longer is INVALID_OP.</summary>
    public int RichTextMaxAttributeNameLength { get; set; } = 64;

    /// <summary>rich-text: largest attribute value, in bytes of its binary encoding (docs/OT.md §16); larger is INVALID_OP.</summary>
    public int RichTextMaxAttributeValueBytes { get; set; } = 4096;

    /// <summary>
    /// rich-text: largest embed (type and payload), in bytes of its binary encoding; larger is INVALID_OP. Quill pastes
    /// images as data: URLs, which this bounds; half of <see cref="MaxOpBytes"/> by default, so the limit is the one a
    /// client meets (an op must fit MaxOpBytes too).
    /// </summary>
    public int RichTextMaxEmbedBytes { get; set; } = 128 * 1024;

    /// <summary>The rich-text type's submit limits from these settings (embed types: Quill's image, video and formula).</summary>
    public RichTextOptions RichText() => new()
    {
        MaxAttributesPerComponent = RichTextMaxAttributes,
        MaxAttributeNameLength = RichTextMaxAttributeNameLength,
        MaxAttributeValueBytes = RichTextMaxAttributeValueBytes,
        MaxEmbedBytes = RichTextMaxEmbedBytes,
    };

    public void Validate()
    {
        var errors = new SettingErrors(Section, typeof(DocumentOptions));
        errors.Positive(MaxOpBytes, nameof(MaxOpBytes));
        errors.Positive(MaxDocumentLength, nameof(MaxDocumentLength));
        errors.Positive(MaxPendingSubmissions, nameof(MaxPendingSubmissions));
        errors.Positive(HistoryMaxOps, nameof(HistoryMaxOps));
        errors.Positive(HistoryMaxBytes, nameof(HistoryMaxBytes));
        errors.Positive(MaxSubscriptionsPerConnection, nameof(MaxSubscriptionsPerConnection));
        errors.Positive(MaxSubmitsInFlightPerConnection, nameof(MaxSubmitsInFlightPerConnection));
        errors.Positive(CatchUpBatchOps, nameof(CatchUpBatchOps));
        errors.Positive(MaxFetchOps, nameof(MaxFetchOps));
        errors.Positive(MaxPresenceUserDataBytes, nameof(MaxPresenceUserDataBytes));
        errors.Positive(IdleCloseAfter, nameof(IdleCloseAfter));
        errors.Positive(OpenTimeout, nameof(OpenTimeout));
        errors.Positive(RichTextMaxAttributeNameLength, nameof(RichTextMaxAttributeNameLength));
        errors.Positive(RichTextMaxAttributeValueBytes, nameof(RichTextMaxAttributeValueBytes));
        errors.Positive(RichTextMaxAttributes, nameof(RichTextMaxAttributes), allowZero: true);
        if (RichTextMaxEmbedBytes < 2)
        {
            errors.Add(nameof(RichTextMaxEmbedBytes), "must be at least 2 (an embed's type and payload take a byte each)");
        }
        errors.ThrowIfAny();
    }
}
