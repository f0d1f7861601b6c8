using System.Diagnostics.CodeAnalysis;
using System.Text;
using Collab.Engine.Sequencing;

namespace Collab.Server.Storage;

/// <summary>
/// Checks records before they reach a store. Both stores keep ids in text columns, and PostgreSQL text cannot hold
/// U+0000: a record that can never be written would otherwise fail its batch forever (a poison batch stalls the
/// group-commit stage), so such input is rejected at the door instead.
/// </summary>
internal static class StorageValidation
{
    /// <summary>Longest accepted document id, client id or author, in UTF-16 code units.</summary>
    public const int MaxIdLength = 512;

    /// <summary>9999-12-31T23:59:59.999Z in Unix milliseconds.</summary>
    public const long MaxTimestampMs = 253_402_300_799_999;

    /// <summary>Strict UTF-8: an unpaired surrogate in snapshot text is a bug upstream, not something to store as U+FFFD.</summary>
    public static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static void ValidateRecord(in OpRecord record)
    {
        ValidateDocId(record.DocId);
        if (record.Version < 1)
        {
            ThrowArgument($"Version must be at least 1 (was {record.Version}) for document '{record.DocId}'.");
        }

        ValidateId(record.ClientId, "Client id", allowNull: false);
        ValidateId(record.Author, "Author", allowNull: true);
        ValidateTimestamp(record.TimestampMs);
    }

    /// <summary>Timestamps are Unix milliseconds that must fit a UTC <see cref="DateTime"/> (PostgreSQL stores timestamptz).</summary>
    public static void ValidateTimestamp(long timestampMs)
    {
        if (timestampMs is < 0 or > MaxTimestampMs)
        {
            ThrowArgument($"Timestamp {timestampMs} ms is outside 1970-01-01 .. 9999-12-31.");
        }
    }

    public static DateTime ToUtcDateTime(long timestampMs) => DateTime.UnixEpoch.AddMilliseconds(timestampMs);

    public static long ToUnixMilliseconds(DateTime utc) => (utc.Ticks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMillisecond;

    /// <summary>
    /// The array behind <paramref name="memory"/> when it spans the whole array (the sequencer's encode-once buffers
    /// usually do), else a copy: the ADO.NET providers bind byte[].
    /// </summary>
    public static byte[] AsArray(ReadOnlyMemory<byte> memory) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(memory, out var segment)
        && segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : memory.ToArray();

    public static void ValidateBatch(IReadOnlyList<OpRecord> batch)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            var record = batch[i];
            ValidateRecord(record);
        }
    }

    public static void ValidateSnapshot(SnapshotRecord snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ValidateDocId(snapshot.DocId);
        if (snapshot.Version < 1)
        {
            ThrowArgument($"Snapshot version must be at least 1 (was {snapshot.Version}) for document '{snapshot.DocId}'.");
        }

        ArgumentNullException.ThrowIfNull(snapshot.Text);
        ValidateTimestamp(snapshot.TimestampMs);
    }

    public static void ValidateDocId(string docId) => ValidateId(docId, "Document id", allowNull: false);

    /// <summary>Snapshot text as strict UTF-8 (stored as bytes: document text may legitimately contain U+0000).</summary>
    public static byte[] EncodeText(string text)
    {
        try
        {
            return StrictUtf8.GetBytes(text);
        }
        catch (EncoderFallbackException ex)
        {
            throw new ArgumentException("Snapshot text is not well-formed UTF-16 (unpaired surrogate).", nameof(text), ex);
        }
    }

    public static string DecodeText(ReadOnlySpan<byte> utf8) => StrictUtf8.GetString(utf8);

    private static void ValidateId(string? value, string what, bool allowNull)
    {
        if (value is null)
        {
            if (!allowNull)
            {
                ThrowArgument($"{what} is required.");
            }

            return;
        }

        if (value.Length == 0 && !allowNull)
        {
            ThrowArgument($"{what} must not be empty.");
        }

        if (value.Length > MaxIdLength)
        {
            ThrowArgument($"{what} is longer than {MaxIdLength} characters.");
        }

        if (value.Contains('\0', StringComparison.Ordinal))
        {
            ThrowArgument($"{what} must not contain U+0000.");
        }

        if (value.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF') && !IsWellFormedUtf16(value))
        {
            ThrowArgument($"{what} is not well-formed UTF-16 (unpaired surrogate).");
        }
    }

    private static bool IsWellFormedUtf16(string value)
    {
        var span = value.AsSpan();
        while (!span.IsEmpty)
        {
            if (Rune.DecodeFromUtf16(span, out _, out var consumed) != System.Buffers.OperationStatus.Done)
            {
                return false;
            }

            span = span[consumed..];
        }

        return true;
    }

    [DoesNotReturn]
    private static void ThrowArgument(string message) => throw new ArgumentException(message);
}
