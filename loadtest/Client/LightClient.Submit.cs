using System.Text;
using Collab.Engine.Text;
using Collab.LoadTest.Metrics;

namespace Collab.LoadTest.Client;

/// <summary>Scheduled submits and their acknowledgement: the op per slot (pipelined, one in flight or a Ping), the ack matched to the oldest pending op, the latency recorded.</summary>
internal sealed partial class LightClient
{
    /// <summary>The scheduler says an op is due (its scheduled time, not now: latency counts from the schedule).</summary>
    public void OnScheduled(long scheduled)
    {
        lock (_gate)
        {
            Interlocked.Increment(ref _ctx.Counters.Offered);
            if (_ctx.Window.Contains(scheduled))
            {
                Interlocked.Increment(ref _ctx.Counters.OfferedInWindow);
            }

            if (_ctx.Settings.SubmitMode == SubmitMode.Ping)
            {
                // A slot while disconnected is simply not answered (it shows as offered but unacknowledged).
                if (_state == ClientState.Live)
                {
                    _pingsInFlight++;
                    SendPingLocked(scheduled);
                }

                return;
            }

            if (_state != ClientState.Live || (_ctx.Settings.SubmitMode == SubmitMode.OneInFlight && _pending.Count > 0))
            {
                _backlog.Enqueue(scheduled);
                return;
            }

            SubmitNewLocked(scheduled);
        }
    }

    /// <summary>
    /// Submits one op directly (setup: the initial text of a document), outside the schedule and the statistics'
    /// window. Inserts <paramref name="text"/> (ASCII) at the start; on ShareDB, creates the document with it (a
    /// ShareDB document does not exist until created, and its harness creates each with its initial text).
    /// </summary>
    public void SubmitInitialText(string text)
    {
        lock (_gate)
        {
            // Scheduled time 0 marks a setup op: acked and delivered like any other, but left out of the statistics.
            ulong seq = ++_lastSeq;
            var op = new PendingOp(seq, 0, _version, 0, Encoding.ASCII.GetBytes(text), Create: _shareDb, Own: _model.InitialText(text));
            _pending.Enqueue(op);
            Track?.Register(seq, 0, Doc.ReceiversPerOp);
            SendSubmitLocked(op, op.Text);
        }
    }

    private void SubmitNewLocked(long scheduled)
    {
        ulong seq = ++_lastSeq;
        OwnOp? own = _model.NewOp(ref _rng, _length);
        int position = own is not null || _length <= 0 ? 0 : (int)(NextRandom() % (ulong)(_length + 1));
        var op = new PendingOp(seq, scheduled, _version, position, Own: own);
        _pending.Enqueue(op);
        if (Track is not null && !Track.Register(seq, scheduled, Doc.ReceiversPerOp))
        {
            _ctx.Errors.Add("tracking-overflow", "an op was still undelivered after its slot was reused; raise --track");
        }

        Span<byte> token = stackalloc byte[_ctx.Settings.TokenLength];
        WriteToken(seq, token);
        SendSubmitLocked(op, token);
    }

    private void SendSubmitLocked(PendingOp op, ReadOnlySpan<byte> token)
    {
        if (_shareDb)
        {
            SendShareDbSubmitLocked(op, token);
        }
        else
        {
            SendCollabSubmitLocked(op, token);
        }
    }

    private void SendPingLocked(long scheduled)
    {
        if (_shareDb)
        {
            SendShareDbPingLocked(scheduled);
        }
        else
        {
            SendCollabPingLocked(scheduled);
        }
    }

    private void WriteToken(ulong seq, Span<byte> token)
    {
        // Readable and distinct per (client, seq) for debugging; uniqueness is not needed for matching.
        ulong n = (seq * 2654435761UL) + (ulong)Index;
        for (int i = 0; i < token.Length; i++)
        {
            token[i] = s_tokenAlphabet[(int)(n % (ulong)s_tokenAlphabet.Length)];
            n /= (ulong)s_tokenAlphabet.Length;
        }
    }

    private string TokenString(ulong seq)
    {
        Span<byte> token = stackalloc byte[_ctx.Settings.TokenLength];
        WriteToken(seq, token);
        return Encoding.ASCII.GetString(token);
    }

