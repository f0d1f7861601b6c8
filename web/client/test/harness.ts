/**
 * Test doubles for the client state machine: a manual clock and a scripted server behind a fake transport.
 * Each fake connection records what the client sent (decoded) and lets a test answer message by message.
 */
import assert from "node:assert/strict";
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { ClientMessageSchema, ServerMessageSchema, type ClientMessage } from "../src/gen/collab/v1/collab_pb.js";
import { CollabClient, type CollabClientOptions } from "../src/client.js";
import type { CollabDocument } from "../src/document.js";
import { encodeTextOp } from "../src/codec.js";
import type { Scheduler, TimerHandle } from "../src/scheduler.js";
import type { Transport, TransportFactory, TransportHandlers } from "../src/transport.js";
import { MemoryStorage } from "../src/storage.js";
import type { TextOp } from "../src/text.js";

export type ServerBody = Exclude<MessageInitShape<typeof ServerMessageSchema>["body"], undefined | { case: undefined }>;
type ClientCase = NonNullable<ClientMessage["body"]["case"]>;
export type Sent<C extends ClientCase> = { requestId: number; value: Extract<ClientMessage["body"], { case: C }>["value"] };

/** Timers that fire only when the test advances the clock. */
export class ManualScheduler implements Scheduler {
  time = 0;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; callback: () => void }>();
  /** Values handed out by random(), in order; 0.5 once they run out. */
  randoms: number[] = [];

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + Math.max(0, delayMs), callback });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as number);
  }

  random(): number {
    return this.randoms.shift() ?? 0.5;
  }

  /** Moves the clock forward, firing every timer due on the way in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let due: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at <= end && (due === undefined || entry[1].at < due[1].at || (entry[1].at === due[1].at && entry[0] < due[0]))) {
          due = entry;
        }
      }
      if (due === undefined) {
        break;
      }
      this.timers.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].callback();
    }
    this.time = end;
  }

  /** Fires the earliest pending timer (moving the clock to it); returns the delay it had, or -1 when none. */
  runNext(): number {
    let next: number | undefined;
    for (const timer of this.timers.values()) {
      next = next === undefined ? timer.at : Math.min(next, timer.at);
    }
    if (next === undefined) {
      return -1;
    }
    const delay = next - this.time;
    this.advance(delay);
    return delay;
  }

  /** Delays of the timers pending now, ascending. */
  pendingDelays(): number[] {
    return [...this.timers.values()].map((t) => t.at - this.time).sort((a, b) => a - b);
  }
}

/** One connection the client opened, driven by the test. */
export class FakeConnection implements Transport {
  readonly sent: ClientMessage[] = [];
  closedByClient: { code: number; reason: string } | null = null;
  private ended = false;

  constructor(
    readonly url: string,
    readonly protocols: string[],
    private readonly handlers: TransportHandlers,
  ) {}

  send(data: Uint8Array): void {
    assert.ok(!this.ended, "the client sent on an ended connection");
    this.sent.push(fromBinary(ClientMessageSchema, data));
  }

  /** Set to keep the server from answering the client's close (a dead peer). */
  holdClose = false;

  close(code: number, reason: string): void {
    if (this.closedByClient === null) {
      this.closedByClient = { code, reason };
      if (!this.holdClose) {
        // The server answers the close handshake, later (never from inside the client's call).
        queueMicrotask(() => this.end(code, reason));
      }
    }
  }

  /** The server accepts the upgrade. */
  open(protocol = "collab.v1"): void {
    this.handlers.onOpen(protocol);
  }

  /** The server sends a message. */
  receive(body: ServerBody, requestId = 0): void {
    assert.ok(!this.ended, "the test sent on an ended connection");
    this.handlers.onMessage(toBinary(ServerMessageSchema, create(ServerMessageSchema, { requestId: BigInt(requestId), body })));
  }

  /** Raw bytes from the server. */
  receiveBytes(bytes: Uint8Array): void {
    this.handlers.onMessage(bytes);
  }

  /** The connection ends (server close, network failure, or the answer to the client's close). */
  end(code = 1006, reason = "", httpStatus?: number): void {
    if (this.ended) {
      return;
    }
    this.ended = true;
    this.handlers.onClose(httpStatus === undefined ? { code, reason } : { code, reason, httpStatus });
  }

  /** Messages sent since the last call to take/expectNone. */
  private read = 0;

