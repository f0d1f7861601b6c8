/**
 * The sync state machine every document type shares: one open document, a local replica that accepts edits at once
 * and converges with the server and every other client (docs/PROTOCOL.md sections 5 to 8). ShareDB's client
 * algorithm: at most one op in flight, later local edits composed into one buffer, remote ops transformed past both.
 * The type's operations come from an {@link OtType}; {@link CollabDocument} and {@link RichDocument} are its two
 * document classes.
 * @module
 */
import type { Ack, Ops, Presence, SequencedOp, Snapshot, Subscribed } from "./gen/collab/v1/collab_pb.js";
import { backoffDelay } from "./backoff.js";
import { CollabServerError, DocumentClosedError, DocumentTypeError } from "./errors.js";
import { Emitter, type EventQueue } from "./events.js";
import type { OtType } from "./ottype.js";
import { type AnnouncedLimits, announcedLimits, ErrorCode, type ClientBody } from "./protocol.js";
import type { Scheduler, TimerHandle } from "./scheduler.js";
import type { ResolvedReconnectPolicy } from "./backoff.js";
import { TEXT_TYPE_NAME } from "./text.js";

/** @internal A document of any type, as the client holds it. */
export type AnyDocument = SyncDocument<any, any, any, any>;

/** @internal What a document needs from its client. */
export interface DocumentHost {
  nextRequestId(): number;
  nextClientSeq(): number;
  scheduler(): Scheduler;
  /** The limits of the last Welcome (defaults before the first). */
  limits(): AnnouncedLimits;
  reconnectPolicy(): ResolvedReconnectPolicy;
  removeDocument(document: AnyDocument): void;
}

/** @internal The part of a session a document uses. */
export interface DocumentSession {
  readonly ended: boolean;
  readonly welcome: { clientId: string; maxMessageBytes: number; maxOpBytes: number; maxPresenceBytes: number };
  send(requestId: number, body: ClientBody): boolean;
}

/** Options of {@link CollabClient.openDocument} and `openRichDocument`. */
export interface OpenDocumentOptions {
  /** Cancels waiting for the snapshot (the document is then closed). */
  signal?: AbortSignal;
}

/** Another client's selection, in the type's units of the local document (code points of text, UTF-16 units of rich text). */
export interface RemotePresence {
  clientId: string;
  /** Where the selection started. */
  anchor: number;
  /** Where the caret is; equal to `anchor` for a plain caret. */
  head: number;
  /** Opaque data the client attached (name, colour). */
  userData: Uint8Array;
}

/** Payload of the `presence` event. */
export interface PresenceEvent {
  clientId: string;
  /** The new selection, or `null` when the client left or cleared it. */
  presence: RemotePresence | null;
}

/** Payload of the `ack` event: one of this client's ops is durable on the server. */
export interface AckEvent {
  clientId: string;
  clientSeq: number;
  /** The version the op produced. */
  version: number;
}

/** The events of a document; `C` and `L` are its type's `change` and `localChange` payloads. */
export interface SyncDocumentEvents<C, L> {
  /** A remote op was applied or the document was resynced. Not raised for local edits. */
  change: C;
  /** A local edit was applied (raised synchronously after the edit call returns). */
  localChange: L;
  /** Another client's selection changed, appeared or went away. */
  presence: PresenceEvent;
  /** One of this client's ops is durable; raised once per op (acks lost in a disconnect are recovered on resume). */
  ack: AckEvent;
  /**
   * The server reported an error for this document. For a rejected submit (non-retryable) the op has been dropped and
   * the document resyncs; retryable errors are retried automatically.
   */
  error: CollabServerError;
  /** The document was closed (by the application, by its client, or because the server ended the subscription). */
  closed: { error: Error | null };
}

/**
 * @internal Sees every change of the local document synchronously, as it is applied (events are delivered later,
 * after the whole state change): the undo manager must never see the document ahead of the ops it was told about.
 */
export type OpObserver<D, O> = (op: O, previous: D, local: boolean, origin: string | undefined) => void;

enum Phase {
  /** No connection. */
  Detached,
  /** First subscribe sent, waiting for the snapshot. */
  Opening,
  /** Resuming subscribe sent, waiting for Subscribed. */
  Resuming,
  /** Subscribed: ops flow, submits are sent. */
  Live,
  /** FetchOps sent after VERSION_TOO_OLD, waiting for its Ops. */
  Fetching,
  /** Snapshot subscribe sent to recover, waiting for the snapshot. */
  Resyncing,
  /** Snapshot received; the unknown in-flight op was resent to learn whether the snapshot holds it. */
  Probing,
}

/** Whether the server's text holds the in-flight op, for a snapshot rebase (PROTOCOL.md section 7.3). */
enum InflightFate {
  Unknown,
  Included,
  NotIncluded,
  Rejected,
}

interface HistoryEntry<O> {
  version: number;
  op: O;
  clientId: string;
}