    /// <summary>The server acknowledged this client's op <paramref name="clientSeq"/>, sequenced at <paramref name="version"/>.</summary>
    private void OnAckLocked(ulong clientSeq, long version, long now)
    {
        if (clientSeq <= _lastAckedSeq)
        {
            // A resend's duplicate ack after the original ack (or the own op in the catch-up) arrived first.
            Interlocked.Increment(ref _ctx.Counters.StaleAcks);
            return;
        }

        if (!_pending.TryPeek(out PendingOp front) || front.Seq != clientSeq)
        {
            _ctx.Errors.Add("unexpected-ack", $"ack for seq {clientSeq}, oldest pending is {(_pending.Count > 0 ? front.Seq : 0)}");
            return;
        }

        if (version != _version + 1)
        {
            _ctx.Errors.Add("ack-version", $"ack at version {version}, client at {_version}");
            Fault ??= $"ack at version {version} after {_version}";
        }

        CompleteFrontLocked(version, now, default);
        if (_state == ClientState.CatchingUp && _version >= _catchUpTarget)
        {
            GoLiveLocked(now);
        }
        else if (_state == ClientState.Live && _ctx.Settings.SubmitMode == SubmitMode.OneInFlight && _backlog.Count > 0)
        {
            SubmitNewLocked(_backlog.Dequeue());
        }
    }

    /// <summary>
    /// The oldest pending op was sequenced at <paramref name="version"/>: acknowledged (<paramref name="sequencedOp"/>
    /// empty), or seen as the server sequenced it among the ops (own op from an earlier connection).
    /// </summary>
    private void CompleteFrontLocked(long version, long now, WireOp sequencedOp)
    {
        PendingOp op = _pending.Dequeue();
        _lastAckedSeq = op.Seq;
        _version = version;
        if (op.Own is { } own)
        {
            // Transformed against everything sequenced since its base: the op the server applied, which the later
            // pending ops now come after.
            _length += sequencedOp.IsEmpty ? own.LengthDelta : sequencedOp.LengthDelta();
            foreach (PendingOp later in _pending)
            {
                if (sequencedOp.IsEmpty)
                {
                    later.Own?.TransformAgainst(own);
                }
                else
                {
                    later.Own?.TransformAgainst(sequencedOp);
                }
            }
        }
        else
        {
            _length += op.Text?.Length ?? _ctx.Settings.TokenLength;
        }

        if (Replica is not null)
        {
            long oldest = _pending.TryPeek(out PendingOp next) ? next.BaseVersion : -1;
            try
            {
                if (!sequencedOp.IsEmpty)
                {
                    Replica.ApplySequenced(version, sequencedOp, oldest);
                }
                else if (op.Own is { } submitted)
                {
                    Replica.ApplyOwn(version, submitted.Encoded, op.BaseVersion, oldest);
                }
                else
                {
                    string text = op.Text is null ? TokenString(op.Seq) : Encoding.ASCII.GetString(op.Text);
                    ((TextReplica)Replica).ApplyOwn(version, text.Length == 0 ? TextOp.Empty : TextOp.Insert(op.Position, text), op.BaseVersion, oldest);
                }
            }
            catch (Collab.Engine.OtException ex)
            {
                ReplicaFailed(ex);
            }
        }

        if (op.Scheduled != 0) // 0: a setup op
        {
            RecordAck(op.Scheduled, now);
        }
    }

    /// <summary>Counts the answer to the slot scheduled at <paramref name="scheduled"/>: an ack, or a Pong in ping mode.</summary>
    private void RecordAck(long scheduled, long now)
    {
        _ctx.AckLatency.Record(Clock.ToMicros(now - scheduled), _ctx.Window.Contains(scheduled));
        Interlocked.Increment(ref _ctx.Counters.Acked);
        if (_ctx.Window.Contains(now))
        {
            Interlocked.Increment(ref _ctx.Counters.AckedInWindow);
        }
    }

    /// <summary>A Pong in ping mode answers the slot scheduled at <paramref name="scheduled"/>, so it counts exactly like an ack.</summary>
    private void OnPong(long scheduled, long now)
    {
        lock (_gate)
        {
            _pingsInFlight = Math.Max(0, _pingsInFlight - 1);
        }

        RecordAck(scheduled, now);
    }
}