  /** The next unread message the client sent; asserts its case. */
  take<C extends ClientCase>(kind: C): Sent<C> {
    const message = this.sent[this.read];
    assert.ok(message !== undefined, `expected the client to send ${kind}, it sent nothing more (all: ${this.describe()})`);
    assert.equal(message.body.case, kind, `expected ${kind}, got ${message.body.case} (all: ${this.describe()})`);
    this.read++;
    return { requestId: Number(message.requestId), value: message.body.value as Sent<C>["value"] };
  }

  /** Asserts the client sent nothing more (pings aside unless counted). */
  expectNone(): void {
    assert.equal(this.sent.length, this.read, `expected nothing more, got ${this.describe(this.read)}`);
  }

  /** Skips unread pings. */
  skipPings(): void {
    while (this.sent[this.read]?.body.case === "ping") {
      this.read++;
    }
  }

  describe(from = 0): string {
    return this.sent.slice(from).map((m) => m.body.case).join(", ") || "nothing";
  }
}

/** A transport factory that records every connection. */
export class FakeNetwork {
  readonly connections: FakeConnection[] = [];
  readonly factory: TransportFactory = (url, protocols, handlers) => {
    const connection = new FakeConnection(url, protocols, handlers);
    this.connections.push(connection);
    return connection;
  };

  get last(): FakeConnection {
    const last = this.connections[this.connections.length - 1];
    assert.ok(last !== undefined, "no connection was opened");
    return last;
  }
}

/** Lets promise callbacks (token callbacks, awaited opens) run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

export interface Harness {
  client: CollabClient;
  network: FakeNetwork;
  scheduler: ManualScheduler;
  storage: MemoryStorage;
  /** The current connection. */
  readonly conn: FakeConnection;
}

export const URL = "ws://collab.test/ws";

/** Connects a client through the fake network: Hello answered with Welcome{clientId}. */
export async function connect(options: Partial<CollabClientOptions> = {}, clientId = "c1", storage = new MemoryStorage(), limits: WelcomeLimits = {}): Promise<Harness> {
  const network = new FakeNetwork();
  const scheduler = new ManualScheduler();
  const pending = CollabClient.connect({ url: URL, transport: network.factory, scheduler, storage, ...options });
  await flush();
  network.last.open();
  network.last.take("hello");
  welcome(network.last, clientId, false, limits);
  const client = await pending;
  return {
    client,
    network,
    scheduler,
    storage,
    get conn() {
      return network.last;
    },
  };
}

/** The limits a fake Welcome announces (0 = not announced). */
export interface WelcomeLimits {
  maxMessageBytes?: number;
  maxOpBytes?: number;
  maxPresenceBytes?: number;
}

export function welcome(conn: FakeConnection, clientId: string, resumed = false, limits: WelcomeLimits = {}): void {
  conn.receive({
    case: "welcome",
    value: { protocolVersion: 1, serverId: "node-1", clientId, resumed, maxMessageBytes: limits.maxMessageBytes ?? 1 << 20, maxOpBytes: limits.maxOpBytes ?? 0, maxPresenceBytes: limits.maxPresenceBytes ?? 0 },
  });
}

/** Opens a document: Subscribe{snapshot} answered with Snapshot{text, version}. */
export async function open(h: Harness, docId: string, text = "", version = 0): Promise<CollabDocument> {
  const opening = h.client.openDocument(docId);
  const subscribe = h.conn.take("subscribe");
  assert.equal(subscribe.value.docId, docId);
  assert.equal(subscribe.value.snapshot, true);
  h.conn.receive({ case: "snapshot", value: { docId, version: BigInt(version), text, type: "text-unicode" } }, subscribe.requestId);
  return opening;
}

/** A sequenced op for an Ops message. */
export function seqOp(version: number, op: TextOp, clientId = "other", clientSeq = 1) {
  return { version: BigInt(version), clientId, clientSeq: BigInt(clientSeq), op: encodeTextOp(op), timestampMs: 0n, author: "" };
}

/** Reconnects after the current connection ended: advances past the backoff, answers Hello with Welcome. */
export async function reconnect(h: Harness, clientId = "c1", resumed = true): Promise<FakeConnection> {
  const before = h.network.connections.length;
  h.scheduler.runNext();
  await flush();
  assert.equal(h.network.connections.length, before + 1, "the client did not reconnect");
  const conn = h.network.last;
  conn.open();
  conn.take("hello");
  welcome(conn, clientId, resumed);
  return conn;
}
