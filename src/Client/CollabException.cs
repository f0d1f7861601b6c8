using System.Diagnostics.CodeAnalysis;
using System.Net.WebSockets;
using Collab.Client.Sync;
using Collab.Protocol.V1;

namespace Collab.Client;

/// <summary>Base of every exception the SDK throws for a protocol or connection failure.</summary>
public abstract class CollabException : Exception
{
    private protected CollabException(string message, Exception? inner) : base(message, inner)
    {
    }
}

/// <summary>The server answered a request with an Error message.</summary>
public sealed class CollabServerException : CollabException
{
    /// <summary>Creates the exception from the error's fields.</summary>
    public CollabServerException(CollabErrorCode code, string message, bool retryable, string? docId)
        : base($"{code}: {message}", null)
    {
        Code = code;
        Retryable = retryable;
        DocId = docId;
    }

    /// <summary>Why the server refused.</summary>
    public CollabErrorCode Code { get; }

    /// <summary>The server's hint that the same request may succeed later.</summary>
    public bool Retryable { get; }

    /// <summary>The document concerned, if any.</summary>
    public string? DocId { get; }
}

/// <summary>A connection could not be established, or was lost for good.</summary>
public sealed class CollabConnectionException : CollabException
{
    /// <summary>Creates the exception.</summary>
    public CollabConnectionException(string message, Exception? inner = null, WebSocketCloseStatus? closeStatus = null, int? httpStatusCode = null)
        : base(message, inner)
    {
        CloseStatus = closeStatus;
        HttpStatusCode = httpStatusCode;
    }

    /// <summary>The WebSocket close code the server sent, if it closed the connection.</summary>
    public WebSocketCloseStatus? CloseStatus { get; }

    /// <summary>The HTTP status of a rejected upgrade request (401, 403, 503, ...), if that is how it failed.</summary>
    public int? HttpStatusCode { get; }
}

/// <summary>
/// The document exists with another OT type than the one asked for (the server's <c>TYPE_MISMATCH</c>, or a snapshot
/// of a type this document object does not implement): open it with the method for its type
/// (<see cref="CollabClient.OpenDocumentAsync"/> for <c>text-unicode</c>, <see cref="CollabClient.OpenRichDocumentAsync"/>
/// for <c>rich-text</c>). Never retried: a document's type is fixed when it is created.
/// </summary>
public sealed class CollabTypeMismatchException : CollabException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="docId">The document.</param>
    /// <param name="requestedType">The type the client asked for.</param>
    /// <param name="actualType">The document's type, when the server named it.</param>
    /// <param name="serverMessage">The server's explanation, when the server refused the subscription.</param>
    public CollabTypeMismatchException(string docId, string requestedType, string? actualType, string? serverMessage)
        : base(actualType is null
            ? $"Document '{docId}' exists with another type than '{requestedType}'{(serverMessage is null ? "." : ": " + serverMessage)}"
            : $"Document '{docId}' has type '{actualType}'; it was opened as '{requestedType}'.", null)
    {
        DocId = docId;
        RequestedType = requestedType;
        ActualType = actualType;
    }

    /// <summary>The document.</summary>
    public string DocId { get; }

    /// <summary>The type the client asked for (<c>text-unicode</c> or <c>rich-text</c>).</summary>
    public string RequestedType { get; }

    /// <summary>The document's actual type, when known.</summary>
    public string? ActualType { get; }
}

/// <summary>Throw helpers: keep the throwing paths out of hot methods.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ThrowConnection(string message, Exception? inner = null, WebSocketCloseStatus? closeStatus = null, int? httpStatusCode = null)
        => throw new CollabConnectionException(message, inner, closeStatus, httpStatusCode);

    [DoesNotReturn]
    public static void ThrowServer(Error error)
        => throw ErrorCodes.ToException(error, error.DocId.Length == 0 ? null : error.DocId);

    [DoesNotReturn]
    public static void ThrowProtocolViolation(string message)
        => throw new WebSocketException(WebSocketError.InvalidMessageType, message);

    [DoesNotReturn]
    public static void ThrowMessageTooLarge(int limit)
        => throw new WebSocketException(WebSocketError.Faulted, $"A server message exceeds the {limit}-byte limit.");
}
