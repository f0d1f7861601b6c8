/**
 * `CollabClient`: one logical connection to a Collab server that survives network failures (docs/PROTOCOL.md
 * sections 1 to 4): Hello/Welcome with a client id kept per tab, reconnect with exponential backoff and full
 * jitter, Redirect, keep-alive pings, token refresh, and resume of every open document.
 * @module
 */
import type { ServerMessage, Welcome } from "./gen/collab/v1/collab_pb.js";
import { backoffDelay, type ReconnectPolicy, type ResolvedReconnectPolicy, resolveReconnectPolicy } from "./backoff.js";
import { CollabDocument } from "./document.js";
import type { AnyDocument, DocumentHost, OpenDocumentOptions } from "./sync.js";
import { CollabConnectionError, CollabServerError, DocumentClosedError } from "./errors.js";
import { Emitter, EventQueue } from "./events.js";
import {
  ABNORMAL_CLOSURE,
  type AnnouncedLimits,
  announcedLimits,
  BEARER_SUBPROTOCOL_PREFIX,
  type ClientBody,
  CloseCode,
  decodeServerMessage,
  encodeClientMessage,
  ErrorCode,
  PROTOCOL_VERSION,
  SUBPROTOCOL,
} from "./protocol.js";
import { type Scheduler, systemScheduler, type TimerHandle } from "./scheduler.js";
import { type ClientStorage, defaultStorage, readIdentity, SEQ_BLOCK, writeIdentity } from "./storage.js";
import { type Transport, type TransportClose, type TransportFactory, type WebSocketConstructor, webSocketTransport } from "./transport.js";

/** The life cycle of a client's connection (PROTOCOL.md section 4.2). */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "closed";

/** Why {@link CollabClientOptions.getToken} is called. */
export interface TokenRequest {
  /** `connect`: before every connection attempt; `reauthenticate`: the server announced the token's expiry. */
  reason: "connect" | "reauthenticate";
  /** The address being connected to. */
  url: string;
}

/** Settings of a {@link CollabClient}. */
export interface CollabClientOptions {
  /** The WebSocket endpoint, e.g. `wss://collab.example.com/ws`. */
  url: string | URL;
  /**
   * Returns the access token (a JWT), or `null` for none. Called before every connection attempt and when the server
   * sends `AuthExpiring` (the answer then travels as `Reauthenticate` on the open connection). The token is offered as
   * the `bearer.<token>` subprotocol: it never appears in a URL, and the SDK never stores it. When the server reads
   * the token from an HttpOnly cookie instead (docs/SECURITY.md), leave this out.
   */
  getToken?: (request: TokenRequest) => string | null | undefined | Promise<string | null | undefined>;
  /** Free text for the server's logs (`Hello.client_name`). */
  clientName?: string;
  /**
   * Where the client id and its last client seq are kept so that deduplication spans page reloads. Default: the
   * tab's `sessionStorage` in a browser (per tab, survives reloads), memory elsewhere. `null`: nowhere (a new id per
   * client object).
   */
  storage?: ClientStorage | null;
  /** The storage key; default `collab.client:<url>`. */
  storageKey?: string;
  /** Reconnect backoff. */
  reconnect?: ReconnectPolicy;
  /** How often a Ping is sent, ms (default 15,000); 0 disables the keep-alive. */
  pingIntervalMs?: number;
  /**
   * Grace for the server's answer, ms (default 10,000): with nothing received for ping interval + pong timeout the
   * connection counts as dead and is replaced.
   */
  pongTimeoutMs?: number;
  /** Budget of one connection attempt (token, WebSocket, Hello/Welcome), ms (default 10,000). */
  connectTimeoutMs?: number;
  /** Redirects followed in a row before an attempt counts as failed (default 5). */
  maxRedirects?: number;
  /**
   * Where the platform announces network changes (`online` / `offline` events): the browser's `window` by default,
   * none elsewhere; `null` ignores them. On either event a connected client checks its connection at once (a Ping
   * that must be answered within {@link CollabClientOptions.networkProbeMs}) instead of waiting for the keep-alive to
   * expire; on `online` a reconnecting client skips the rest of its backoff.
   */
  networkEvents?: NetworkEvents | null;
  /** How long the check after a network change waits for the server's answer, ms (default 3,000). */
  networkProbeMs?: number;
  /** The WebSocket class when the platform has none (Node 20: `import { WebSocket } from "ws"`). */
  webSocket?: WebSocketConstructor;
  /** The transport; the WebSocket one unless a test plugs another. */
  transport?: TransportFactory;
  /** Timers and randomness; the platform's unless a test plugs another. */
  scheduler?: Scheduler;
  /**
   * Receives what an event listener threw. Listeners never break the SDK; by default their errors are rethrown
   * asynchronously, so they reach `window.onerror` / `process.on("uncaughtException")` like any uncaught error.
   */
  onListenerError?: (error: unknown) => void;
}

