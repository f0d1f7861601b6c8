using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using Collab.Engine.Sequencing;
using Microsoft.AspNetCore.Connections.Features;

namespace Collab.Server.Transport;

/// <summary>
/// The write side: a ring of encoded frames guarded by <c>_sync</c>, drained by one worker at a time, and the outbound
/// bound (a peer that does not read is a slow consumer). Two ways out:
/// <list type="bullet">
/// <item><b>Direct</b> (a plain TCP connection on Kestrel's socket transport): after the upgrade only this drain writes to
/// the connection, so the queued frames go straight to the socket in one non-blocking gathered send (one <c>sendmsg</c>
/// for up to <see cref="MaxFramesPerSend"/> frames) on the thread that drains: no copy into a pipe, no hop to
/// Kestrel's send loop. When the kernel's send buffer is full (EWOULDBLOCK, or a partial write) the unsent tail is sent
/// by an asynchronous socket send that completes when the peer has read enough, and the drain resumes after it, so
/// frames are never reordered and a Close frame never lands inside another frame.</item>
/// <item><b>Pipe</b> (TLS, the HTTP pipeline's upgrade, in-memory tests): frames are copied into the connection's pipe
/// with one flush per batch (write coalescing) and backpressure from the pipe's pause threshold.</item>
/// </list>
/// Kestrel still owns the socket either way: it shuts it down and disposes it when the connection ends or is aborted (a
/// send racing that fails as a connection failure).
/// </summary>
internal sealed partial class TransportConnection
{
    /// <summary>
    /// Frames per gathered send: the runtime puts up to 8 <c>iovec</c>s on the stack (Linux's <c>UIO_FASTIOV</c>) and
    /// allocates arrays for more, so a longer queue is sent as several <c>sendmsg</c>s of 8.
    /// </summary>
    private const int MaxFramesPerSend = 8;

    // The batch being sent and its segments: one per thread (a drain sends synchronously and keeps neither past the call).
    [ThreadStatic]
    private static OutboundMessage?[]? t_sendBatch;
    [ThreadStatic]
    private static List<ArraySegment<byte>>? t_sendSegments;

    /// <summary>The connection's socket once output goes to it directly (see the class summary); null on the pipe path.</summary>
    private Socket? _socket;

    /// <summary>Whether frames go straight to the socket (true) or through the connection's pipe (for tests and diagnostics).</summary>
    internal bool WritesToSocket => _socket is not null;

    /// <summary>Bytes queued and not yet taken by a drain (for tests).</summary>
    internal long QueuedBytes
    {
        get
        {
            lock (_sync)
            {
                return _queuedBytes;
            }
        }
    }

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
        // A direct drain never waits (a non-blocking send; a full send buffer leaves the rest to an asynchronous send), so
        // the thread that queued the frame sends it: no thread-pool work item and no wake-up per frame. The pipe path's
        // flush can wait on the peer, so it keeps its own work item.
        if (_services.InlineOutput || _socket is not null)
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
        if (_socket is not null)
        {
            DrainToSocket();
            return;
        }

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
                    drained = EndDrainLocked();
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

