using Collab.Client.Internal;
using Collab.Engine;
using Collab.Engine.Client;
using Collab.Protocol.V1;

namespace Collab.Client.Sync;

/// <summary>Snapshot recovery (docs/PROTOCOL.md section 7.3): resync, the probe of an op of unknown fate, the rebase.</summary>
internal sealed partial class DocumentSync<TSnapshot, TOp>
{
    private bool _needsSnapshot;
    private InflightFate _resyncFate;
    private (TSnapshot Document, long Version)? _probeSnapshot;
    private List<SequencedOp>? _probeQueue;

    /// <summary>Whether the server's document holds the in-flight op, for a snapshot rebase.</summary>
    private enum InflightFate
    {
        Unknown,
        Included,
        NotIncluded,
        Rejected,
    }

    private void BeginResync(InflightFate fate, string why)
    {
        Log.Resync(_client.Logger, DocId, why);
        _needsSnapshot = true;
        // A rejected op stays rejected even if a later step of the same recovery knows less.
        _resyncFate = _resyncFate == InflightFate.Rejected && fate == InflightFate.Unknown ? InflightFate.Rejected : fate;
        _probeSnapshot = null;
        _probeQueue = null;
        Subscribe();
    }

    private void SendProbe()
    {
        if (_phase != Phase.Probing || _session is not { } session)
        {
            return;
        }

        session.TrySend(new ClientMessage
        {
            Submit = new Submit { DocId = DocId, ClientSeq = (ulong)_inflightSeq, BaseVersion = _inflightSentBase, Op = _inflightSentBytes },
        });
    }

    private void ResolveProbe(bool included, bool upToDate)
    {
        (TSnapshot document, long version) = _probeSnapshot!.Value;
        List<SequencedOp> queued = _probeQueue!;
        _probeSnapshot = null;
        _probeQueue = null;
        if (!upToDate)
        {
            // The probe was sequenced just now, after the snapshot: a fresh snapshot holds it.
            BeginResync(InflightFate.Included, "the probed op was sequenced after the snapshot");
            return;
        }

        CompleteResync(document, version, included ? InflightFate.Included : InflightFate.NotIncluded);
        if (_phase == Phase.Live && queued.Count > 0)
        {
            ApplyOps(queued);
        }
    }

    /// <summary>Rebases the surviving local edits onto the server's <paramref name="target"/> at <paramref name="version"/>.</summary>
    private void CompleteResync(TSnapshot target, long version, InflightFate fate)
    {
        OtClientState<TSnapshot, TOp> state = _state!;
        TSnapshot before = state.Snapshot;
        TSnapshot basis = _serverDocument;
        TOp pending = _kind.EmptyOp;
        if (state.HasInflight)
        {
            TOp inflight = PeekInFlight();
            TOp buffer = state.HasBuffer ? BufferOp(inflight) : _kind.EmptyOp;
            switch (fate)
            {
                case InflightFate.NotIncluded:
                    // Never sequenced: everything pending is still to be applied.
                    pending = _kind.IsNoop(buffer) ? inflight : _kind.Compose(inflight, buffer);
                    break;
                case InflightFate.Rejected:
                    // Dropped for good: take it out of the buffer's context exactly (its inverse), keep the buffer.
                    pending = _kind.IsNoop(buffer) ? _kind.EmptyOp : _kind.Transform(buffer, _kind.Invert(inflight, _serverDocument), TransformSide.Left);
                    break;
                default:
                    // Already in the snapshot: only the buffered edits are new.
                    basis = _kind.Apply(basis, inflight);
                    pending = buffer;
                    break;
            }
        }

        TOp rebased = _kind.IsNoop(pending)
            ? _kind.EmptyOp
            : _kind.Transform(pending, _kind.Diff(basis, target), TransformSide.Left);

        _needsSnapshot = false;
        _resyncFate = InflightFate.Unknown;
        _resendAfterCatchUp = false;
        _phase = Phase.Live;
        _retryAttempt = 0;
        RebuildState(_session!.Welcome.ClientId, target, version, rebased);

        TSnapshot after = _state!.Snapshot;
        TOp change = _kind.Diff(before, after);
        _observer?.OnRemoteChange(change);
        MovePresences(change, remoteIsOwn: false, localIsOwn: false);
        Post(events => events.RaiseChanged(change, version, after, clientId: null, author: null, isResync: true));
        AfterResubscribed();
        AfterPendingChanged();
    }
}