/** Server ops remembered to move remote selections made at slightly older versions. */
const PRESENCE_HISTORY = 64;
const MAX_RETRY_EXPONENT = 30;
/** A Submit's bytes besides its op and document id: tags, lengths, request id, seq and base version varints. */
const SUBMIT_OVERHEAD_BYTES = 48;

/**
 * The client algorithm every document type shares (PROTOCOL.md sections 5 to 8; ShareDB's): a local replica that
 * accepts edits at once, at most one op in flight, later edits composed into one buffer, remote ops transformed past
 * both, resume and dedupe by (client id, client seq), snapshot recovery. {@link CollabDocument} (text) and
 * {@link RichDocument} (rich text) add their type's editing API over it; `O` ops apply to `D` documents.
 */
export abstract class SyncDocument<D, O, C, L> extends Emitter<SyncDocumentEvents<C, L>> {
  /** @internal Resolves with the document once its snapshot arrived. */
  readonly opened: Promise<this>;
  // Closures over `this`: a field typed with `this` would make the class invariant in its type parameters.
  private resolveOpened!: () => void;
  private rejectOpened!: (error: Error) => void;
  private isOpen = false;

  private session: DocumentSession | null = null;
  private generation = 0;
  private phase = Phase.Detached;
  private closedError: Error | null = null;
  private subscribeRequestId = 0;
  private fetchRequestId = 0;
  private fetchFromVersion = 0;
  private catchUpTarget = 0;
  private retryAttempt = 0;
  private retryTimer: TimerHandle | undefined;

  // The replica: the server's text at `serverVersion`, and the local text = server text + in-flight + buffer.
  private serverVersion = 0;
  private serverDoc: D;
  /** @internal The local document: the server's plus the pending local edits. */
  protected localDoc: D;
  private inflight: O | null = null;
  private buffer: O | null = null;
  private readonly history: HistoryEntry<O>[] = [];

  // The in-flight op's identity and last transmission. `inflightSentClientId` is null while it was never sent.
  private inflightSeq = 0;
  private inflightSentClientId: string | null = null;
  private inflightSentOnSession = false;
  private inflightSentBase = 0;
  private inflightSentBytes: Uint8Array = new Uint8Array(0);
  private resendAfterCatchUp = false;

  // Snapshot recovery (PROTOCOL.md section 7.3).
  private needsSnapshot = false;
  private resyncFate = InflightFate.Unknown;
  private probeSnapshot: Snapshot | null = null;
  private probeQueue: SequencedOp[] | null = null;

  private localPresence: { anchor: number; head: number; userData: Uint8Array } | null = null;
  private presenceDirty = false;
  private readonly remotePresence = new Map<string, RemotePresence>();
  private syncWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private readonly observers = new Set<OpObserver<D, O>>();

  /** @internal */
  constructor(
    /** @internal The document's OT type. */
    readonly type: OtType<D, O>,
    empty: D,
    private readonly host: DocumentHost,
    /** The document id. */
    readonly id: string,
    queue: EventQueue,
    options?: OpenDocumentOptions,
  ) {
    super(queue);
    this.serverDoc = empty;
    this.localDoc = empty;
    this.opened = new Promise<this>((resolve, reject) => {
      this.resolveOpened = () => resolve(this);
      this.rejectOpened = reject;
    });
    // Nobody may await a cancelled open; keep that from being reported as an unhandled rejection.
    this.opened.catch(() => {});
    const signal = options?.signal;
    if (signal !== undefined) {
      const abort = (): void => {
        if (!this.isOpen) {
          void this.close();
        }
      };
      if (signal.aborted) {
        queueMicrotask(abort);
      } else {
        signal.addEventListener("abort", abort, { once: true });
      }
    }
  }

  /** The local document's length in the type's units (code points for text, UTF-16 units for rich text). */
  get length(): number {
    return this.type.length(this.localDoc);
  }

  /** The last server version this replica has applied (pending local edits are not counted). */
  get version(): number {
    return this.serverVersion;
  }

  /** Local edits exist that the server has not acknowledged. */
  get hasPendingOps(): boolean {
    return this.inflight !== null;
  }

  /** The document is closed: edits throw, events stop. */
  get closed(): boolean {
    return this.closedError !== null;
  }

  /** The other clients' current selections, in local code points, by client id. */
  get presences(): ReadonlyMap<string, RemotePresence> {
    return this.remotePresence;
  }

