using System.Buffers;
using System.IO.Pipelines;

namespace Collab.Server.Transport;

/// <summary>
/// The write side: a ring of encoded frames guarded by <c>_sync</c>, drained by one worker at a time into the pipe
/// with one flush per batch (write coalescing), the outbound bound (a peer that does not read is a slow consumer) and
/// backpressure from the pipe's pause threshold.
/// </summary>
internal sealed partial class TransportConnection
{
    // Outbound: a ring of frame references guarded by _sync, drained by one worker at a time.
    private OutboundMessage?[]? _queue;
    private int _queueHead;
    private int _queueCount;
    private long _queuedBytes;
    private bool _draining;
    private bool _drainDeferred;
    private int _batchThread;
    private bool _outputFailed;
    private ValueTask<FlushResult> _pendingFlush;
    private Action? _onFlushCompleted;
    private TaskCompletionSource? _drained;

    /// <inheritdoc />
    public bool TrySend(OutboundMessage message)
    {
        if (!message.IsCompleted)
        {
            ThrowHelper.ThrowInvalidOperation("Complete() the message before sending it.");
        }

        bool overBound;
        bool schedule = false;
        lock (_sync)
        {
            if (_phase != PhaseOpen)
            {
                return false;
            }

            overBound = _queuedBytes + message.FrameLength > _options.MaxOutboundBytesPerConnection;
            if (!overBound)
            {
                message.AddReference();
                schedule = EnqueueLocked(message);
            }
        }

        if (overBound)
        {
            CloseSlowConsumer();
            return false;
        }

        if (schedule)
        {
            ScheduleDrain();
        }

        return true;
    }

    private bool TryEnqueueControl(OutboundMessage message, bool countTowardBound)
    {
        bool schedule;
        bool slow = false;
        lock (_sync)
        {
            if (_phase is not (PhaseOpen or PhaseClosing) || _closeSent && message.Opcode != WebSocketOpcode.Close)
            {
                // After our Close nothing else may follow it on the wire (5.5.1).
                message.Dispose();
                return false;
            }

            if (countTowardBound && _queuedBytes + message.FrameLength > _options.MaxOutboundBytesPerConnection)
            {
                slow = true;
                schedule = false;
            }
            else
            {
                schedule = EnqueueLocked(message);
            }
        }

        if (slow)
        {
            message.Dispose();
            CloseSlowConsumer();
            return false;
        }

        if (schedule)
        {
            ScheduleDrain();
        }

        return true;
    }

    /// <summary>Queues our Close reply (phase already moved to Closing by the caller).</summary>
    private void EnqueueFinal(OutboundMessage close)
    {
        bool schedule;
        lock (_sync)
        {
            schedule = EnqueueLocked(close);
        }

        if (schedule)
        {
            ScheduleDrain();
        }
    }

    /// <summary>Appends a referenced message; returns true when the caller must schedule the drain worker.</summary>
    private bool EnqueueLocked(OutboundMessage message)
    {
        OutboundMessage?[]? queue = _queue;
        if (queue is null || _queueCount == queue.Length)
        {
            var larger = new OutboundMessage?[queue is null ? 8 : queue.Length * 2];
            for (int i = 0; i < _queueCount; i++)
            {
                larger[i] = queue![(_queueHead + i) % queue.Length];
            }

            _queue = queue = larger;
            _queueHead = 0;
        }

        queue[(_queueHead + _queueCount) % queue.Length] = message;
        _queueCount++;
        _queuedBytes += message.FrameLength;
        if (_draining)
        {
            return false;
        }

        _draining = true;
        if (_batchThread == Environment.CurrentManagedThreadId)
        {
            // Queued by the read loop itself while it processes a batch: drained once when the batch ends.
            _drainDeferred = true;
            return false;
        }

        return true;
    }

    /// <summary>
    /// The read loop starts processing frames synchronously on this thread: sends it makes are coalesced
    /// until <see cref="EndBatch"/> instead of each scheduling a drain.
    /// </summary>
    private void BeginBatch() => Volatile.Write(ref _batchThread, Environment.CurrentManagedThreadId);

    /// <summary>Ends coalescing and drains inline on the reader's thread: no thread hop for replies.</summary>
    private void EndBatch()
    {
        // No lock: only the batch thread itself sets _drainDeferred (EnqueueLocked matches its thread id).
        Volatile.Write(ref _batchThread, 0);
        if (_drainDeferred)
        {
            _drainDeferred = false;
            Drain();
        }
    }

