using Microsoft.Extensions.Options;

namespace Collab.Server.Api;

/// <summary>The HTTP API under <c>/v1</c> (configuration section <c>Api</c>); see docs/API.md.</summary>
public sealed class ApiOptions
{
    public const string Section = "Api";

    /// <summary>Serve the HTTP API on the public port. Default true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// K: the most ops a read of a past version (<c>?version=</c>, <c>?at=</c>) replays on top of the nearest stored
    /// snapshot at or below it. The document host writes a snapshot every <c>Storage:SnapshotEveryOps</c> (up to 1.5 times
    /// that, per document) and every snapshot is kept by default, so every version is within about 1,500 ops of one;
    /// a version further from any kept snapshot (<c>Storage:SnapshotsToKeep</c> set) is answered 422. At least twice
    /// Storage:SnapshotEveryOps. Unset (default): 5,000, or twice Storage:SnapshotEveryOps when that is more.
    /// </summary>
    public int? MaxReplayOps { get; set; }

    /// <summary>K as in force: <see cref="MaxReplayOps"/>, or its default for the snapshot interval (set by <see cref="Validate"/>).</summary>
    public int ReplayBound { get; private set; } = 5_000;

    /// <summary>Ops or documents in one page when the request names no <c>limit</c>. Default 100.</summary>
    public int DefaultPageSize { get; set; } = 100;

    /// <summary>Largest <c>limit</c> of one page of ops or documents (NDJSON streams the whole range in pages of this size). Default 1,000.</summary>
    public int MaxPageSize { get; set; } = 1_000;

    /// <summary>Largest request body (a created document's initial content, a submitted op); larger ones get 413. Default 8 MiB.</summary>
    public long MaxRequestBodyBytes { get; set; } = 8L * 1024 * 1024;

    /// <summary>Throws <see cref="OptionsValidationException"/> listing every invalid setting.</summary>
    public void Validate(int snapshotEveryOps)
    {
        var errors = new SettingErrors(Section, typeof(ApiOptions));
        if (MaxReplayOps < 2L * snapshotEveryOps)
        {
            errors.Add(nameof(MaxReplayOps), $"({MaxReplayOps}) must be at least twice Storage:SnapshotEveryOps ({snapshotEveryOps}): versions between two snapshots would be unreadable.");
        }

        ReplayBound = MaxReplayOps ?? (int)Math.Min(int.MaxValue, Math.Max(5_000, 2L * snapshotEveryOps));

        if (DefaultPageSize < 1 || MaxPageSize < DefaultPageSize)
        {
            errors.Add(nameof(DefaultPageSize), $"must be positive and at most {nameof(MaxPageSize)}.");
        }

        if (MaxRequestBodyBytes < 1024)
        {
            errors.Add(nameof(MaxRequestBodyBytes), "must be at least 1 KiB.");
        }

        errors.ThrowIfAny();
    }
}