  /**
   * @internal Applies a local edit made against the current document and queues it for the server (the typed
   * `submitOp` of each document class). Throws `InvalidOpError` when it does not fit, `RangeError` when its encoding
   * exceeds the server's `max_op_bytes` (split it), {@link DocumentClosedError} when the document is closed.
   */
  submitInternal(op: unknown, origin: string | undefined): void {
    this.queue.run(() => {
      this.throwIfClosed();
      const normal = this.type.normalize(op);
      this.type.checkFits(normal, this.localDoc);
      if (this.type.isNoop(normal)) {
        return;
      }
      this.checkOpSize(normal);
      const previous = this.localDoc;
      this.localDoc = this.type.apply(previous, normal);
      if (this.inflight === null) {
        this.setInflight(normal);
      } else if (this.inflightSentClientId === null && this.buffer === null) {
        // The in-flight op never went out (offline, or waiting for the subscription): nothing on the wire refers to
        // it yet, so later edits join it and reach the server in one submit.
        this.inflight = this.type.compose(this.inflight, normal);
      } else {
        this.buffer = this.buffer === null ? normal : this.type.compose(this.buffer, normal);
      }
      this.movePresences(normal, null, true);
      this.notify(normal, previous, true, origin);
      this.emit("localChange", this.localChangeEvent(normal, previous, origin));
      this.trySendInflight();
    });
  }

  /** @internal The local document (the undo manager reads it). */
  get current(): D {
    return this.localDoc;
  }

  /**
   * Resolves when every local edit made so far has been acknowledged (or, for a rejected edit, dropped and the
   * document resynced). Rejects when the document or client closes first.
   */
  whenSynced(): Promise<void> {
    if (this.closedError !== null) {
      return Promise.reject(this.closedError);
    }
    if (this.inflight === null) {
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.syncWaiters.push({ resolve, reject }));
  }

  /**
   * Publishes this client's selection, in the type's units of the current document (code points of a text document,
   * UTF-16 units of a rich-text one); `head` defaults to `anchor`
   * (a caret). Sent when no local edit is pending (so the server can place it), coalesced with later calls, and
   * re-sent after a reconnect. `userData` (name, colour: a string is sent as UTF-8) is at most the server's
   * `Welcome.max_presence_bytes` (1 KiB by default): bigger throws `RangeError`.
   */
  setPresence(anchor: number, head: number = anchor, userData?: Uint8Array | string): void {
    const data = typeof userData === "string" ? new TextEncoder().encode(userData) : (userData ?? new Uint8Array(0));
    const limit = this.limits().maxPresenceBytes;
    if (data.length > limit) {
      throw new RangeError(`Presence user data is limited to ${limit} bytes (Welcome.max_presence_bytes); this is ${data.length}.`);
    }
    this.queue.run(() => {
      this.throwIfClosed();
      const length = this.type.length(this.localDoc);
      for (const position of [anchor, head]) {
        if (!Number.isInteger(position) || position < 0 || position > length) {
          throw new RangeError(`Selection position ${position} outside 0..${length}.`);
        }
      }
      this.localPresence = { anchor, head, userData: data };
      this.presenceDirty = true;
      this.trySendPresence();
    });
  }

  /** Withdraws this client's selection. */
  clearPresence(): void {
    this.queue.run(() => {
      this.throwIfClosed();
      this.localPresence = null;
      this.presenceDirty = true;
      this.trySendPresence();
    });
  }

  /** Unsubscribes and closes the document. Unacknowledged local edits are abandoned. */
  close(): Promise<void> {
    this.queue.run(() => {
      if (this.closedError !== null) {
        return;
      }
      this.session?.send(this.host.nextRequestId(), { case: "unsubscribe", value: { docId: this.id } });
      this.closeWith(new DocumentClosedError(`Document '${this.id}' is closed.`), null);
    });
    return Promise.resolve();
  }

  /** `await using doc = await client.openDocument(id)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ------------------------------------------------------------------ connection hooks (called by the client)

  /** @internal */
  onSessionStarted(session: DocumentSession, generation: number): void {
    if (this.closedError !== null || generation <= this.generation) {
      return;
    }
    this.session = session;
    this.generation = generation;
    this.retryAttempt = 0;
    this.inflightSentOnSession = false;
    // A server that did not resume the id under which the in-flight op went out cannot deduplicate it: recognise it
    // through the catch-up under the old id, then move the pending edits to the new id (checkCatchUp).
    this.resendAfterCatchUp = this.inflight !== null && this.inflightSentClientId !== null && this.inflightSentClientId !== session.welcome.clientId;
    this.subscribe();
  }

  /** @internal */
  onSessionEnded(session: DocumentSession): void {
    if (this.session !== session) {
      return;
    }
    this.session = null;
    this.host.scheduler().clearTimeout(this.retryTimer);
    // A probe's answer is lost with the connection; the next session starts the recovery over.
    this.probeSnapshot = null;
    this.probeQueue = null;
    this.phase = Phase.Detached;
    // Without a connection nothing says where the others are, or whether they are still here: their selections go
    // now (an editor stops drawing carets that would freeze), and come back with the server's broadcasts on resume.
    this.forgetRemotePresence();
  }

  /** @internal */
  onClientClosed(error: Error): void {
    this.closeWith(error, error);
  }

