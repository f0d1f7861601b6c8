using Collab.Server.Transport;

namespace Collab.Server.Sessions;

/// <summary>
/// One connection's subscription to one document. Every frame for it passes through <see cref="Send"/>
/// on the document's sequencer worker, so the subscriber sees ops, acks and presence in version order.
/// While a resuming subscriber catches up from storage its live frames are parked here, then flushed
/// after the history, which keeps the stream gap-free without holding up the document.
/// </summary>
internal sealed class Subscription
{
    private List<OutboundMessage>? _parked;

    // The tail of the chain of this connection's submits to the document that are forwarded (or were, until a promotion):
    // each waits for the one before it, so retries inside a forward never let a later submit overtake.
    private Task _chainTail = Task.CompletedTask;
    private int _chained;

    public Subscription(ClientSession session, DocumentHub hub)
    {
        Session = session;
        Hub = hub;
    }

    public ClientSession Session { get; }

    public DocumentHub Hub { get; }

    public string DocId => Hub.DocId;

    public string ClientId => Session.ClientId;

    /// <summary>Set by the hub while it walks a batch: this subscriber authored one of the batch's ops. Worker-only.</summary>
    public long AuthorStamp { get; set; }

    /// <summary>True once detached from the hub; frames are dropped from then on. Worker-only.</summary>
    public bool Detached { get; set; }

    /// <summary>
    /// The version up to which every op has been handed to <see cref="Send"/> for this subscriber (as an op or an ack; while
    /// parked, into the parked frames). A document that fails resumes its subscribers from here. Worker-only.
    /// </summary>
    public long Version { get; set; }

    /// <summary>
    /// The lowest client seq submitted through this subscription (0: none). Its client's ops with a seq at or above it were
    /// submitted on this connection and come back as acks; older ones (from an earlier connection) as ops
    /// (docs/PROTOCOL.md §5.3). Written by the session's read loop before the submit is queued, read on the worker.
    /// </summary>
    public long LowestSubmittedSeq => Volatile.Read(ref _lowestSubmittedSeq);

    private long _lowestSubmittedSeq;

    /// <summary>A submit with <paramref name="clientSeq"/> is about to be made through this subscription (read loop).</summary>
    public void NoteSubmit(long clientSeq)
    {
        long lowest = _lowestSubmittedSeq;
        if (lowest == 0 || clientSeq < lowest)
        {
            Volatile.Write(ref _lowestSubmittedSeq, clientSeq);
        }
    }

    /// <summary>Carries the submits of a failed document's subscription over to its replacement (before it is attached).</summary>
    public void InheritSubmits(Subscription previous) => Volatile.Write(ref _lowestSubmittedSeq, previous.LowestSubmittedSeq);

    /// <summary>Whether this subscriber's own op <paramref name="clientSeq"/> was submitted on this connection (so it gets an ack, not the op).</summary>
    public bool SubmittedHere(long clientSeq)
    {
        long lowest = Volatile.Read(ref _lowestSubmittedSeq);
        return lowest != 0 && clientSeq >= lowest;
    }

    public bool IsParked => _parked is not null;

    /// <summary>Submits of this subscription are in the forwarding chain: a new one must queue behind them, even if it could be sequenced here.</summary>
    public bool HasChainedSubmits => Volatile.Read(ref _chained) != 0;

    /// <summary>
    /// Runs <paramref name="submission"/> after every earlier chained submit of this subscription has its outcome (called
    /// by the session's read loop, one submit at a time, so the chain is in arrival order).
    /// </summary>
    public async ValueTask<SubmitOutcome> SubmitInOrderAsync<TSnapshot, TOp>(DocumentHub<TSnapshot, TOp> hub, Engine.Sequencing.Submission<TOp> submission)
        where TSnapshot : notnull
        where TOp : notnull
    {
        Interlocked.Increment(ref _chained);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task previous = Interlocked.Exchange(ref _chainTail, done.Task);
        try
        {
            await previous.ConfigureAwait(false);
            return await hub.SubmitOrForwardAsync(submission).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _chained);
            done.SetResult();
        }
    }

    /// <summary>Queues a frame for this subscriber (worker-only). The caller keeps its own reference.</summary>
    public void Send(OutboundMessage frame)
    {
        if (Detached)
        {
            return;
        }

        if (_parked is not null)
        {
            frame.AddReference();
            _parked.Add(frame);
            return;
        }

        Session.Send(frame);
    }

    /// <summary>Queues a frame built for this subscriber alone and drops the builder's reference.</summary>
    public void SendOwned(OutboundMessage frame)
    {
        Send(frame);
        frame.Dispose();
    }

    public void Park() => _parked ??= new List<OutboundMessage>();

    /// <summary>
    /// Returns to live delivery: first <paramref name="sendHistory"/> writes the caught-up history (which
    /// comes before everything parked), then the parked frames follow in order.
    /// </summary>
    public void Unpark(Action<Subscription> sendHistory)
    {
        List<OutboundMessage>? parked = _parked;
        _parked = null;
        sendHistory(this);
        if (parked is null)
        {
            return;
        }

        foreach (OutboundMessage frame in parked)
        {
            if (!Detached)
            {
                Session.Send(frame);
            }

            frame.Release();
        }
    }

    /// <summary>Drops parked frames (the subscription ended during catch-up).</summary>
    public void DropParked()
    {
        List<OutboundMessage>? parked = _parked;
        _parked = null;
        if (parked is not null)
        {
            foreach (OutboundMessage frame in parked)
            {
                frame.Release();
            }
        }
    }
}