/** The `online` / `offline` events of the platform (a browser's `window`). */
export interface NetworkEvents {
  addEventListener(type: "online" | "offline", listener: () => void): void;
  removeEventListener(type: "online" | "offline", listener: () => void): void;
}

/** Why a connection ended. */
export type DisconnectReason =
  | "transport-error"
  | "server-closed"
  | "keep-alive-timeout"
  | "redirected"
  | "auth-expired"
  | "session-replaced"
  | "client-closed"
  | "rejected"
  | "retries-exhausted";

/** Payload of the `connected` event. */
export interface ConnectedEvent {
  /** The client id the server assigned or resumed. */
  clientId: string;
  /** The server node holding the connection. */
  serverId: string;
  /** The server recognised the client id from an earlier connection. */
  resumed: boolean;
  /** The address connected to (differs from the configured one after a Redirect). */
  url: string;
}

/** Payload of the `disconnected` event. */
export interface DisconnectedEvent {
  reason: DisconnectReason;
  /** The WebSocket close code, if the connection was closed with one. */
  closeCode?: number;
  /** Human-readable detail. */
  description: string;
  /** `false`: the client is now closed for good. */
  willReconnect: boolean;
  /** The failure, for errors. */
  error?: Error;
}

/** Payload of the `reconnecting` event: an attempt is about to be made after `delayMs`. */
export interface ReconnectingEvent {
  /** 1-based attempt number since the connection was lost. */
  attempt: number;
  delayMs: number;
  url: string;
}

/** The events of a {@link CollabClient}. */
export interface ClientEvents {
  /** The connection state changed. */
  state: ConnectionState;
  /** A connection was established (Welcome received); open documents resume right after. */
  connected: ConnectedEvent;
  /** A connection ended. */
  disconnected: DisconnectedEvent;
  /** A reconnect attempt is scheduled. */
  reconnecting: ReconnectingEvent;
  /** Every Error message from the server (document errors are also raised on the document). */
  error: CollabServerError;
}

/** @internal One established connection (after Welcome). */
export class Session {
  ended = false;
  redirect: { url: string; retryAfterMs: number; reason: string } | null = null;
  lastReceive: number;
  pingTimer: TimerHandle | undefined;
  probeTimer: TimerHandle | undefined;
  /** Messages received on this connection (the network probe checks that one arrived after its Ping). */
  received = 0;
  pingNonce = 0;

  constructor(
    readonly transport: Transport,
    readonly url: string,
    readonly welcome: Welcome,
    now: number,
  ) {
    this.lastReceive = now;
  }

  send(requestId: number, body: ClientBody): boolean {
    if (this.ended) {
      return false;
    }
    this.transport.send(encodeClientMessage(requestId, body));
    return true;
  }
}

/** How an attempt or a session ended, for the reconnect decision. */
interface Loss {
  reason: DisconnectReason;
  description: string;
  closeCode?: number;
  error?: Error;
  /** The HTTP status of a refused upgrade (Node's ws reveals it). */
  httpStatus?: number;
  fatal: boolean;
  redirect?: { url: string; retryAfterMs: number } | null;
}

const CLOSE_HANDSHAKE_TIMEOUT_MS = 2000;

/**
 * A connection to a Collab server. Create it with {@link CollabClient.connect}, open documents with
 * {@link CollabClient.openDocument}, and close it with {@link CollabClient.close} (or `await using`).
 *
 * Events are delivered after the SDK has finished the state change that raised them; listeners may call any API.
 */
export class CollabClient extends Emitter<ClientEvents> {
  private readonly seedUrl: string;
  private readonly policy: ResolvedReconnectPolicy;
  private readonly scheduler: Scheduler;
  private readonly transportFactory: TransportFactory;
  private readonly storage: ClientStorage | null;
  private readonly storageKey: string;
  private readonly pingIntervalMs: number;
  private readonly deadAfterMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxRedirects: number;
  private readonly networkProbeMs: number;
  private readonly networkEvents: NetworkEvents | null;
  private readonly onNetworkChange = (online: boolean): void => this.queue.run(() => this.networkChanged(online));
  private readonly onOnline = (): void => this.onNetworkChange(true);
  private readonly onOffline = (): void => this.onNetworkChange(false);
  private readonly documents = new Map<string, AnyDocument>();

