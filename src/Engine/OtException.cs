using System.Diagnostics.CodeAnalysis;

namespace Collab.Engine;

/// <summary>Why an op or snapshot was rejected. Mapped one-to-one onto wire error codes by the server.</summary>
public enum OtErrorCode
{
    /// <summary>A component length is zero or negative.</summary>
    InvalidLength = 1,
    /// <summary>The op reaches past the end of the document (wrong base length).</summary>
    OpTooLong = 2,
    /// <summary>An unknown component kind.</summary>
    UnknownComponent = 3,
    /// <summary>Bytes that do not decode as an op.</summary>
    Malformed = 4,
    /// <summary>Text that is not valid Unicode (a lone surrogate).</summary>
    InvalidText = 5,
    /// <summary>The op or resulting document exceeds a configured size cap.</summary>
    TooLarge = 6,
    /// <summary>The op is not in normal form where normal form is required.</summary>
    NotNormalized = 7,
    /// <summary>An op boundary falls between the two halves of a surrogate pair (rich-text counts UTF-16 units).</summary>
    SplitsSurrogatePair = 8,
    /// <summary>A component carries more attributes than the configured limit (rich-text).</summary>
    TooManyAttributes = 9,
    /// <summary>An attribute name or value exceeds the configured size limit (rich-text).</summary>
    AttributeTooLarge = 10,
    /// <summary>An attribute name that the configured allow-list does not hold (rich-text).</summary>
    UnknownAttribute = 11,
    /// <summary>An embed exceeds the configured size limit (rich-text).</summary>
    EmbedTooLarge = 12,
    /// <summary>An embed type that the configured allow-list does not hold (rich-text).</summary>
    UnknownEmbedType = 13,
}

/// <summary>The one exception type the engine throws for bad input; state is untouched when it is thrown.</summary>
public sealed class OtException : Exception
{
    /// <summary>An OT failure with its code and a message for people.</summary>
    public OtException(OtErrorCode code, string message) : base(message) => Code = code;

    /// <summary>What went wrong, for code to branch on.</summary>
    public OtErrorCode Code { get; }

    /// <summary>Throw helper: keeps hot methods small (never inlined).</summary>
    [DoesNotReturn]
    public static void Throw(OtErrorCode code, string message) => throw new OtException(code, message);
}
