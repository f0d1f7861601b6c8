using Collab.Client.Sync;
using Collab.Engine;
using Collab.Engine.Client;

namespace Collab.Client.Tests.Undo;

/// <summary>
/// Replicas with the SDK's undo history (<see cref="UndoHistory{TSnapshot, TOp}"/>) on the Engine's client state, a
/// sequencing server, and networks whose messages are delivered in an order the test chooses: every interleaving of
/// local edits, undos, redos, remote ops and acks is reachable.
/// </summary>
internal sealed class UndoSimulation<TSnapshot, TOp>
    where TSnapshot : notnull
    where TOp : notnull
{
    private readonly DocumentKind<TSnapshot, TOp> _kind;
    private readonly List<TOp> _history = [];

    public UndoSimulation(DocumentKind<TSnapshot, TOp> kind, TSnapshot initial, int replicas, TimeSpan captureTimeout)
    {
        _kind = kind;
        Document = initial;
        for (int i = 0; i < replicas; i++)
        {
            Replicas.Add(new Replica(this, $"r{i}", initial, captureTimeout));
        }
    }

    public TSnapshot Document { get; private set; }

    public List<Replica> Replicas { get; } = [];

    public long Version => _history.Count;

    /// <summary>Delivers every message in flight until nothing moves.</summary>
    public void Drain()
    {
        bool moved = true;
        while (moved)
        {
            moved = false;
            foreach (Replica replica in Replicas)
            {
                while (replica.DeliverToServer() || replica.DeliverFromServer())
                {
                    moved = true;
                }
            }
        }
    }

    private void Sequence(Replica author, OutgoingOp<TOp> submit)
    {
        TOp op = submit.Op;
        for (long v = submit.BaseVersion; v < _history.Count; v++)
        {
            op = _kind.Transform(op, _history[(int)v], TransformSide.Left);
        }

        Document = _kind.Apply(Document, op);
        _history.Add(op);
        foreach (Replica replica in Replicas)
        {
            replica.Inbox.Enqueue((_history.Count, op, author.ClientId, submit.ClientSeq));
        }
    }

    public sealed class Replica : IUndoTarget<TSnapshot, TOp>
    {
        private readonly UndoSimulation<TSnapshot, TOp> _sim;
        private readonly OtClientState<TSnapshot, TOp> _state;
        private IDocumentObserver<TSnapshot, TOp>? _observer;

        public Replica(UndoSimulation<TSnapshot, TOp> sim, string clientId, TSnapshot initial, TimeSpan captureTimeout)
        {
            _sim = sim;
            ClientId = clientId;
            _state = new OtClientState<TSnapshot, TOp>(sim._kind.Type, clientId, initial, 0);
            Undo = new UndoHistory<TSnapshot, TOp>(this, captureTimeout, maxSteps: 10_000, TimeProvider.System);
        }

        public string ClientId { get; }

        public UndoHistory<TSnapshot, TOp> Undo { get; }

        public Queue<(long Version, TOp Op, string ClientId, long ClientSeq)> Inbox { get; } = new();

        public Queue<OutgoingOp<TOp>> Outbox { get; } = new();

        public Lock Gate { get; } = new();

        public DocumentKind<TSnapshot, TOp> Kind => _sim._kind;

        public TSnapshot SnapshotLocked => _state.Snapshot;

        public TSnapshot Snapshot => _state.Snapshot;

        public void SubmitLocked(TOp op, EditOrigin origin)
        {
            TSnapshot before = _state.Snapshot;
            _state.ApplyLocal(op);
            _observer?.OnLocalEdit(op, before, origin);
            TakeOutgoing();
        }

        public void Edit(TOp op)
        {
            lock (Gate)
            {
                SubmitLocked(op, EditOrigin.User);
            }
        }

        public void SetObserver(IDocumentObserver<TSnapshot, TOp>? observer) => _observer = observer;

        public bool DeliverToServer()
        {
            if (!Outbox.TryDequeue(out OutgoingOp<TOp> submit))
            {
                return false;
            }

            _sim.Sequence(this, submit);
            return true;
        }

        public bool DeliverFromServer()
        {
            if (!Inbox.TryDequeue(out var message))
            {
                return false;
            }

            lock (Gate)
            {
                if (_state.OnRemoteOp(message.Version, message.Op, message.ClientId, message.ClientSeq, out TOp? applied))
                {
                    _observer?.OnRemoteChange(applied);
                }

                // An ack promotes the buffer to the op in flight: send it.
                TakeOutgoing();
            }

            return true;
        }

        private void TakeOutgoing()
        {
            if (_state.TryTakeOutgoing(out OutgoingOp<TOp> outgoing))
            {
                Outbox.Enqueue(outgoing);
            }
        }
    }
}