  private currentState: ConnectionState = "connecting";
  private session: Session | null = null;
  private generation = 0;
  private storedClientId: string | null;
  private lastSeq: number;
  private lastRequestId = 0;
  private reconnectTimer: TimerHandle | undefined;
  private attemptCleanup: (() => void) | null = null;
  private firstConnect: { resolve: () => void; reject: (error: Error) => void } | null = null;
  private closedPromise: Promise<void> | null = null;

  private constructor(private readonly options: CollabClientOptions, queue: EventQueue) {
    super(queue);
    this.seedUrl = String(options.url);
    this.policy = resolveReconnectPolicy(options.reconnect);
    this.scheduler = options.scheduler ?? systemScheduler;
    this.transportFactory = options.transport ?? webSocketTransport(options.webSocket);
    this.storage = options.storage === undefined ? defaultStorage() : options.storage;
    this.storageKey = options.storageKey ?? `collab.client:${this.seedUrl}`;
    this.pingIntervalMs = options.pingIntervalMs ?? 15_000;
    this.deadAfterMs = this.pingIntervalMs + (options.pongTimeoutMs ?? 10_000);
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.maxRedirects = options.maxRedirects ?? 5;
    this.networkProbeMs = options.networkProbeMs ?? 3000;
    this.networkEvents = options.networkEvents === undefined ? defaultNetworkEvents() : options.networkEvents;
    this.networkEvents?.addEventListener("online", this.onOnline);
    this.networkEvents?.addEventListener("offline", this.onOffline);
    const stored = this.storage === null ? null : readIdentity(this.storage, this.storageKey);
    this.storedClientId = stored?.clientId ?? null;
    // A new page load continues in a fresh block of seqs above the stored one (see SEQ_BLOCK).
    this.lastSeq = stored === null ? 0 : stored.lastSeq + SEQ_BLOCK;
  }

  /**
   * Connects, says Hello and waits for Welcome (following Redirects). Rejects with {@link CollabConnectionError} or
   * {@link CollabServerError} when this first attempt fails; the reconnect policy applies once a connection has been
   * established.
   */
  static connect(options: CollabClientOptions): Promise<CollabClient> {
    const client = new CollabClient(options, new EventQueue(options.onListenerError));
    return new Promise<CollabClient>((resolve, reject) => {
      client.firstConnect = {
        resolve: () => resolve(client),
        reject: (error) => reject(error),
      };
      client.queue.run(() => client.attempt(client.seedUrl, 0));
    });
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.currentState;
  }

  /** The client id (assigned by the server on the first connection, or resumed from storage); empty before. */
  get clientId(): string {
    return this.session?.welcome.clientId ?? this.storedClientId ?? "";
  }

  /** The last client seq used (seqs never repeat for a client id). */
  get lastClientSeq(): number {
    return this.lastSeq;
  }

  /**
   * The limits the server announced in its last `Welcome` (section 11's defaults for those it did not announce, and
   * before the first connection). Edits and presence over them are refused locally, before they reach the wire.
   */
  get limits(): AnnouncedLimits {
    return announcedLimits(this.lastWelcome);
  }

  private lastWelcome: Welcome | null = null;

  /** The server node of the current connection, or `null` while disconnected. */
  get serverId(): string | null {
    return this.session?.welcome.serverId ?? null;
  }

  /**
   * Subscribes to a text document (`text-unicode`) and resolves once its snapshot arrived (while disconnected, the
   * subscription is made when the connection is back). A document that does not exist yet is created as a text
   * document. Rejects with {@link DocumentTypeError} when it is a rich-text document (open it with
   * `openRichDocument(client, docId)`), with {@link CollabServerError} when the server refuses (forbidden, invalid id, too many
   * subscriptions), and throws when the document is already open on this client.
   */
  openDocument(docId: string, options?: OpenDocumentOptions): Promise<CollabDocument> {
    return this.openWith(docId, (host, queue) => new CollabDocument(host, docId, queue, options));
  }

