/**
 * A reference server in memory for property tests: the spec's sequencer (transform Left against every op since the
 * base, dedupe by (client id, seq) before validating the base), served to SDK clients over fake connections whose
 * message delivery, in both directions, the test interleaves at will, and which it can cut at any moment.
 */
import assert from "node:assert/strict";
import { CollabClient } from "../src/client.js";
import type { CollabDocument } from "../src/document.js";
import { decodeTextOp, encodeTextOp } from "../src/codec.js";
import { apply, transform, transformCursor, type TextOp } from "../src/text.js";
import { ErrorCode } from "../src/protocol.js";
import { FakeNetwork, flush, ManualScheduler, type FakeConnection, type ServerBody } from "./harness.js";
import { MemoryStorage } from "../src/storage.js";

interface Sequenced {
  version: number;
  op: TextOp;
  clientId: string;
  seq: number;
}

/** One client as the server sees it: its connection and what is queued for it. */
interface Peer {
  index: number;
  clientId: string;
  client: CollabClient;
  network: FakeNetwork;
  scheduler: ManualScheduler;
  doc: CollabDocument;
  /** Server-to-client messages not yet delivered, for the current connection. */
  inbox: { body: ServerBody; requestId: number }[];
  /** Client messages of the current connection the server has read. */
  read: number;
  subscribed: boolean;
  /** Acks received (client seq -> version), from the document's ack events. */
  acked: Map<number, number>;
}

export class SimServer {
  text: string;
  readonly log: Sequenced[] = [];
  readonly peers: Peer[] = [];

  constructor(
    readonly docId: string,
    initial: string,
  ) {
    this.text = initial;
  }

  get version(): number {
    return this.log.length;
  }

  /** Connects a client and opens the document (everything delivered at once). */
  async addClient(): Promise<Peer> {
    const index = this.peers.length;
    const network = new FakeNetwork();
    const scheduler = new ManualScheduler();
    const clientId = `c${index}`;
    const connecting = CollabClient.connect({ url: "ws://sim/ws", transport: network.factory, scheduler, storage: new MemoryStorage(), pingIntervalMs: 0 });
    await flush();
    const peer: Peer = { index, clientId, client: undefined as unknown as CollabClient, network, scheduler, doc: undefined as unknown as CollabDocument, inbox: [], read: 0, subscribed: false, acked: new Map() };
    this.peers.push(peer);
    this.handshake(peer);
    peer.client = await connecting;
    const opening = peer.client.openDocument(this.docId);
    this.serve(peer);
    this.deliverAll(peer);
    peer.doc = await opening;
    peer.doc.on("ack", (e) => {
      assert.ok(!peer.acked.has(e.clientSeq), `seq ${e.clientSeq} acknowledged twice`);
      peer.acked.set(e.clientSeq, e.version);
    });
    return peer;
  }

  private handshake(peer: Peer): void {
    const conn = peer.network.last;
    conn.open();
    const hello = conn.take("hello");
    assert.ok(hello.value.clientId === "" || hello.value.clientId === peer.clientId);
    peer.read = 1;
    peer.inbox = [];
    peer.subscribed = false;
    conn.receive({ case: "welcome", value: { protocolVersion: 1, serverId: "sim", clientId: peer.clientId, resumed: hello.value.clientId !== "", maxMessageBytes: 0, maxOpBytes: 0 } });
  }

  /** The server reads every message the peer sent on its current connection. */
  serve(peer: Peer, count = Number.POSITIVE_INFINITY): void {
    const conn = peer.network.last;
    for (let n = 0; n < count && peer.read < conn.sent.length; n++) {
      const message = conn.sent[peer.read++]!;
      this.handle(peer, Number(message.requestId), message.body);
    }
  }

  /** Pending client messages of a peer's current connection. */
  unread(peer: Peer): number {
    return peer.network.last.sent.length - peer.read;
  }