    private OutboundMessage? DequeueLocked()
    {
        if (_queueCount == 0)
        {
            return null;
        }

        OutboundMessage?[] queue = _queue!;
        OutboundMessage message = queue[_queueHead]!;
        queue[_queueHead] = null;
        _queueHead = (_queueHead + 1) % queue.Length;
        _queueCount--;
        _queuedBytes -= message.FrameLength;
        if (_queueCount == 0)
        {
            _queueHead = 0;
            if (queue.Length > 64)
            {
                _queue = null; // a burst grew the ring; do not keep it on an idle connection
            }
        }

        return message;
    }

    private void ClearQueueLocked()
    {
        while (DequeueLocked() is OutboundMessage message)
        {
            message.Release();
        }
    }

    private void ScheduleDrain()
    {
        if (_services.InlineOutput)
        {
            Drain();
        }
        else
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: true);
        }
    }

    /// <summary>
    /// Copies every queued frame into the socket pipe and flushes once per batch: frames queued while a
    /// flush is in progress go out together in the next one (write coalescing). Runs on one thread at a time.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2012", Justification = "Each flush is consumed once, by ObserveFlush, and only after it completed (IsCompleted, or from its OnCompleted callback).")]
    private void Drain()
    {
        // Ack frames' op timestamps, observed once their batch is flushed (Hosting.LatencyMetrics); 0 B per op.
        Span<Engine.Sequencing.OpTimestamps> acks = stackalloc Engine.Sequencing.OpTimestamps[8];
        while (true)
        {
            int ackCount = 0;
            long frames = 0;
            long bytes = 0;
            TaskCompletionSource? drained = null;
            bool idle = false;
            lock (_sync)
            {
                // One lock per batch. Senders wait at most for the copy of frames already encoded; the
                // flush (the part that can wait on the socket) happens outside the lock.
                while (DequeueLocked() is OutboundMessage message)
                {
                    if (!_outputFailed)
                    {
                        try
                        {
                            ReadOnlyMemory<byte> frame = message.Frame;
                            _output.Write(frame.Span);
                            frames++;
                            bytes += frame.Length;
                            if (message.Timestamps.IsSet)
                            {
                                acks[ackCount++] = message.Timestamps;
                                if (ackCount == acks.Length)
                                {
                                    Hosting.LatencyMetrics.ObserveWritten(acks, System.Diagnostics.Stopwatch.GetTimestamp());
                                    ackCount = 0;
                                }
                            }
                        }
                        catch (Exception ex) when (IsConnectionFailure(ex))
                        {
                            _outputFailed = true;
                        }
                    }

                    message.Release();
                }

                if (frames == 0 || _outputFailed)
                {
                    _draining = false;
                    drained = _drained;
                    _drained = null;
                    idle = true;
                }
            }

            if (idle)
            {
                drained?.TrySetResult();
                return;
            }

            Volatile.Write(ref _framesOut, _framesOut + frames);
            Volatile.Write(ref _bytesOut, _bytesOut + bytes);
            Volatile.Write(ref _flushes, _flushes + 1);
            ValueTask<FlushResult> flush;
            try
            {
                flush = _output.FlushAsync();
            }
            catch (Exception ex) when (IsConnectionFailure(ex))
            {
                _outputFailed = true;
                continue;
            }

            if (!flush.IsCompleted)
            {
                // Backpressure: the socket pipe is above its pause threshold. Resume when it drains;
                // frames queued meanwhile are coalesced into the next batch.
                _pendingFlush = flush;
                Hosting.LatencyMetrics.ObserveWritten(acks[..ackCount], System.Diagnostics.Stopwatch.GetTimestamp());
                flush.GetAwaiter().UnsafeOnCompleted(_onFlushCompleted ??= OnFlushCompleted);
                return;
            }

            ObserveFlush(flush);
            Hosting.LatencyMetrics.ObserveWritten(acks[..ackCount], System.Diagnostics.Stopwatch.GetTimestamp());
        }
    }

    private void OnFlushCompleted()
    {
        ValueTask<FlushResult> flush = _pendingFlush;
        _pendingFlush = default;
        ObserveFlush(flush);
        Drain();
    }

    private void ObserveFlush(ValueTask<FlushResult> flush)
    {
        try
        {
            FlushResult result = flush.GetAwaiter().GetResult();
            if (result.IsCanceled || result.IsCompleted)
            {
                _outputFailed = true; // aborted, or the socket's reader side is gone
            }
        }
        catch (Exception ex) when (IsConnectionFailure(ex))
        {
            _outputFailed = true;
        }
    }

    private Task WaitForDrainAsync()
    {
        lock (_sync)
        {
            if (!_draining && _queueCount == 0)
            {
                return Task.CompletedTask;
            }

            _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _drained.Task;
        }
    }

    void IThreadPoolWorkItem.Execute() => Drain();
}