  /**
   * @internal Opens a document of the class `create` makes (the typed open functions: {@link openDocument} here,
   * `openRichDocument` in richdocument.ts, which stays out of a bundle that does not use it).
   */
  openWith<T extends AnyDocument>(docId: string, create: (host: DocumentHost, queue: EventQueue) => T): Promise<T> {
    if (typeof docId !== "string" || docId.length === 0) {
      throw new TypeError("A document id is a non-empty string.");
    }
    if (this.currentState === "closed") {
      return Promise.reject(new CollabConnectionError("The client is closed."));
    }
    if (this.documents.has(docId)) {
      throw new Error(`Document '${docId}' is already open on this client.`);
    }
    const document = create(this.host, this.queue);
    this.documents.set(docId, document);
    this.queue.run(() => {
      if (this.session !== null) {
        document.onSessionStarted(this.session, this.generation);
      }
    });
    return document.opened as Promise<T>;
  }

  /** The open document with this id, if any (a {@link CollabDocument}, or a `RichDocument`). */
  getDocument(docId: string): AnyDocument | undefined {
    return this.documents.get(docId);
  }

  /**
   * Closes the connection (code 1000) and every open document. Pending local edits that were not acknowledged are
   * lost. Resolves once the server answered the close (at most 2 s).
   */
  close(): Promise<void> {
    if (this.closedPromise !== null) {
      return this.closedPromise;
    }
    this.closedPromise = this.queue.run(() => {
      const session = this.session;
      // Like any end of a connection, a deliberate close is reported (when there was one to close).
      this.shutdown({ reason: "client-closed", description: "Closed by the application.", closeCode: CloseCode.NORMAL_CLOSURE, fatal: true }, session !== null);
      if (session === null) {
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const timer = this.scheduler.setTimeout(resolve, CLOSE_HANDSHAKE_TIMEOUT_MS);
        this.closeWaiter = () => {
          this.scheduler.clearTimeout(timer);
          resolve();
        };
        session.transport.close(CloseCode.NORMAL_CLOSURE, "client closing");
      });
    });
    return this.closedPromise;
  }

  /** `await using client = await CollabClient.connect(...)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private closeWaiter: (() => void) | null = null;

  // ------------------------------------------------------------------ the host documents talk to

  private readonly host: DocumentHost = {
    nextRequestId: () => ++this.lastRequestId,
    nextClientSeq: () => {
      this.lastSeq++;
      this.persistIdentity();
      return this.lastSeq;
    },
    scheduler: () => this.scheduler,
    limits: () => announcedLimits(this.lastWelcome),
    reconnectPolicy: () => this.policy,
    removeDocument: (document) => {
      if (this.documents.get(document.id) === document) {
        this.documents.delete(document.id);
      }
    },
  };

  private persistIdentity(): void {
    const clientId = this.session?.welcome.clientId ?? this.storedClientId;
    if (this.storage !== null && clientId !== null && clientId.length > 0) {
      writeIdentity(this.storage, this.storageKey, { clientId, lastSeq: this.lastSeq });
    }
  }

  // ------------------------------------------------------------------ connection life cycle

  private setState(state: ConnectionState): void {
    if (this.currentState !== state) {
      this.currentState = state;
      this.emit("state", state);
    }
  }

  /** One attempt: token, transport, Hello, then Welcome, Redirect or a failure. */
  private attempt(url: string, redirectsInARow: number): void {
    let done = false;
    let transport: Transport | null = null;
    let timeout: TimerHandle | undefined;
    const finish = (outcome: () => void): void => {
      if (done) {
        return;
      }
      done = true;
      this.attemptCleanup = null;
      this.scheduler.clearTimeout(timeout);
      this.queue.run(outcome);
    };
    const fail = (loss: Loss, close?: { code: number; reason: string }): void => {
      finish(() => {
        if (close !== undefined) {
          transport?.close(close.code, close.reason);
        }
        this.onAttemptFailed(loss, redirectsInARow);
      });
    };
    this.attemptCleanup = () => {
      done = true;
      this.scheduler.clearTimeout(timeout);
      transport?.close(CloseCode.NORMAL_CLOSURE, "client closing");
    };
    timeout = this.scheduler.setTimeout(
      () => fail({ reason: "transport-error", description: `No Welcome from ${url} within ${this.connectTimeoutMs} ms.`, fatal: false }, { code: CloseCode.NORMAL_CLOSURE, reason: "handshake timeout" }),
      this.connectTimeoutMs,
    );

    const open = (token: string | null | undefined): void => {
      if (done) {
        return;
      }
      const protocols = [SUBPROTOCOL];
      if (token) {
        protocols.push(BEARER_SUBPROTOCOL_PREFIX + token);
      }
      let handshakeDone = false;
      try {
        transport = this.transportFactory(url, protocols, {
          onOpen: () => {
            if (done) {
              return;
            }
            transport!.send(
              encodeClientMessage(0, {
                case: "hello",
                value: { protocolVersion: PROTOCOL_VERSION, clientId: this.storedClientId ?? "", clientName: this.options.clientName ?? "collab-js/0.1" },
              }),
            );
          },
          onMessage: (data) => {
            if (handshakeDone) {
              this.queue.run(() => this.onMessage(data));
              return;
            }
            if (done) {
              return;
            }
            let message: ServerMessage;
            try {
              message = decodeServerMessage(data);
            } catch (error) {
              fail({ reason: "transport-error", description: "The server's handshake reply does not decode.", error: error as Error, fatal: false }, { code: CloseCode.INVALID_PAYLOAD, reason: "undecodable message" });
              return;
            }
            const body = message.body;
            if (body.case === "welcome") {
              if (body.value.protocolVersion !== PROTOCOL_VERSION) {
                fail({ reason: "rejected", description: `The server speaks protocol version ${body.value.protocolVersion}, this client ${PROTOCOL_VERSION}.`, fatal: true }, { code: CloseCode.NORMAL_CLOSURE, reason: "protocol version" });
                return;
              }
              handshakeDone = true;
              finish(() => this.onWelcome(transport!, url, body.value));
            } else if (body.case === "redirect") {
              const target = resolveRedirect(url, body.value.url);
              const retryAfterMs = body.value.retryAfterMs;
              finish(() => {
                transport?.close(CloseCode.NORMAL_CLOSURE, "redirected");
                if (redirectsInARow >= this.maxRedirects) {
                  this.onAttemptFailed({ reason: "transport-error", description: `More than ${this.maxRedirects} redirects in a row.`, fatal: false }, 0);
                } else {
                  this.scheduleAttempt(target, retryAfterMs + this.policy.minDelayMs * this.scheduler.random(), redirectsInARow + 1, 0);
                }
              });
            } else if (body.case === "error") {
              const e = body.value;
              const error = new CollabServerError(e.code, e.message, e.retryable, e.docId || null, Number(e.clientSeq));
              this.emit("error", error);
              fail({ reason: isFatalHelloError(e.code) ? "rejected" : "transport-error", description: error.message, error, fatal: isFatalHelloError(e.code) }, { code: CloseCode.NORMAL_CLOSURE, reason: "refused" });
            } else {
              fail({ reason: "transport-error", description: `Expected Welcome, got ${body.case ?? "an empty message"}.`, fatal: false }, { code: CloseCode.PROTOCOL_ERROR, reason: "expected Welcome" });
            }
          },
          onClose: (close) => {
            if (handshakeDone) {
              this.queue.run(() => this.onTransportClosed(close));
              return;
            }
            fail(lossOfFailedAttempt(close, url));
          },
        });
      } catch (error) {
        fail({ reason: "transport-error", description: `Could not connect to ${url}: ${(error as Error).message}`, error: error as Error, fatal: false });
      }
    };

    const getToken = this.options.getToken;
    if (getToken === undefined) {
      open(null);
      return;
    }
    let token: ReturnType<typeof getToken>;
    try {
      token = getToken({ reason: "connect", url });
    } catch (error) {
      fail({ reason: "transport-error", description: `getToken failed: ${(error as Error).message}`, error: error as Error, fatal: false });
      return;
    }
    if (token instanceof Promise) {
      token.then(open, (error: unknown) =>
        fail({ reason: "transport-error", description: `getToken failed: ${(error as Error)?.message ?? String(error)}`, error: error as Error, fatal: false }),
      );
    } else {
      open(token);
    }
  }

  private onWelcome(transport: Transport, url: string, welcome: Welcome): void {
    if (this.currentState === "closed") {
      transport.close(CloseCode.NORMAL_CLOSURE, "client closing");
      return;
    }
    const session = new Session(transport, url, welcome, this.scheduler.now());
    this.session = session;
    this.lastWelcome = welcome;
    this.generation++;
    this.storedClientId = welcome.clientId;
    this.persistIdentity();
    this.setState("connected");
    this.emit("connected", { clientId: welcome.clientId, serverId: welcome.serverId, resumed: welcome.resumed, url });
    this.schedulePing(session);
    const first = this.firstConnect;
    this.firstConnect = null;
    for (const document of [...this.documents.values()]) {
      document.onSessionStarted(session, this.generation);
    }
    first?.resolve();
  }

  private schedulePing(session: Session): void {
    if (this.pingIntervalMs <= 0) {
      return;
    }
    session.pingTimer = this.scheduler.setTimeout(() => {
      this.queue.run(() => {
        if (session.ended) {
          return;
        }
        if (this.scheduler.now() - session.lastReceive > this.deadAfterMs) {
          session.transport.close(CloseCode.NORMAL_CLOSURE, "keep-alive timeout");
          this.endSession(session, { reason: "keep-alive-timeout", description: "No message from the server within the keep-alive window.", fatal: false });
          return;
        }
        session.send(0, { case: "ping", value: { nonce: BigInt(++session.pingNonce) } });
        this.schedulePing(session);
      });
    }, this.pingIntervalMs);
  }

  /**
   * The platform says the network changed. A socket can outlive the network it was opened on without noticing (no
   * FIN ever arrives), so a connected client proves its connection with a Ping answered within networkProbeMs; a
   * reconnecting one, told the network is back, tries at once rather than after the rest of its backoff.
   */
  private networkChanged(online: boolean): void {
    const session = this.session;
    if (session !== null && !session.ended) {
      const receivedBefore = session.received;
      session.send(0, { case: "ping", value: { nonce: BigInt(++session.pingNonce) } });
      this.scheduler.clearTimeout(session.probeTimer);
      session.probeTimer = this.scheduler.setTimeout(() => {
        this.queue.run(() => {
          if (!session.ended && session.received === receivedBefore) {
            session.transport.close(CloseCode.NORMAL_CLOSURE, "network changed");
            this.endSession(session, { reason: "keep-alive-timeout", description: `No answer within ${this.networkProbeMs} ms after the network went ${online ? "online" : "offline"}.`, fatal: false });
          }
        });
      }, this.networkProbeMs);
      return;
    }
    if (online && this.currentState === "reconnecting" && this.reconnectTimer !== undefined && this.firstConnect === null) {
      this.scheduleAttempt(this.seedUrl, 0, 0, this.reconnectAttempt);
    }
  }

  private onMessage(data: Uint8Array): void {
    const session = this.session;
    if (session === null || session.ended) {
      return;
    }
    session.lastReceive = this.scheduler.now();
    session.received++;
    let message: ServerMessage;
    try {
      message = decodeServerMessage(data);
    } catch (error) {
      session.transport.close(CloseCode.INVALID_PAYLOAD, "undecodable message");
      this.endSession(session, { reason: "transport-error", description: "A server message does not decode.", error: error as Error, closeCode: CloseCode.INVALID_PAYLOAD, fatal: false });
      return;
    }
    const requestId = Number(message.requestId);
    const body = message.body;
    switch (body.case) {
      case "ops":
        this.documents.get(body.value.docId)?.onOps(session, requestId, body.value);
        break;
      case "ack":
        this.documents.get(body.value.docId)?.onAck(session, body.value);
        break;
      case "snapshot":
        this.documents.get(body.value.docId)?.onSnapshot(session, requestId, body.value);
        break;
      case "subscribed":
        this.documents.get(body.value.docId)?.onSubscribed(session, requestId, body.value);
        break;
      case "presence":
        this.documents.get(body.value.docId)?.onPresence(session, body.value);
        break;
      case "error": {
        const e = body.value;
        const error = new CollabServerError(e.code, e.message, e.retryable, e.docId || null, Number(e.clientSeq));
        this.emit("error", error);
        if (e.docId.length > 0) {
          this.documents.get(e.docId)?.onError(session, requestId, error);
        }
        break;
      }
      case "redirect":
        session.redirect = { url: resolveRedirect(session.url, body.value.url), retryAfterMs: body.value.retryAfterMs, reason: body.value.reason };
        session.transport.close(CloseCode.NORMAL_CLOSURE, "redirected");
        this.endSession(session, { reason: "redirected", description: body.value.reason || "redirected", fatal: false, redirect: session.redirect });
        break;
      case "authExpiring":
        this.reauthenticate(session);
        break;
      default:
        // Pong only proves liveness; Unsubscribed needs no action; unknown bodies are ignored (section 12).
        break;
    }
  }

  private reauthenticate(session: Session): void {
    const getToken = this.options.getToken;
    if (getToken === undefined) {
      return;
    }
    const send = (token: string | null | undefined): void => {
      if (token && !session.ended) {
        this.queue.run(() => session.send(0, { case: "reauth", value: { token } }));
      }
    };
    try {
      const token = getToken({ reason: "reauthenticate", url: session.url });
      if (token instanceof Promise) {
        // A failed refresh leaves the connection to expire (4001), after which the reconnect asks again.
        token.then(send, () => {});
      } else {
        send(token);
      }
    } catch {
      // As above.
    }
  }

  private onTransportClosed(close: TransportClose): void {
    const session = this.session;
    if (session === null || session.ended) {
      if (this.currentState === "closed") {
        this.closeWaiter?.();
        this.closeWaiter = null;
      }
      return;
    }
    this.endSession(session, lossOfSession(close));
  }

  /** The session is over: tell the documents, then reconnect or close. */
  private endSession(session: Session, loss: Loss): void {
    if (session.ended) {
      return;
    }
    session.ended = true;
    this.scheduler.clearTimeout(session.pingTimer);
    this.scheduler.clearTimeout(session.probeTimer);
    if (this.session === session) {
      this.session = null;
    }
    for (const document of [...this.documents.values()]) {
      document.onSessionEnded(session);
    }
    if (loss.reason === "session-replaced") {
      // Another connection took over this client id (a duplicated tab): never use it again (PROTOCOL.md section 7).
      this.storedClientId = null;
      if (this.storage !== null) {
        writeIdentity(this.storage, this.storageKey, null);
      }
    }
    if (loss.fatal || this.policy.maxAttempts < 1) {
      this.shutdown(loss, true);
      return;
    }
    this.setState("reconnecting");
    this.emit("disconnected", { ...optionalLoss(loss), willReconnect: true });
    if (loss.redirect) {
      this.scheduleAttempt(loss.redirect.url, loss.redirect.retryAfterMs + this.policy.minDelayMs * this.scheduler.random(), 1, 1);
    } else {
      this.scheduleReconnect(1, loss.reason === "auth-expired");
    }
  }

  private scheduleReconnect(attempt: number, immediately: boolean): void {
    if (attempt > this.policy.maxAttempts) {
      this.shutdown({ reason: "retries-exhausted", description: `No connection after ${attempt - 1} attempts.`, fatal: true }, true);
      return;
    }
    const delay = immediately ? 0 : backoffDelay(this.policy, attempt, this.scheduler.random());
    this.scheduleAttempt(this.seedUrl, delay, 0, attempt);
  }

  private scheduleAttempt(url: string, delayMs: number, redirectsInARow: number, attempt: number): void {
    this.reconnectAttempt = attempt;
    if (this.firstConnect === null) {
      this.setState("reconnecting");
      this.emit("reconnecting", { attempt: Math.max(attempt, 1), delayMs, url });
    }
    this.scheduler.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = this.scheduler.setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.currentState !== "closed") {
        this.queue.run(() => this.attempt(url, redirectsInARow));
      }
    }, delayMs);
  }

  private reconnectAttempt = 0;

  private onAttemptFailed(loss: Loss, redirectsInARow: number): void {
    if (this.currentState === "closed") {
      return;
    }
    if (this.firstConnect !== null) {
      // The first connection is not retried (PROTOCOL.md section 4.2): the caller learns why at once.
      const first = this.firstConnect;
      this.firstConnect = null;
      const error =
        loss.error instanceof CollabServerError
          ? loss.error
          : new CollabConnectionError(loss.description, loss.closeCode, loss.httpStatus, { cause: loss.error });
      this.shutdown(loss, true);
      first.reject(error);
      return;
    }
    if (loss.fatal) {
      this.shutdown(loss, true);
      return;
    }
    if (redirectsInARow > 0) {
      // A failed redirect target: the configured address is the safe way back in (a fresh attempt count).
      this.scheduleReconnect(1, false);
      return;
    }
    this.scheduleReconnect(this.reconnectAttempt + 1, false);
  }

  /** Closed for good: by the application, a fatal rejection or exhausted attempts. */
  private shutdown(loss: Loss, emitDisconnected: boolean): void {
    if (this.currentState === "closed") {
      return;
    }
    this.scheduler.clearTimeout(this.reconnectTimer);
    this.networkEvents?.removeEventListener("online", this.onOnline);
    this.networkEvents?.removeEventListener("offline", this.onOffline);
    this.attemptCleanup?.();
    this.attemptCleanup = null;
    const session = this.session;
    if (session !== null) {
      session.ended = true;
      this.scheduler.clearTimeout(session.pingTimer);
      this.scheduler.clearTimeout(session.probeTimer);
      this.session = null;
      for (const document of [...this.documents.values()]) {
        document.onSessionEnded(session);
      }
    }
    this.currentState = "closed";
    const closedError = loss.reason === "client-closed" ? new DocumentClosedError("The client is closed.") : new CollabConnectionError(loss.description, loss.closeCode, loss.httpStatus, { cause: loss.error });
    for (const document of [...this.documents.values()]) {
      document.onClientClosed(closedError);
    }
    this.documents.clear();
    if (emitDisconnected) {
      this.emit("disconnected", { ...optionalLoss(loss), willReconnect: false });
    }
    this.emit("state", "closed");
  }
}

