using System.Globalization;

namespace Collab.Client;

/// <summary>
/// Which state of a document an HTTP API read asks for: the head (<see cref="Head"/>, the default), an explicit version
/// (<see cref="AtVersion"/>) or the document as it was at a time (<see cref="AtTime"/>). An explicit past version never
/// changes, so the server lets it be cached for a year (privately); the head is never cached (docs/API.md, "Caching").
/// </summary>
public readonly record struct DocumentPoint
{
    private DocumentPoint(long? version, DateTimeOffset? time)
    {
        Version = version;
        Time = time;
    }

    /// <summary>The head: the latest committed version (the default value).</summary>
    public static DocumentPoint Head => default;

    /// <summary>The explicit version asked for, or null.</summary>
    public long? Version { get; }

    /// <summary>The time asked for, or null: the last version committed at or before it.</summary>
    public DateTimeOffset? Time { get; }

    /// <summary>True for <see cref="Head"/>.</summary>
    public bool IsHead => Version is null && Time is null;

    /// <summary>The document at <paramref name="version"/> (0 is the empty document before the first op).</summary>
    public static DocumentPoint AtVersion(long version)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(version);
        return new DocumentPoint(version, null);
    }

    /// <summary>The document as it was at <paramref name="time"/>: the version just before the first op committed after it.</summary>
    public static DocumentPoint AtTime(DateTimeOffset time) => new(null, time);

    /// <summary>The query parameter naming this point (<c>version=N</c>, <c>at=RFC 3339</c>), or null for the head.</summary>
    internal string? Query => Version is { } version
        ? "version=" + version.ToString(CultureInfo.InvariantCulture)
        : Time is { } time ? "at=" + Uri.EscapeDataString(time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture)) : null;

    /// <inheritdoc/>
    public override string ToString() => Version is { } v ? $"version {v}" : Time is { } t ? $"at {t:O}" : "head";
}
