using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Collab.Engine.Sequencing;

namespace Collab.Server.Storage;

/// <summary>
/// Encodes op records straight into PostgreSQL's binary COPY format (a pooled buffer flushed to the raw COPY stream),
/// instead of one typed write call per field: the per-row cost drops to a few span writes.
/// </summary>
/// <remarks>
/// Layout (https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format"): an 11-byte signature, int32 flags,
/// int32 header-extension length; per row an int16 field count, then per field an int32 byte length (-1 for NULL) and
/// the value in the type's binary send format (text: UTF-8; int8: big-endian; bytea: raw; timestamptz: int64
/// microseconds since 2000-01-01 UTC); an int16 -1 trailer.
/// </remarks>
internal sealed class PgCopyWriter : IDisposable
{
    /// <summary>The column list the rows are encoded for.</summary>
    public const string OpsCopyCommand = "COPY ops (doc_id, version, client_id, client_seq, author, op, ts, epoch) FROM STDIN (FORMAT BINARY)";

    private const int BufferSize = 64 * 1024;
    private const short OpsFieldCount = 8;
    private const long PostgresEpochUnixMs = 946_684_800_000;

    /// <summary>"PGCOPY\n\377\r\n\0" (not a UTF-8 literal: 0xFF is a raw byte).</summary>
    private static ReadOnlySpan<byte> Signature => [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0];

    private readonly Stream _stream;
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
    private int _length;

    public PgCopyWriter(Stream stream)
    {
        _stream = stream;
        Signature.CopyTo(_buffer);
        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(11), 0);
        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(15), 0);
        _length = 19;
    }

    /// <summary>
    /// Appends one row, with the lease epoch it is written under (cluster mode; null on a single node); flushes to the
    /// stream when the buffer cannot hold it.
    /// </summary>
    public ValueTask WriteOpAsync(in OpRecord record, long? epoch, CancellationToken cancellationToken)
    {
        // Ids are validated (at most MaxIdLength UTF-16 units, so at most 3 bytes each in UTF-8).
        var op = record.Op.Span;
        if (_length + FixedRowBytes + op.Length <= _buffer.Length)
        {
            Encode(record, epoch);
            return ValueTask.CompletedTask;
        }

        return WriteOpSlowAsync(record, epoch, cancellationToken);
    }

    /// <summary>Writes the trailer and everything buffered.</summary>
    public async ValueTask CompleteAsync(CancellationToken cancellationToken)
    {
        if (_length + 2 > _buffer.Length)
        {
            await FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        BinaryPrimitives.WriteInt16BigEndian(_buffer.AsSpan(_length), -1);
        _length += 2;
        await FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Everything of a row but the op bytes, at most: field count, 8 lengths, 4 int64s, 3 ids.</summary>
    private static int FixedRowBytes => 2 + (8 * 4) + (4 * 8) + (3 * 3 * StorageValidation.MaxIdLength);

    private async ValueTask WriteOpSlowAsync(OpRecord record, long? epoch, CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken).ConfigureAwait(false);
        if (FixedRowBytes + record.Op.Length <= _buffer.Length)
        {
            Encode(record, epoch);
            return;
        }

        // An op larger than the buffer: everything before the op bytes goes through the buffer, the op itself is
        // written to the stream directly.
        EncodeUpToOp(record);
        await FlushAsync(cancellationToken).ConfigureAwait(false);
        await _stream.WriteAsync(record.Op, cancellationToken).ConfigureAwait(false);
        EncodeTimestamp(record.TimestampMs);
        EncodeEpoch(epoch);
    }

    private void Encode(in OpRecord record, long? epoch)
    {
        EncodeUpToOp(record);
        record.Op.Span.CopyTo(_buffer.AsSpan(_length));
        _length += record.Op.Length;
        EncodeTimestamp(record.TimestampMs);
        EncodeEpoch(epoch);
    }

    private void EncodeEpoch(long? epoch)
    {
        if (epoch is { } value)
        {
            EncodeInt64(value);
        }
        else
        {
            BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(_length), -1);
            _length += 4;
        }
    }

    private void EncodeUpToOp(in OpRecord record)
    {
        var span = _buffer.AsSpan();
        BinaryPrimitives.WriteInt16BigEndian(span[_length..], OpsFieldCount);
        _length += 2;
        EncodeText(record.DocId);
        EncodeInt64(record.Version);
        EncodeText(record.ClientId);
        EncodeInt64(record.ClientSeq);
        if (record.Author is null)
        {
            BinaryPrimitives.WriteInt32BigEndian(span[_length..], -1);
            _length += 4;
        }
        else
        {
            EncodeText(record.Author);
        }

        BinaryPrimitives.WriteInt32BigEndian(span[_length..], record.Op.Length);
        _length += 4;
    }

    private void EncodeText(string value)
    {
        var written = Encoding.UTF8.GetBytes(value, _buffer.AsSpan(_length + 4));
        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(_length), written);
        _length += 4 + written;
    }

    private void EncodeInt64(long value)
    {
        var span = _buffer.AsSpan(_length);
        BinaryPrimitives.WriteInt32BigEndian(span, 8);
        BinaryPrimitives.WriteInt64BigEndian(span[4..], value);
        _length += 12;
    }

    private void EncodeTimestamp(long unixMs) => EncodeInt64((unixMs - PostgresEpochUnixMs) * 1000);

    private async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        if (_length == 0)
        {
            return;
        }

        await _stream.WriteAsync(_buffer.AsMemory(0, _length), cancellationToken).ConfigureAwait(false);
        _length = 0;
    }
}