function optionalLoss(loss: Loss): Omit<DisconnectedEvent, "willReconnect"> {
  const event: Omit<DisconnectedEvent, "willReconnect"> = { reason: loss.reason, description: loss.description };
  if (loss.closeCode !== undefined) {
    event.closeCode = loss.closeCode;
  }
  if (loss.error !== undefined) {
    event.error = loss.error;
  }
  return event;
}


/** Errors to Hello that another attempt cannot fix (PROTOCOL.md section 4.3). */
function isFatalHelloError(code: ErrorCode): boolean {
  return (
    code === ErrorCode.UNAUTHORIZED ||
    code === ErrorCode.FORBIDDEN ||
    code === ErrorCode.PROTOCOL_VERSION ||
    code === ErrorCode.BAD_MESSAGE ||
    code === ErrorCode.NOT_HELLO ||
    code === ErrorCode.UNKNOWN_MESSAGE
  );
}

/** A transport that ended before Welcome. */
function lossOfFailedAttempt(close: TransportClose, url: string): Loss {
  const status = close.httpStatus;
  // 401/403 (and other 4xx but 408/429) on the upgrade: bad credentials or no rights; a new attempt would fail too.
  const fatalStatus = status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429;
  const fatalClose = close.code === CloseCode.FORBIDDEN || close.code === CloseCode.POLICY_VIOLATION;
  const loss: Loss = {
    reason: fatalStatus || fatalClose ? "rejected" : "transport-error",
    description: status !== undefined ? `The server refused the upgrade with HTTP ${status}.` : `Could not connect to ${url} (close ${close.code}${close.reason ? `: ${close.reason}` : ""}).`,
    closeCode: close.code,
    fatal: fatalStatus || fatalClose,
  };
  if (close.error !== undefined) {
    loss.error = close.error;
  }
  if (status !== undefined) {
    loss.httpStatus = status;
  }
  return loss;
}