    /// <summary>Ends the drain (under <c>_sync</c>): returns whoever waits for the queue to empty (<see cref="WaitForDrainAsync"/>), to be completed outside the lock.</summary>
    private TaskCompletionSource? EndDrainLocked()
    {
        _draining = false;
        TaskCompletionSource? drained = _drained;
        _drained = null;
        return drained;
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

    /// <summary>
    /// Writes the 101 response at the upgrade and chooses the output path: on a plain TCP connection of Kestrel's socket
    /// transport the response is sent straight to the socket, and from then on so is every frame (<see cref="DrainToSocket"/>).
    /// Returns true when the pipe holds bytes to flush (the pipe path, or the rare 101 that did not fit in the socket's
    /// send buffer, whose rest then goes through the pipe and the connection stays on the pipe path).
    /// </summary>
    private bool WriteSwitchingProtocols(string key, string? subProtocol)
    {
        Socket? socket = DirectSocket();
        if (socket is null)
        {
            HttpResponseWriter.WriteSwitchingProtocols(_output, key, subProtocol);
            return true;
        }

        int length = HttpResponseWriter.SwitchingProtocolsLength(subProtocol);
        byte[]? rented = length > 512 ? ArrayPool<byte>.Shared.Rent(length) : null;
        Span<byte> response = rented ?? stackalloc byte[512];
        response = response[..HttpResponseWriter.FormatSwitchingProtocols(response, key, subProtocol)];
        try
        {
            int sent;
            try
            {
                // Non-blocking: Kestrel's socket is registered with epoll and only ever used asynchronously by Kestrel,
                // and a synchronous send must never wait on a peer.
                socket.Blocking = false;
                sent = socket.Send(response, SocketFlags.None, out _);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or SocketException)
            {
                sent = 0; // gone already: the pipe path below fails the same way the flush always did
            }

            if (sent == response.Length)
            {
                _socket = socket;
                return false;
            }

            // Nothing has gone through the pipe since the request, so its bytes follow the ones sent here in order.
            _output.Write(response[sent..]);
            return true;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>The socket to write to directly: a Kestrel socket connection without TLS, served by the raw path.</summary>
    private Socket? DirectSocket()
    {
        if (_context is null || _upgradeResponse is not null || !string.IsNullOrEmpty(_options.CertificatePath)
            || _context.Features.Get<ITlsHandshakeFeature>() is not null)
        {
            return null;
        }

        return _context.Features.Get<IConnectionSocketFeature>()?.Socket;
    }

    /// <summary>
    /// The direct drain: takes up to <see cref="MaxFramesPerSend"/> queued frames at a time and sends them in one
    /// non-blocking gathered send. A frame is released only once the kernel has all of it; when the send buffer is full
    /// the unsent tail goes to <see cref="SendTailAsync"/>, which resumes the drain once it is out. Runs on one thread
    /// at a time (<c>_draining</c>).
    /// </summary>
    private void DrainToSocket()
    {
        Socket socket = _socket!;
        OutboundMessage?[] batch = t_sendBatch ??= new OutboundMessage?[MaxFramesPerSend];
        List<ArraySegment<byte>> segments = t_sendSegments ??= new List<ArraySegment<byte>>(MaxFramesPerSend);
        Span<OpTimestamps> acks = stackalloc OpTimestamps[MaxFramesPerSend];
        while (true)
        {
            int count = 0;
            TaskCompletionSource? drained = null;
            lock (_sync)
            {
                while (count < MaxFramesPerSend && DequeueLocked() is OutboundMessage message)
                {
                    if (_outputFailed)
                    {
                        message.Release();
                    }
                    else
                    {
                        batch[count++] = message;
                    }
                }

                if (count == 0)
                {
                    drained = EndDrainLocked();
                }
            }

            if (count == 0)
            {
                drained?.TrySetResult();
                return;
            }

            int sent;
            SocketError error;
            try
            {
                if (count == 1)
                {
                    // One frame (most drains below saturation): a plain send, its buffer pinned by `fixed` rather than
                    // by the GC handle the gathered send takes per segment.
                    sent = socket.Send(batch[0]!.Frame.Span, SocketFlags.None, out error);
                }
                else
                {
                    for (int i = 0; i < count; i++)
                    {
                        segments.Add(batch[i]!.FrameSegment);
                    }

                    sent = socket.Send(segments, SocketFlags.None, out error);
                }
            }
            catch (ObjectDisposedException)
            {
                // Kestrel disposed the socket: the connection was aborted or has ended.
                sent = 0;
                error = SocketError.OperationAborted;
            }

            segments.Clear(); // the thread keeps no reference to the frames' buffers
            Volatile.Write(ref _bytesOut, _bytesOut + sent);
            Volatile.Write(ref _flushes, _flushes + 1);

            // Release what the kernel has whole; stop at the first frame it does not.
            int done = 0;
            int ackCount = 0;
            int offset = sent;
            while (done < count && offset >= batch[done]!.FrameLength)
            {
                OutboundMessage message = batch[done]!;
                batch[done++] = null;
                offset -= message.FrameLength;
                if (message.Timestamps.IsSet)
                {
                    acks[ackCount++] = message.Timestamps;
                }

                message.Release();
            }

            Volatile.Write(ref _framesOut, _framesOut + done);
            Hosting.LatencyMetrics.ObserveWritten(acks[..ackCount], System.Diagnostics.Stopwatch.GetTimestamp());
            if (done == count)
            {
                continue;
            }

            if (error is not (SocketError.Success or SocketError.WouldBlock))
            {
                // The peer or Kestrel ended the connection: drop the rest, as a failed flush does on the pipe path.
                _outputFailed = true;
                for (int i = done; i < count; i++)
                {
                    batch[i]!.Release();
                    batch[i] = null;
                }

                continue;
            }

            // The kernel's send buffer is full: the unsent tail (the rest of one frame, then whole frames) is sent
            // asynchronously, and the drain goes on after it. Frames queued meanwhile wait in the ring, counted
            // against the outbound bound.
            var tail = new OutboundMessage[count - done];
            for (int i = done; i < count; i++)
            {
                tail[i - done] = batch[i]!;
                batch[i] = null;
            }

            TransportMetrics.SendBufferFull.Inc();
            SendTailAsync(socket, tail, offset).Forget(_services.Logger, "socket send");
            return;
        }
    }

    /// <summary>
    /// Sends the frames a full send buffer left over, from <paramref name="offset"/> in the first, each as one
    /// asynchronous send that completes when the kernel has taken all of it; then resumes the drain. Only for a
    /// peer that reads more slowly than the server writes, so its allocations are off the steady path.
    /// </summary>
    private async Task SendTailAsync(Socket socket, OutboundMessage[] tail, int offset)
    {
        for (int i = 0; i < tail.Length; i++)
        {
            OutboundMessage message = tail[i];
            try
            {
                if (!_outputFailed)
                {
                    ReadOnlyMemory<byte> frame = message.Frame[offset..];
                    await socket.SendAsync(frame, SocketFlags.None).ConfigureAwait(false);
                    Volatile.Write(ref _bytesOut, _bytesOut + frame.Length);
                    Volatile.Write(ref _framesOut, _framesOut + 1);
                    Volatile.Write(ref _flushes, _flushes + 1);
                    if (message.Timestamps.IsSet)
                    {
                        Hosting.LatencyMetrics.ObserveWritten(message.Timestamps, System.Diagnostics.Stopwatch.GetTimestamp());
                    }
                }
            }
            catch (Exception ex) when (ex is SocketException || IsConnectionFailure(ex))
            {
                _outputFailed = true;
            }
            finally
            {
                offset = 0;
                message.Release();
            }
        }

        DrainToSocket();
    }
}