  private handle(peer: Peer, requestId: number, body: (typeof peer.network.last.sent)[number]["body"]): void {
    switch (body.case) {
      case "subscribe": {
        const v = body.value;
        peer.subscribed = true;
        if (v.snapshot) {
          peer.inbox.push({ requestId, body: { case: "snapshot", value: { docId: this.docId, version: BigInt(this.version), text: this.text, type: "text-unicode" } } });
        } else {
          const from = Number(v.fromVersion);
          peer.inbox.push({ requestId, body: { case: "subscribed", value: { docId: this.docId, fromVersion: v.fromVersion, currentVersion: BigInt(this.version) } } });
          // Catch-up carries every op of the range, the client's own included (section 5.3.3, P3).
          const catchUp = this.log.slice(from).map((s) => this.wire(s));
          if (catchUp.length > 0) {
            peer.inbox.push({ requestId: 0, body: { case: "ops", value: { docId: this.docId, ops: catchUp } } });
          }
        }
        break;
      }
      case "submit": {
        const v = body.value;
        const seq = Number(v.clientSeq);
        const original = this.log.find((s) => s.clientId === peer.clientId && s.seq === seq);
        if (original !== undefined) {
          peer.inbox.push({ requestId: 0, body: { case: "ack", value: { docId: this.docId, clientSeq: v.clientSeq, version: BigInt(original.version), duplicate: true } } });
          break;
        }
        const base = Number(v.baseVersion);
        if (base > this.version) {
          peer.inbox.push({ requestId: 0, body: { case: "error", value: { code: ErrorCode.VERSION_FROM_FUTURE, message: "", retryable: false, docId: this.docId, clientSeq: v.clientSeq } } });
          break;
        }
        let op = decodeTextOp(v.op);
        for (const s of this.log.slice(base)) {
          op = transform(op, s.op, "left");
        }
        this.text = apply(this.text, op);
        const sequenced: Sequenced = { version: this.version + 1, op, clientId: peer.clientId, seq };
        this.log.push(sequenced);
        peer.inbox.push({ requestId: 0, body: { case: "ack", value: { docId: this.docId, clientSeq: v.clientSeq, version: BigInt(sequenced.version), duplicate: false } } });
        for (const other of this.peers) {
          if (other !== peer && other.subscribed) {
            other.inbox.push({ requestId: 0, body: { case: "ops", value: { docId: this.docId, ops: [this.wire(sequenced)] } } });
          }
        }
        break;
      }
      case "presence": {
        // Moved from its base version to the current one, then relayed to the other subscribers (section 8).
        const v = body.value;
        let selection = v.selection === undefined ? undefined : { anchor: Number(v.selection.anchor), head: Number(v.selection.head) };
        for (const s of this.log.slice(Number(v.baseVersion))) {
          if (selection !== undefined) {
            const own = s.clientId === peer.clientId;
            selection = { anchor: transformCursor(selection.anchor, s.op, own), head: transformCursor(selection.head, s.op, own) };
          }
        }
        for (const other of this.peers) {
          if (other !== peer && other.subscribed) {
            other.inbox.push({
              requestId: 0,
              body: {
                case: "presence",
                value: {
                  docId: this.docId,
                  clientId: peer.clientId,
                  version: BigInt(this.version),
                  ...(selection === undefined ? {} : { selection: { anchor: BigInt(selection.anchor), head: BigInt(selection.head) } }),
                  userData: v.userData,
                },
              },
            });
          }
        }
        break;
      }
      default:
        // Pings: not part of what these tests check.
        break;
    }
  }

  private wire(s: Sequenced) {
    return { version: BigInt(s.version), clientId: s.clientId, clientSeq: BigInt(s.seq), op: encodeTextOp(s.op), timestampMs: 0n, author: "" };
  }

  /** Delivers up to `count` queued server messages to the peer. */
  deliver(peer: Peer, count = 1): void {
    const conn = peer.network.last;
    for (let n = 0; n < count; n++) {
      const next = peer.inbox.shift();
      if (next === undefined) {
        return;
      }
      conn.receive(next.body, next.requestId);
    }
  }

  deliverAll(peer: Peer): void {
    this.deliver(peer, Number.POSITIVE_INFINITY);
  }

  /**
   * Cuts the peer's connection: undelivered server messages are lost, and so are the client's unread messages
   * except the first `reachServer` of them (which the server had received before the cut).
   */
  drop(peer: Peer, reachServer: number): void {
    this.serve(peer, reachServer);
    const conn = peer.network.last;
    peer.read = conn.sent.length;
    peer.inbox = [];
    peer.subscribed = false;
    conn.end(1006);
  }

  /** Lets the peer reconnect (after its backoff) and answers its Hello. */
  async reconnect(peer: Peer): Promise<void> {
    const before = peer.network.connections.length;
    peer.scheduler.runNext();
    await flush();
    assert.equal(peer.network.connections.length, before + 1);
    this.handshake(peer);
  }

  /** Everything delivered, every connection up: the system at rest. */
  async settle(): Promise<void> {
    for (let round = 0; round < 100; round++) {
      let moved = false;
      for (const peer of this.peers) {
        if (peer.client.state === "reconnecting") {
          await this.reconnect(peer);
          moved = true;
        }
        if (this.unread(peer) > 0) {
          this.serve(peer);
          moved = true;
        }
        if (peer.inbox.length > 0) {
          this.deliverAll(peer);
          moved = true;
        }
        // Retry timers (backoff after retryable errors) fire too.
        if (!moved && peer.doc.hasPendingOps && peer.client.state === "connected" && peer.scheduler.runNext() >= 0) {
          moved = true;
        }
      }
      if (!moved) {
        return;
      }
    }
    throw new Error("the simulation did not settle");
  }

  conn(peer: Peer): FakeConnection {
    return peer.network.last;
  }
}

export type SimPeer = Peer;