/** A session that the server (or the network) ended. */
function lossOfSession(close: TransportClose): Loss {
  const loss: Loss = { reason: "server-closed", description: close.reason || `closed with ${close.code}`, closeCode: close.code, fatal: false };
  if (close.error !== undefined) {
    loss.error = close.error;
  }
  switch (close.code) {
    case CloseCode.AUTH_EXPIRED:
      loss.reason = "auth-expired";
      break;
    case CloseCode.SESSION_REPLACED:
      loss.reason = "session-replaced";
      break;
    case CloseCode.FORBIDDEN:
    case CloseCode.POLICY_VIOLATION:
      loss.reason = "rejected";
      loss.fatal = true;
      break;
    case ABNORMAL_CLOSURE:
      loss.reason = "transport-error";
      break;
    default:
      break;
  }
  return loss;
}

/** A Redirect's url against the current one: absolute ws(s), relative, or empty (the same address). */
export function resolveRedirect(current: string, target: string): string {
  if (target.length === 0) {
    return current;
  }
  try {
    const resolved = new URL(target, current);
    return resolved.protocol === "ws:" || resolved.protocol === "wss:" ? resolved.toString() : current;
  } catch {
    return current;
  }
}

/** The browser's window, where `online` / `offline` are announced; none outside a browser. */
function defaultNetworkEvents(): NetworkEvents | null {
  const target = (globalThis as { window?: unknown }).window as Partial<NetworkEvents> | undefined;
  return target !== undefined && typeof target.addEventListener === "function" && typeof target.removeEventListener === "function" ? (target as NetworkEvents) : null;
}
