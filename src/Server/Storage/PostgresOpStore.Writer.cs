using System.Collections.Concurrent;
using Collab.Engine.Sequencing;
using Npgsql;

namespace Collab.Server.Storage;

/// <summary>
/// The append hot path on a thread of its own: a batch that is one autocommit COPY (see
/// <see cref="PostgresOpStore.AppendAsync"/>) is written with Npgsql's synchronous API by a dedicated thread, so each
/// round trip to the database wakes that thread directly. Written with the async API, every await of a batch (the
/// COPY's start, each 64 KB flush, its completion) resumed as a work item queued behind the socket and broadcast work of
/// a busy thread pool: at 10,000 ops/s in small rooms the backend spent most of a batch in <c>ClientRead</c>, waiting for
/// the server to go on with the COPY (docs/PERFORMANCE.md, "Durable PostgreSQL: where the commit time goes").
/// </summary>
public sealed partial class PostgresOpStore
{
    private readonly Lock _writerGate = new();
    private BlockingCollection<AppendWork>? _writerQueue;
    private Thread? _writerThread;

    /// <summary>What the writer thread did with a batch.</summary>
    private enum DirectAppend
    {
        /// <summary>Committed.</summary>
        Written,

        /// <summary>A unique violation: the async path sorts out which rows exist and writes the rest.</summary>
        Clashed,
    }

    /// <summary>
    /// Writes the batch (later ops only, single node, binary COPY) on the writer thread. A failure other than a unique
    /// violation (the database down, a broken connection) is thrown to the caller, whose retry takes over.
    /// </summary>
    private Task<DirectAppend> AppendOnWriterThreadAsync(IReadOnlyList<OpRecord> batch, CancellationToken cancellationToken)
    {
        var work = new AppendWork(batch, cancellationToken);
        var queue = WriterQueue();
        try
        {
            queue.Add(work, cancellationToken);
        }
        catch (InvalidOperationException)
        {
            // Disposed: the caller is shutting down with us.
            throw new ObjectDisposedException(nameof(PostgresOpStore));
        }

        return work.Completion.Task;
    }

    private BlockingCollection<AppendWork> WriterQueue()
    {
        if (Volatile.Read(ref _writerQueue) is { } queue)
        {
            return queue;
        }

        lock (_writerGate)
        {
            ObjectDisposedException.ThrowIf(_writerThread is not null && _writerQueue is null, this);
            if (_writerQueue is null)
            {
                var created = new BlockingCollection<AppendWork>(new ConcurrentQueue<AppendWork>());
                _writerThread = new Thread(() => RunWriter(created)) { IsBackground = true, Name = "collab-pg-append" };
                _writerThread.Start();
                Volatile.Write(ref _writerQueue, created);
            }

            return _writerQueue;
        }
    }

    private void RunWriter(BlockingCollection<AppendWork> queue)
    {
        foreach (var work in queue.GetConsumingEnumerable())
        {
            if (work.CancellationToken.IsCancellationRequested)
            {
                work.Completion.TrySetCanceled(work.CancellationToken);
                continue;
            }

            try
            {
                work.Completion.TrySetResult(CopyDirect(work.Batch));
            }
            catch (Exception ex)
            {
                work.Completion.TrySetException(ex);
            }
        }
    }

    /// <summary>One autocommit binary COPY with Npgsql's blocking API; disposing the stream ends it and commits.</summary>
    private DirectAppend CopyDirect(IReadOnlyList<OpRecord> batch)
    {
        using var connection = _dataSource.OpenConnection();
        try
        {
            using var stream = connection.BeginRawBinaryCopy(PgCopyWriter.OpsCopyCommand);
            using var writer = new PgCopyWriter(stream);
            for (var i = 0; i < batch.Count; i++)
            {
                writer.WriteOp(batch[i], epoch: null);
            }

            writer.Complete();
        }
        catch (PostgresException ex) when (IsOpLogClash(ex))
        {
            return DirectAppend.Clashed;
        }

        return DirectAppend.Written;
    }

    private static bool IsOpLogClash(PostgresException ex) =>
        ex.SqlState == PostgresErrorCodes.UniqueViolation && ex.TableName is not null && ex.TableName.StartsWith("ops", StringComparison.Ordinal);

    /// <summary>Ends the writer thread after the batches already handed to it.</summary>
    private void StopWriter()
    {
        Thread? thread;
        BlockingCollection<AppendWork>? queue;
        lock (_writerGate)
        {
            thread = _writerThread;
            queue = _writerQueue;
            _writerQueue?.CompleteAdding();
            _writerQueue = null;
        }

        thread?.Join();
        queue?.Dispose();
    }

    private sealed class AppendWork(IReadOnlyList<OpRecord> batch, CancellationToken cancellationToken)
    {
        public IReadOnlyList<OpRecord> Batch { get; } = batch;

        public CancellationToken CancellationToken { get; } = cancellationToken;

        // Asynchronous continuations: the caller's code must not run on (and hold up) the writer thread.
        public TaskCompletionSource<DirectAppend> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