  /** @internal */
  onSnapshot(session: DocumentSession, requestId: number, snapshot: Snapshot): void {
    if (!this.isCurrent(session) || requestId !== this.subscribeRequestId) {
      return;
    }
    if (!this.acceptsType(snapshot.type)) {
      return;
    }
    if (this.phase === Phase.Opening) {
      let document: D;
      try {
        document = this.type.fromSnapshot(snapshot);
      } catch (error) {
        this.fail(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      this.serverDoc = document;
      this.localDoc = document;
      this.serverVersion = Number(snapshot.version);
      this.phase = Phase.Live;
      this.retryAttempt = 0;
      this.isOpen = true;
      this.resolveOpened();
      this.afterResubscribed();
      return;
    }
    if (this.phase !== Phase.Resyncing) {
      return;
    }
    const fate = this.resyncFate;
    if (fate === InflightFate.Unknown && this.inflight !== null && this.inflightSentClientId === session.welcome.clientId) {
      // Ask the server: the resend is deduplicated if the op is in, and refused as too old if not.
      this.phase = Phase.Probing;
      this.probeSnapshot = snapshot;
      this.probeQueue = [];
      this.sendProbe();
      return;
    }
    this.completeResync(snapshot, fate === InflightFate.Unknown ? InflightFate.NotIncluded : fate);
  }

  /** @internal */
  onSubscribed(session: DocumentSession, requestId: number, subscribed: Subscribed): void {
    if (!this.isCurrent(session) || requestId !== this.subscribeRequestId || this.phase !== Phase.Resuming) {
      return;
    }
    if (!this.acceptsType(subscribed.type)) {
      return;
    }
    this.phase = Phase.Live;
    this.retryAttempt = 0;
    this.catchUpTarget = Number(subscribed.currentVersion);
    this.afterResubscribed();
    this.checkCatchUp();
  }

  /** @internal */
  onOps(session: DocumentSession, requestId: number, ops: Ops): void {
    if (!this.isCurrent(session) || !this.isOpen) {
      return;
    }
    switch (this.phase) {
      case Phase.Probing:
        this.probeQueue!.push(...ops.ops);
        return;
      case Phase.Fetching: {
        if (requestId === 0 || requestId !== this.fetchRequestId) {
          return;
        }
        const before = this.serverVersion;
        if (this.applyOps(ops.ops) && this.phase === Phase.Fetching) {
          if (this.serverVersion === before) {
            this.beginResync(InflightFate.Unknown);
          } else {
            this.subscribe();
          }
        }
        return;
      }
      case Phase.Live:
        this.applyOps(ops.ops);
        this.checkCatchUp();
        return;
      default:
        // Before Subscribed, or while a snapshot is coming: that snapshot or catch-up covers these ops.
        return;
    }
  }

  /** @internal */
  onAck(session: DocumentSession, ack: Ack): void {
    if (!this.isCurrent(session) || this.inflight === null || Number(ack.clientSeq) !== this.inflightSeq) {
      // Not the in-flight op: the duplicate Ack of a resend whose op was already recognised in the ops.
      return;
    }
    const version = Number(ack.version);
    if (this.phase === Phase.Probing) {
      this.resolveProbe(true, ack.duplicate && version <= Number(this.probeSnapshot!.version));
      return;
    }
    if (this.phase !== Phase.Live || this.inflightSentClientId === null) {
      return;
    }
    if (version === this.serverVersion + 1) {
      this.acknowledge(version);
    } else if (version > this.serverVersion + 1) {
      // Ops before ours are missing (ordering guarantee broken): catch up; our op is recognised there.
      this.subscribe();
    } else {
      // Our op sits at a version we already passed without recognising it: the replica cannot be trusted.
      this.beginResync(InflightFate.Included);
    }
  }

  /** @internal */
  onPresence(session: DocumentSession, presence: Presence): void {
    if (!this.isCurrent(session) || !this.isOpen || presence.clientId === session.welcome.clientId) {
      return;
    }
    const selection = presence.selection;
    if (selection === undefined) {
      if (this.remotePresence.delete(presence.clientId)) {
        this.emit("presence", { clientId: presence.clientId, presence: null });
      }
      return;
    }
    // Positions refer to the server text at presence.version: move them through later server ops and pending edits.
    const at = Number(presence.version);
    const length = this.type.length(this.localDoc);
    const place = (position: number): number => Math.min(this.transformRemoteCursor(at, Math.max(0, position), presence.clientId), length);
    const remote: RemotePresence = {
      clientId: presence.clientId,
      anchor: place(Number(selection.anchor)),
      head: place(Number(selection.head)),
      userData: presence.userData,
    };
    this.remotePresence.set(presence.clientId, remote);
    this.emit("presence", { clientId: presence.clientId, presence: remote });
  }

  /** @internal */
  onError(session: DocumentSession, requestId: number, error: CollabServerError): void {
    if (!this.isCurrent(session)) {
      return;
    }
    this.emit("error", error);
    if (error.code === ErrorCode.DOC_DELETED) {
      // Unsolicited when the document is deleted, or the answer to a subscribe or submit: the subscription is over
      // and nothing pending can ever be applied (PROTOCOL.md section 9). Never retried, never resubscribed.
      this.fail(error);
      return;
    }
    if (this.phase === Phase.Probing && error.clientSeq !== 0 && error.clientSeq === this.inflightSeq) {
      if (error.retryable) {
        this.scheduleRetry(() => this.sendProbe());
      } else {
        // ALREADY_COMMITTED: the op is in the (older) history the snapshot covers; anything else: it is not.
        this.resolveProbe(error.code === ErrorCode.ALREADY_COMMITTED, true);
      }
      return;
    }
    if (requestId !== 0 && requestId === this.subscribeRequestId) {
      this.onSubscribeError(error);
      return;
    }
    if (requestId !== 0 && requestId === this.fetchRequestId && this.phase === Phase.Fetching) {
      if (error.retryable) {
        this.scheduleRetry(() => this.sendFetch());
      } else {
        this.beginResync(InflightFate.Unknown);
      }
      return;
    }
    if (error.clientSeq !== 0 && error.clientSeq === this.inflightSeq && this.inflight !== null && this.phase === Phase.Live) {
      this.onSubmitError(error);
      return;
    }
    if (error.code === ErrorCode.FORBIDDEN && requestId === 0 && error.clientSeq === 0) {
      // Unsolicited: a Reauthenticate took the right to read this document away. Resubscribing would be refused.
      this.fail(error);
      return;
    }
    if (error.code === ErrorCode.NOT_SUBSCRIBED && this.phase === Phase.Live) {
      this.subscribe();
    }
    // RATE_LIMITED for presence: not resent (the next update supersedes it).
  }

  // ------------------------------------------------------------------ internals

  /**
   * A server that names another type than this document's (a server without P6's check): the document is closed with
   * {@link DocumentTypeError}. (An empty type is a server from before P6, which only had text documents.)
   */
  private acceptsType(type: string): boolean {
    if (type === this.type.name || (type.length === 0 && this.type.name === TEXT_TYPE_NAME)) {
      return true;
    }
    this.session?.send(this.host.nextRequestId(), { case: "unsubscribe", value: { docId: this.id } });
    this.fail(new DocumentTypeError(this.id, this.type.name, type.length === 0 ? TEXT_TYPE_NAME : type));
    return false;
  }

  /** The limits in force: the current connection's Welcome, else the last one (section 11's defaults before any). */
  private limits(): AnnouncedLimits {
    return this.session !== null ? announcedLimits(this.session.welcome) : this.host.limits();
  }

  /**
   * Refuses an op the server would refuse (`OP_TOO_LARGE`, or close 1009 for the whole message): section 11's limits,
   * announced or default. The Submit around the op adds the document id and three varints.
   */
  private checkOpSize(op: O): void {
    const limits = this.limits();
    const bytes = this.type.encode(op).length;
    if (bytes > limits.maxOpBytes) {
      throw new RangeError(`The op encodes to ${bytes} bytes, over the server's limit of ${limits.maxOpBytes} (Welcome.max_op_bytes); split it.`);
    }
    const envelope = bytes + this.id.length + SUBMIT_OVERHEAD_BYTES;
    if (envelope > limits.maxMessageBytes) {
      throw new RangeError(`The submit would be ${envelope} bytes, over the server's message limit of ${limits.maxMessageBytes} (Welcome.max_message_bytes); split it.`);
    }
  }

  private isCurrent(session: DocumentSession): boolean {
    return this.closedError === null && this.session === session && !session.ended;
  }

  private throwIfClosed(): void {
    if (this.closedError !== null) {
      throw this.closedError;
    }
    if (!this.isOpen) {
      throw new Error(`Document '${this.id}' is not open yet.`);
    }
  }

  /** Subscribes on the current session in the way the replica's state calls for. */
  private subscribe(): void {
    const session = this.session;
    if (session === null) {
      return;
    }
    // The type this SDK implements: a new document is created with it, and an existing document of another type is
    // refused by the server with TYPE_MISMATCH instead of streaming ops this replica cannot apply (P6).
    let value: { docId: string; type: string; fromVersion?: bigint; snapshot?: boolean };
    if (!this.isOpen) {
      this.phase = Phase.Opening;
      value = { docId: this.id, type: this.type.name, snapshot: true };
    } else if (this.needsSnapshot) {
      this.phase = Phase.Resyncing;
      value = { docId: this.id, type: this.type.name, snapshot: true };
    } else {
      this.phase = Phase.Resuming;
      value = { docId: this.id, type: this.type.name, fromVersion: BigInt(this.serverVersion) };
    }
    this.subscribeRequestId = this.host.nextRequestId();
    session.send(this.subscribeRequestId, { case: "subscribe", value });
  }

  private onSubscribeError(error: CollabServerError): void {
    if (error.code === ErrorCode.TYPE_MISMATCH && !(error instanceof DocumentTypeError)) {
      error = new DocumentTypeError(this.id, this.type.name, null, error.message.replace(/^TYPE_MISMATCH: /, ""));
    }
    if (error.retryable) {
      this.scheduleRetry(() => this.subscribe());
      return;
    }
    if (this.phase === Phase.Opening) {
      this.fail(error);
    } else if (this.phase === Phase.Resuming && error.code === ErrorCode.VERSION_TOO_OLD) {
      this.phase = Phase.Fetching;
      this.fetchFromVersion = this.serverVersion;
      this.sendFetch();
    } else if (this.phase === Phase.Resuming && error.code === ErrorCode.VERSION_FROM_FUTURE) {
      this.beginResync(InflightFate.Unknown);
    } else {
      // FORBIDDEN, INVALID_DOC_ID, TOO_MANY_SUBSCRIPTIONS... on a resubscribe: the document cannot be followed.
      this.fail(error);
    }
  }

  private onSubmitError(error: CollabServerError): void {
    if (error.retryable) {
      // OVERLOADED, RATE_LIMITED, UNAVAILABLE: not sequenced, or (UNAVAILABLE) outcome unknown. Either way the same
      // seq is resent after a backoff: the server deduplicates it if it had been sequenced.
      // Only that op is resent: if its Ack (or the op itself in Ops) arrived meanwhile, the retry has nothing to do.
      const seq = this.inflightSeq;
      this.scheduleRetry(() => {
        if (this.inflight !== null && this.inflightSeq === seq) {
          this.inflightSentOnSession = false;
          this.trySendInflight();
        }
      });
      return;
    }
    if (error.code === ErrorCode.ALREADY_COMMITTED) {
      this.beginResync(InflightFate.Included);
    } else if (error.code === ErrorCode.VERSION_TOO_OLD || error.code === ErrorCode.VERSION_FROM_FUTURE) {
      // Deduplication precedes base validation on the server: these mean the op was not sequenced.
      this.beginResync(InflightFate.NotIncluded);
    } else if (error.code === ErrorCode.NOT_SUBSCRIBED) {
      this.subscribe();
    } else {
      this.beginResync(InflightFate.Rejected);
    }
  }

  private sendFetch(): void {
    const session = this.session;
    if (session === null || this.phase !== Phase.Fetching) {
      return;
    }
    this.fetchRequestId = this.host.nextRequestId();
    session.send(this.fetchRequestId, { case: "fetchOps", value: { docId: this.id, fromVersion: BigInt(this.fetchFromVersion), toVersion: 0n } });
  }

  /** Applies sequenced ops in version order; false when it stopped to recover. */
  private applyOps(ops: readonly SequencedOp[]): boolean {
    for (const op of ops) {
      const version = Number(op.version);
      if (version <= this.serverVersion) {
        continue;
      }
      if (version !== this.serverVersion + 1) {
        // A gap: a server bug (section 5.3). Resubscribe from the known version.
        this.subscribe();
        return false;
      }
      if (this.inflight !== null && this.inflightSentClientId !== null && op.clientId === this.inflightSentClientId && Number(op.clientSeq) === this.inflightSeq) {
        // Our own op, sequenced before the connection dropped: this is its Ack.
        this.acknowledge(version);
        continue;
      }
      let remote: O;
      try {
        remote = this.type.decode(op.op);
        this.type.checkFits(remote, this.serverDoc);
      } catch {
        // Undecodable or does not fit: the replica cannot follow the stream any more.
        this.beginResync(InflightFate.Unknown);
        return false;
      }
      this.applyRemote(version, remote, op.clientId, op.author);
    }
    return true;
  }

  private applyRemote(version: number, remote: O, clientId: string, author: string): void {
    let incoming = remote;
    if (this.inflight !== null) {
      const inflight = this.type.transform(this.inflight, incoming, "left");
      incoming = this.type.transform(incoming, this.inflight, "right");
      this.inflight = inflight;
    }
    if (this.buffer !== null) {
      const buffer = this.type.transform(this.buffer, incoming, "left");
      incoming = this.type.transform(incoming, this.buffer, "right");
      this.buffer = buffer;
    }
    this.serverDoc = this.type.apply(this.serverDoc, remote);
    this.serverVersion = version;
    this.remember(version, remote, clientId);
    const previous = this.localDoc;
    this.localDoc = this.type.apply(previous, incoming);
    this.movePresences(incoming, clientId, false);
    this.notify(incoming, previous, false, undefined);
    this.emit("change", this.changeEvent(incoming, previous, clientId, author || null, false));
  }

  private acknowledge(version: number): void {
    const inflight = this.inflight!;
    this.emit("ack", { clientId: this.inflightSentClientId ?? this.session?.welcome.clientId ?? "", clientSeq: this.inflightSeq, version });
    this.serverDoc = this.type.apply(this.serverDoc, inflight);
    this.serverVersion = version;
    this.remember(version, inflight, this.inflightSentClientId ?? "");
    this.retryAttempt = 0;
    this.inflight = null;
    if (this.buffer !== null) {
      const buffered = this.buffer;
      this.buffer = null;
      this.setInflight(buffered);
      this.trySendInflight();
    }
    this.afterPendingChanged();
  }

  /** Makes `op` the in-flight op with a new client seq (sent by trySendInflight). */
  private setInflight(op: O): void {
    this.inflight = op;
    this.inflightSeq = this.host.nextClientSeq();
    this.inflightSentClientId = null;
    this.inflightSentOnSession = false;
  }

  /** Sends the in-flight op unless it already went out on this connection or the subscription is not live. */
  private trySendInflight(): void {
    const session = this.session;
    if (this.phase !== Phase.Live || session === null || this.resendAfterCatchUp || this.inflight === null || this.inflightSentOnSession) {
      return;
    }
    const bytes = this.type.encode(this.inflight);
    const base = this.serverVersion;
    if (session.send(0, { case: "submit", value: { docId: this.id, clientSeq: BigInt(this.inflightSeq), baseVersion: BigInt(base), op: bytes } })) {
      this.inflightSentClientId = session.welcome.clientId;
      this.inflightSentOnSession = true;
      this.inflightSentBase = base;
      this.inflightSentBytes = bytes;
    }
  }

  /** After catch-up under a new client id: the old op is not in the history, so move the pending edits to the new id. */
  private checkCatchUp(): void {
    if (!this.resendAfterCatchUp || this.phase !== Phase.Live || this.session === null || this.serverVersion < this.catchUpTarget) {
      return;
    }
    this.resendAfterCatchUp = false;
    if (this.inflight !== null) {
      if (this.inflightSentClientId !== null) {
        // Sent under the old id and not in the catch-up: a new seq under the new id. (An op never sent, e.g. the
        // buffer promoted when the old one was recognised, keeps the seq it was given.)
        this.setInflight(this.inflight);
      }
      this.trySendInflight();
    }
  }

  private forgetRemotePresence(): void {
    for (const clientId of this.remotePresence.keys()) {
      this.emit("presence", { clientId, presence: null });
    }
    this.remotePresence.clear();
  }

  private afterResubscribed(): void {
    // The server forgot presence with the old subscription: start from its fresh broadcasts.
    this.forgetRemotePresence();
    this.presenceDirty ||= this.localPresence !== null;
    this.trySendInflight();
    this.trySendPresence();
  }

  private afterPendingChanged(): void {
    if (this.inflight !== null) {
      return;
    }
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const waiter of waiters) {
      waiter.resolve();
    }
    this.trySendPresence();
  }

  // ---- snapshot recovery

  private beginResync(fate: InflightFate): void {
    this.needsSnapshot = true;
    // A rejected op stays rejected even if a later step of the same recovery knows less.
    this.resyncFate = this.resyncFate === InflightFate.Rejected && fate === InflightFate.Unknown ? InflightFate.Rejected : fate;
    this.probeSnapshot = null;
    this.probeQueue = null;
    this.subscribe();
  }

  private sendProbe(): void {
    const session = this.session;
    if (this.phase !== Phase.Probing || session === null) {
      return;
    }
    session.send(0, {
      case: "submit",
      value: { docId: this.id, clientSeq: BigInt(this.inflightSeq), baseVersion: BigInt(this.inflightSentBase), op: this.inflightSentBytes },
    });
  }

  private resolveProbe(included: boolean, upToDate: boolean): void {
    const snapshot = this.probeSnapshot!;
    const queued = this.probeQueue!;
    this.probeSnapshot = null;
    this.probeQueue = null;
    if (!upToDate) {
      // The probe was sequenced just now, after the snapshot: a fresh snapshot holds it.
      this.beginResync(InflightFate.Included);
      return;
    }
    this.completeResync(snapshot, included ? InflightFate.Included : InflightFate.NotIncluded);
    if (this.phase === Phase.Live && queued.length > 0) {
      this.applyOps(queued);
    }
  }

  /** Rebases the surviving local edits onto the snapshot (PROTOCOL.md section 7.3). */
  private completeResync(snapshot: Snapshot, fate: InflightFate): void {
    const type = this.type;
    let document: D;
    try {
      document = type.fromSnapshot(snapshot);
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    const previous = this.localDoc;
    let basis = this.serverDoc;
    let pending: O = type.noop();
    if (this.inflight !== null) {
      const inflight = this.inflight;
      const buffer = this.buffer ?? type.noop();
      switch (fate) {
        case InflightFate.NotIncluded:
          // Never sequenced: everything pending is still to be applied.
          pending = type.compose(inflight, buffer);
          break;
        case InflightFate.Rejected:
          // Dropped for good: take it out of the buffer's context exactly (its inverse), keep the buffer.
          pending = type.isNoop(buffer) ? type.noop() : type.transform(buffer, type.invert(inflight, this.serverDoc), "left");
          break;
        default:
          // Already in the snapshot: only the buffered edits are new.
          basis = type.apply(basis, inflight);
          pending = buffer;
          break;
      }
    }
    const rebased = type.isNoop(pending) ? pending : type.transform(pending, type.diff(basis, document), "left");

    this.needsSnapshot = false;
    this.resyncFate = InflightFate.Unknown;
    this.resendAfterCatchUp = false;
    this.phase = Phase.Live;
    this.retryAttempt = 0;
    this.serverDoc = document;
    this.serverVersion = Number(snapshot.version);
    this.localDoc = document;
    this.history.length = 0;
    this.inflight = null;
    this.buffer = null;
    if (!type.isNoop(rebased)) {
      this.localDoc = type.apply(this.localDoc, rebased);
      this.setInflight(rebased);
    }
    const change = type.diff(previous, this.localDoc);
    this.movePresences(change, null, false);
    this.notify(change, previous, false, undefined);
    this.emit("change", this.changeEvent(change, previous, null, null, true));
    this.afterResubscribed();
    this.afterPendingChanged();
  }

  // ---- presence

  private trySendPresence(): void {
    const session = this.session;
    if (!this.presenceDirty || this.phase !== Phase.Live || session === null || this.inflight !== null) {
      return;
    }
    const local = this.localPresence;
    const value =
      local === null
        ? { docId: this.id, baseVersion: BigInt(this.serverVersion) }
        : { docId: this.id, baseVersion: BigInt(this.serverVersion), selection: { anchor: BigInt(local.anchor), head: BigInt(local.head) }, userData: local.userData };
    if (session.send(0, { case: "presence", value })) {
      this.presenceDirty = false;
    }
  }

  private remember(version: number, op: O, clientId: string): void {
    this.history.push({ version, op, clientId });
    if (this.history.length > PRESENCE_HISTORY) {
      this.history.shift();
    }
  }

  /** A remote cursor at server version `at` in local terms: through later server ops (clamped if unknown), then pending edits. */
  private transformRemoteCursor(at: number, cursor: number, owner: string): number {
    const first = this.history[0]?.version ?? this.serverVersion + 1;
    if (at < this.serverVersion && at >= first - 1) {
      for (const entry of this.history) {
        if (entry.version > at) {
          cursor = this.type.transformCursor(cursor, entry.op, entry.clientId === owner);
        }
      }
    }
    if (this.inflight !== null) {
      cursor = this.type.transformCursor(cursor, this.inflight, false);
    }
    if (this.buffer !== null) {
      cursor = this.type.transformCursor(cursor, this.buffer, false);
    }
    return cursor;
  }

  /** Moves every known selection through an op just applied to the local text. */
  private movePresences(op: O, author: string | null, local: boolean): void {
    if (this.type.isNoop(op)) {
      return;
    }
    if (this.localPresence !== null) {
      const p = this.localPresence;
      this.localPresence = { anchor: this.type.transformCursor(p.anchor, op, local), head: this.type.transformCursor(p.head, op, local), userData: p.userData };
    }
    for (const [clientId, presence] of this.remotePresence) {
      const own = !local && author === clientId;
      const anchor = this.type.transformCursor(presence.anchor, op, own);
      const head = this.type.transformCursor(presence.head, op, own);
      if (anchor !== presence.anchor || head !== presence.head) {
        const moved = { ...presence, anchor, head };
        this.remotePresence.set(clientId, moved);
        this.emit("presence", { clientId, presence: moved });
      }
    }
  }

  // ---- helpers

  /** @internal Registers an observer of every applied change; returns its removal. */
  observe(observer: OpObserver<D, O>): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  private notify(op: O, previous: D, local: boolean, origin: string | undefined): void {
    for (const observer of this.observers) {
      observer(op, previous, local, origin);
    }
  }

  /** @internal The `change` event of a remote op or a resync, in the document class's terms. */
  protected abstract changeEvent(op: O, previous: D, clientId: string | null, author: string | null, resync: boolean): C;

  /** @internal The `localChange` event of a local edit. */
  protected abstract localChangeEvent(op: O, previous: D, origin: string | undefined): L;

  private scheduleRetry(action: () => void): void {
    const session = this.session;
    if (session === null) {
      return;
    }
    const scheduler = this.host.scheduler();
    this.retryAttempt = Math.min(this.retryAttempt + 1, MAX_RETRY_EXPONENT);
    const delay = backoffDelay(this.host.reconnectPolicy(), this.retryAttempt, scheduler.random());
    const generation = this.generation;
    scheduler.clearTimeout(this.retryTimer);
    this.retryTimer = scheduler.setTimeout(() => {
      this.retryTimer = undefined;
      this.queue.run(() => {
        if (this.isCurrent(session) && this.generation === generation) {
          action();
        }
      });
    }, delay);
  }

  /** The document cannot go on: reject the open (if pending), close, and let go of it. */
  private fail(error: Error): void {
    this.closeWith(error, error);
  }

  private closeWith(reason: Error, reported: Error | null): void {
    if (this.closedError !== null) {
      return;
    }
    this.closedError = reason;
    this.phase = Phase.Detached;
    this.session = null;
    this.host.scheduler().clearTimeout(this.retryTimer);
    this.rejectOpened(reason);
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const waiter of waiters) {
      waiter.reject(reason);
    }
    this.host.removeDocument(this);
    this.emit("closed", { error: reported });
  }
}
