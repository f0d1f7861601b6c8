namespace Collab.Server.Transport;

/// <summary>The close handshake and teardown: server-initiated closes (application, slow consumer, shutdown), then the end of the connection.</summary>
internal sealed partial class TransportConnection
{
    /// <inheritdoc />
    public void Close(ushort statusCode, string reason)
    {
        if (!WebSocketCloseCodes.IsValidOnWire(statusCode))
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(statusCode), "Not a close code that may be sent (RFC 6455 section 7.4).");
        }

        StartClose(statusCode, reason, ConnectionEndReason.ServerClosed, _services.CloseTimeoutMs, dropQueued: false);
    }

    private void CloseSlowConsumer()
    {
        // The peer does not read fast enough: drop what is queued rather than grow server memory. 1013 (try again
        // later), not 1008: a client on a slow link did nothing wrong and should reconnect and resume.
        TransportMetrics.SlowConsumerCloses.Inc();
        TransportLog.SlowConsumer(_services.Logger, Id, Volatile.Read(ref _queuedBytes), _options.MaxOutboundBytesPerConnection);
        StartClose(WebSocketCloseCodes.TryAgainLater, "slow consumer", ConnectionEndReason.SlowConsumer, _services.CloseTimeoutMs, dropQueued: true);
    }

    /// <summary>Server shutdown: WebSockets get 1001, idle HTTP connections are ended.</summary>
    internal void CloseForShutdown(long deadline)
    {
        _shutdownRequested = true;
        int phase = Volatile.Read(ref _phase);
        if (phase == PhaseHttp)
        {
            // Wakes a keep-alive connection waiting for its next request; a request in progress finishes first.
            _input.CancelPendingRead();
            return;
        }

        if (StartClose(WebSocketCloseCodes.GoingAway, "server shutting down", ConnectionEndReason.ServerShutdown, deadline - Environment.TickCount64, dropQueued: false))
        {
            return;
        }

        // Already closing: make sure the shutdown deadline applies.
        lock (_sync)
        {
            _deadline = Math.Min(_deadline, deadline);
        }
    }

    /// <summary>
    /// Moves Open → Closing: queues our Close frame (after what is queued, or instead of it when
    /// <paramref name="dropQueued"/>) and arms the close deadline. False when already closing.
    /// </summary>
    private bool StartClose(ushort code, string? reason, ConnectionEndReason endReason, long timeoutMs, bool dropQueued)
    {
        OutboundMessage close = OutboundMessage.CreateClose(code, reason);
        bool schedule;
        lock (_sync)
        {
            if (_phase != PhaseOpen)
            {
                close.Dispose();
                return false;
            }

            _phase = PhaseClosing;
            _closeSent = true;
            _deadline = Environment.TickCount64 + Math.Max(0, timeoutMs);
            if (dropQueued)
            {
                ClearQueueLocked();
            }

            schedule = EnqueueLocked(close);
        }

        RecordEnd(endReason);
        _discarding = true;
        if (schedule)
        {
            ScheduleDrain();
        }

        return true;
    }

    private async ValueTask FinishAsync()
    {
        bool wasWebSocket;
        lock (_sync)
        {
            wasWebSocket = _phase != PhaseHttp;
            _phase = PhaseClosed;
            if (_deadline == long.MaxValue || !wasWebSocket)
            {
                _deadline = Environment.TickCount64 + _services.CloseTimeoutMs;
            }
        }

        RecordEnd(ConnectionEndReason.ConnectionReset);
        try
        {
            // In-flight writes (our Close frame included) get until the deadline; the heartbeat aborts after it.
            await WaitForDrainAsync().ConfigureAwait(false);
        }
        finally
        {
            lock (_sync)
            {
                ClearQueueLocked();
            }

            ReturnAssembly();
            PublishTraffic();
            await _output.CompleteAsync().ConfigureAwait(false);
            await _input.CompleteAsync().ConfigureAwait(false);
            LeaveHandshakePhase();
            _services.Registry.Remove(Id);
            TransportMetrics.TcpConnectionsOpen.Dec();
            if (_holdsSlot)
            {
                _holdsSlot = false;
                _services.Registry.ReleaseWebSocket();
            }

            ConnectionEndReason reason = (ConnectionEndReason)Volatile.Read(ref _endReason);
            if (wasWebSocket)
            {
                TransportMetrics.ConnectionsOpen.Dec();
                TransportMetrics.Closed(reason).Inc();
                TransportLog.ConnectionClosed(_services.Logger, Id, reason);
                try
                {
                    _session?.OnClosed(reason);
                }
                catch (Exception ex)
                {
                    TransportLog.ApplicationFailure(_services.Logger, Id, ex);
                }
            }

            CancellationTokenSource? closed;
            lock (_sync)
            {
                closed = _closedSource;
            }

            if (closed is not null)
            {
                try
                {
                    closed.Cancel();
                }
                catch (AggregateException ex)
                {
                    TransportLog.ApplicationFailure(_services.Logger, Id, ex);
                }
            }
        }
    }
}
