namespace Collab.Client;

/// <summary>
/// Why the server refused a request: the SDK's own view of the wire's <c>ErrorCode</c> (docs/PROTOCOL.md, error table),
/// so applications do not depend on generated protobuf types. Values equal the wire numbers; a code this SDK does not
/// know yet is reported as <see cref="Unknown"/>.
/// </summary>
public enum CollabErrorCode
{
    /// <summary>A code this SDK version does not know (a newer server), or none.</summary>
    Unknown = 0,

    /// <summary>The message was not a valid protocol message, or a field was missing or invalid.</summary>
    BadMessage = 1,

    /// <summary>A message kind the server does not know.</summary>
    UnknownMessage = 2,

    /// <summary>The first message was not Hello.</summary>
    NotHello = 3,

    /// <summary>The server does not speak this SDK's protocol version.</summary>
    ProtocolVersion = 4,

    /// <summary>The document id breaks the id rule (1–128 of <c>[A-Za-z0-9._:/-]</c>, not starting with <c>/</c> or <c>.</c>, no <c>..</c>).</summary>
    InvalidDocId = 5,

    /// <summary>A submit or presence for a document not subscribed on this connection (the SDK resubscribes).</summary>
    NotSubscribed = 6,

    /// <summary>The op does not decode or is not well-formed; the op is dropped.</summary>
    InvalidOp = 7,

    /// <summary>The op reaches past the end of the document at its base version; the op is dropped.</summary>
    OpDoesNotFit = 8,

    /// <summary>The base version is ahead of the server's (the SDK resyncs).</summary>
    VersionFromFuture = 9,

    /// <summary>The server's history no longer holds the base version (the SDK fetches or resyncs).</summary>
    VersionTooOld = 10,

    /// <summary>The op is larger than the server's <c>max_op_bytes</c>.</summary>
    OpTooLarge = 11,

    /// <summary>The op would make the document larger than the server allows.</summary>
    DocTooLarge = 12,

    /// <summary>Retryable: the document's queue is full.</summary>
    Overloaded = 13,

    /// <summary>Retryable: the client sends too fast.</summary>
    RateLimited = 14,

    /// <summary>The access token is missing, invalid or expired.</summary>
    Unauthorized = 15,

    /// <summary>The token grants no right to read or write this document.</summary>
    Forbidden = 16,

    /// <summary>The connection has as many subscriptions as the server allows.</summary>
    TooManySubscriptions = 17,

    /// <summary>Retryable, outcome unknown for a submit: storage or the document's owner was unreachable (the SDK resends with the same seq).</summary>
    Unavailable = 18,

    /// <summary>The server failed.</summary>
    Internal = 19,

    /// <summary>Reserved: a client seq reused for a different op (not sent by the current server).</summary>
    SeqAlreadyUsed = 20,

    /// <summary>
    /// Not a rejection: this (client id, client seq) was committed earlier and the op log no longer holds it; the op is
    /// in the server's document (the SDK resyncs keeping it).
    /// </summary>
    AlreadyCommitted = 21,

    /// <summary>The document was deleted (HTTP API); the subscription ended.</summary>
    DocDeleted = 22,

    /// <summary>The document exists with another OT type than the one asked for (see <see cref="CollabTypeMismatchException"/>).</summary>
    TypeMismatch = 23,
}
