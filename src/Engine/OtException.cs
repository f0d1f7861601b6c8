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
}

/// <summary>The one exception type the engine throws for bad input; state is untouched when it is thrown.</summary>
public sealed class OtException : Exception
{
    public OtException(OtErrorCode code, string message) : base(message) => Code = code;

    public OtErrorCode Code { get; }

    /// <summary>Throw helper: keeps hot methods small (never inlined).</summary>
    [DoesNotReturn]
    public static void Throw(OtErrorCode code, string message) => throw new OtException(code, message);
}
