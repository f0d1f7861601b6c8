/**
 * The document state machine (docs/PROTOCOL.md sections 5 to 7) against a scripted server: every message ordering
 * the spec names, resume, dedupe, retryable and fatal errors, VERSION_TOO_OLD recovery and snapshot rebase.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeTextOp } from "../src/codec.js";
import { CollabServerError } from "../src/errors.js";
import { ErrorCode } from "../src/protocol.js";
import { connect, open, reconnect, seqOp, type Harness, type FakeConnection } from "./harness.js";
import type { CollabDocument } from "../src/document.js";
import type { TextOp } from "../src/text.js";

function ops(conn: FakeConnection, docId: string, list: ReturnType<typeof seqOp>[], requestId = 0): void {
  conn.receive({ case: "ops", value: { docId, ops: list } }, requestId);
}

function ack(conn: FakeConnection, docId: string, clientSeq: number, version: number, duplicate = false): void {
  conn.receive({ case: "ack", value: { docId, clientSeq: BigInt(clientSeq), version: BigInt(version), duplicate } });
}

function error(conn: FakeConnection, code: ErrorCode, fields: { docId?: string; clientSeq?: number; retryable?: boolean; requestId?: number } = {}): void {
  conn.receive(
    { case: "error", value: { code, message: "test", retryable: fields.retryable ?? false, docId: fields.docId ?? "", clientSeq: BigInt(fields.clientSeq ?? 0) } },
    fields.requestId ?? 0,
  );
}

function submitted(conn: FakeConnection): { seq: number; base: number; op: unknown } {
  const submit = conn.take("submit");
  return { seq: Number(submit.value.clientSeq), base: Number(submit.value.baseVersion), op: decodeTextOp(submit.value.op!) };
}

/** A client with document "d" open at (text, version) and `edit` sent but not acknowledged. */
async function sentOne(text: string, version: number, edit: TextOp): Promise<{ h: Harness; doc: CollabDocument }> {
  const h = await connect();
  const doc = await open(h, "d", text, version);
  doc.submitOp(edit);
  h.conn.take("submit");
  return { h, doc };
}

/** Drops the connection and reconnects; returns the new connection after its resuming Subscribe was checked. */
async function dropAndResume(h: Harness, doc: CollabDocument, clientId = "c1", resumed = true): Promise<{ conn: FakeConnection; requestId: number }> {
  h.conn.end(1006);
  const conn = await reconnect(h, clientId, resumed);
  const subscribe = conn.take("subscribe");
  assert.equal(subscribe.value.docId, doc.id);
  assert.equal(subscribe.value.snapshot, false);
  assert.equal(Number(subscribe.value.fromVersion), doc.version);
  return { conn, requestId: subscribe.requestId };
}

function subscribed(conn: FakeConnection, docId: string, requestId: number, from: number, current: number): void {
  conn.receive({ case: "subscribed", value: { docId, fromVersion: BigInt(from), currentVersion: BigInt(current) } }, requestId);
}

describe("opening", () => {
  it("subscribes with snapshot: true and starts from the snapshot", async () => {
    const h = await connect();
    const doc = await open(h, "d", "héllo 😀", 7);
    assert.equal(doc.text, "héllo 😀");
    assert.equal(doc.version, 7);
    assert.equal(doc.length, 7);
  });

  it("fails the open when the server refuses the subscribe", async () => {
    const h = await connect();
    const opening = h.client.openDocument("secret");
    const subscribe = h.conn.take("subscribe");
    error(h.conn, ErrorCode.FORBIDDEN, { docId: "secret", requestId: subscribe.requestId });
    await assert.rejects(opening, (e: unknown) => e instanceof CollabServerError && e.code === ErrorCode.FORBIDDEN);
    assert.equal(h.client.getDocument("secret"), undefined);
  });

  it("refuses a document of another OT type", async () => {
    const h = await connect();
    const opening = h.client.openDocument("rich");
    const subscribe = h.conn.take("subscribe");
    h.conn.receive({ case: "snapshot", value: { docId: "rich", version: 1n, text: "", type: "rich-text" } }, subscribe.requestId);
    await assert.rejects(opening, /rich-text/);
  });

  it("retries a subscribe refused with a retryable error after a backoff", async () => {
    const h = await connect();
    const opening = h.client.openDocument("d");
    const first = h.conn.take("subscribe");
    error(h.conn, ErrorCode.OVERLOADED, { docId: "d", requestId: first.requestId, retryable: true });
    h.conn.expectNone();
    const delay = h.scheduler.runNext();
    assert.ok(delay >= 250 && delay <= 500);
    const second = h.conn.take("subscribe");
    h.conn.receive({ case: "snapshot", value: { docId: "d", version: 0n, text: "", type: "text-unicode" } }, second.requestId);
    await opening;
  });

  it("subscribes once connected when opened while disconnected", async () => {
    const h = await connect();
    h.conn.end(1006);
    const opening = h.client.openDocument("later");
    const conn = await reconnect(h);
    const subscribe = conn.take("subscribe");
    assert.equal(subscribe.value.snapshot, true);
    conn.receive({ case: "snapshot", value: { docId: "later", version: 3n, text: "abc", type: "text-unicode" } }, subscribe.requestId);
    assert.equal((await opening).text, "abc");
  });

  it("can be cancelled with an AbortSignal", async () => {
    const h = await connect();
    const controller = new AbortController();
    const opening = h.client.openDocument("d", { signal: controller.signal });
    controller.abort();
    await assert.rejects(opening);
    assert.equal(h.client.getDocument("d"), undefined);
  });
});

describe("one op in flight plus a composed buffer (section 5.4)", () => {
  it("sends the first edit, buffers the next ones, and sends the buffer on Ack with the next seq and base", async () => {
    const h = await connect();
    const doc = await open(h, "d", "abc", 5);
    doc.insert(3, "d");
    assert.deepEqual(submitted(h.conn), { seq: 1, base: 5, op: [3, "d"] });
    doc.insert(4, "e");
    doc.delete(0, 1);
    h.conn.expectNone();
    assert.equal(doc.text, "bcde");
    assert.ok(doc.hasPendingOps);
    const acks: number[] = [];
    doc.on("ack", (e) => acks.push(e.version));
    ack(h.conn, "d", 1, 6);
    assert.equal(doc.version, 6);
    assert.deepEqual(submitted(h.conn), { seq: 2, base: 6, op: [{ d: 1 }, 3, "e"] });
    ack(h.conn, "d", 2, 7, true); // a duplicate Ack counts exactly like a first one
    assert.equal(doc.version, 7);
    assert.ok(!doc.hasPendingOps);
    assert.deepEqual(acks, [6, 7]);
    await doc.whenSynced();
  });

  it("transforms a remote op past the pending ops (Right) and the pending ops past it (Left)", async () => {
    const h = await connect();
    const doc = await open(h, "d", "abc", 1);
    doc.insert(1, "X"); // in flight
    h.conn.take("submit");
    doc.insert(4, "Y"); // buffered: aXbcY
    const changes: { op: unknown; text: string; clientId: string | null }[] = [];
    doc.on("change", (e) => changes.push({ op: e.op, text: e.text, clientId: e.clientId }));
    // Another client inserted at 1 too, sequenced first (version 2).
    ops(h.conn, "d", [seqOp(2, [1, "R"], "other", 9)]);
    // The server transforms our X with Left against R, so X goes first: aXRbcY, and the client agrees (R with Right).
    assert.equal(doc.text, "aXRbcY");
    assert.deepEqual(changes, [{ op: [2, "R"], text: "aXRbcY", clientId: "other" }]);
    ack(h.conn, "d", 1, 3);
    assert.deepEqual(submitted(h.conn), { seq: 2, base: 3, op: [5, "Y"] });
  });

  it("ignores ops already applied (version at or below its own) and Acks of other seqs", async () => {
    const h = await connect();
    const doc = await open(h, "d", "abc", 3);
    ops(h.conn, "d", [seqOp(2, ["zz"]), seqOp(3, ["zz"])]);
    assert.equal(doc.text, "abc");
    doc.insert(0, "x");
    h.conn.take("submit");
    ack(h.conn, "d", 99, 4);
    assert.ok(doc.hasPendingOps);
  });

  it("resubscribes from its version on a gap in the ops", async () => {
    const h = await connect();
    const doc = await open(h, "d", "", 3);
    ops(h.conn, "d", [seqOp(5, ["x"])]);
    const subscribe = h.conn.take("subscribe");
    assert.equal(subscribe.value.fromVersion, 3n);
    assert.equal(doc.text, "");
  });

  it("resubscribes when an Ack runs ahead of the ops (version > known + 1)", async () => {
    const { h, doc } = await sentOne("", 3, ["x"]);
    ack(h.conn, "d", 1, 6);
    assert.equal(h.conn.take("subscribe").value.fromVersion, 3n);
    assert.equal(doc.version, 3);
  });

  it("refuses an edit beyond the text or above the server's max_op_bytes, changing nothing", async () => {
    const network = await connect();
    const doc = await open(network, "d", "ab", 0);
    assert.throws(() => doc.insert(3, "x"));
    assert.throws(() => doc.delete(1, 2));
    assert.equal(doc.text, "ab");
    network.conn.expectNone();
  });
});

describe("resume after reconnect (section 7)", () => {
  it("resends the in-flight op with the same seq once Subscribed, then the buffer after its Ack", async () => {
    const h = await connect();
    const doc = await open(h, "d", "abc", 4);
    doc.insert(0, "x");
    assert.deepEqual(submitted(h.conn), { seq: 1, base: 4, op: ["x"] });
    const { conn, requestId } = await dropAndResume(h, doc);
    doc.insert(1, "y"); // offline-ish edit, buffered
    conn.expectNone(); // nothing before Subscribed
    subscribed(conn, "d", requestId, 4, 4);
    assert.deepEqual(submitted(conn), { seq: 1, base: 4, op: ["x"] });
    ack(conn, "d", 1, 5, true);
    assert.deepEqual(submitted(conn), { seq: 2, base: 5, op: [1, "y"] });
  });

  it("resends the in-flight op transformed past the ops that arrived since, based on the current version", async () => {
    const { h, doc } = await sentOne("abc", 4, [3, "!"]);
    ops(h.conn, "d", [seqOp(5, ["__"])]);
    const { conn, requestId } = await dropAndResume(h, doc);
    subscribed(conn, "d", requestId, 5, 5);
    assert.deepEqual(submitted(conn), { seq: 1, base: 5, op: [5, "!"] });
  });

  it("treats its own op in the catch-up as the Ack (op-as-ack) and ignores the later duplicate Ack", async () => {
    const { h, doc } = await sentOne("", 0, ["a"]);
    doc.insert(1, "b"); // buffered
    const { conn, requestId } = await dropAndResume(h, doc);
    subscribed(conn, "d", requestId, 0, 2);
    assert.deepEqual(submitted(conn), { seq: 1, base: 0, op: ["a"] });
    const acks: number[] = [];
    doc.on("ack", (e) => acks.push(e.clientSeq));
    // Catch-up: someone else's op at the end, then ours as the server sequenced it (before the drop).
    ops(conn, "d", [seqOp(1, ["Z"], "other", 1), seqOp(2, ["a"], "c1", 1)]);
    assert.equal(doc.text, "abZ");
    assert.deepEqual(acks, [1]);
    // The buffer moved into flight: sent now with seq 2.
    assert.deepEqual(submitted(conn), { seq: 2, base: 2, op: [1, "b"] });
    ack(conn, "d", 1, 2, true); // the resend's duplicate Ack matches nothing
    assert.equal(doc.version, 2);
    assert.ok(doc.hasPendingOps);
    ack(conn, "d", 2, 3);
    assert.equal(doc.text, "abZ");
    assert.deepEqual(acks, [1, 2]);
  });

  it("recognises its own op arriving live after Subscribed (it was in the server's pipeline)", async () => {
    const { h, doc } = await sentOne("", 0, ["a"]);
    const { conn, requestId } = await dropAndResume(h, doc);
    subscribed(conn, "d", requestId, 0, 0);
    conn.take("submit");
    ops(conn, "d", [seqOp(1, ["a"], "c1", 1)]);
    assert.equal(doc.text, "a");
    assert.ok(!doc.hasPendingOps);
  });

  it("keeps edits made offline and sends them after the reconnect", async () => {
    const h = await connect();
    const doc = await open(h, "d", "", 0);
    h.conn.end(1006);
    doc.insert(0, "off");
    doc.insert(3, "line");
    assert.equal(doc.text, "offline");
    const conn = await reconnect(h);
    const subscribe = conn.take("subscribe");
    subscribed(conn, "d", subscribe.requestId, 0, 0);
    assert.deepEqual(submitted(conn), { seq: 1, base: 0, op: ["offline"] });
  });

  it("uses seqs that strictly increase across documents", async () => {
    const h = await connect();
    const a = await open(h, "a");
    const b = await open(h, "b");
    a.insert(0, "1");
    b.insert(0, "2");
    assert.equal(submitted(h.conn).seq, 1);
    assert.equal(submitted(h.conn).seq, 2);
  });
});

describe("changed client id (section 7, P4)", () => {
  it("does not resend on Subscribed; recognises its op under the old id in the catch-up", async () => {
    const { h, doc } = await sentOne("", 0, ["a"]);
    const { conn, requestId } = await dropAndResume(h, doc, "c2", false);
    subscribed(conn, "d", requestId, 0, 1);
    conn.expectNone();
    ops(conn, "d", [seqOp(1, ["a"], "c1", 1)]);
    assert.ok(!doc.hasPendingOps);
    assert.equal(doc.text, "a");
    conn.expectNone();
  });

  it("submits its pending op under the new id with a new seq once the catch-up reached current_version without it", async () => {
    const { h, doc } = await sentOne("", 0, ["a"]);
    const { conn, requestId } = await dropAndResume(h, doc, "c2", false);
    subscribed(conn, "d", requestId, 0, 1);
    conn.expectNone();
    ops(conn, "d", [seqOp(1, ["Z"], "other", 5)]);
    assert.deepEqual(submitted(conn), { seq: 2, base: 1, op: ["a"] });
  });

  it("after 4009 the old id's ops from the other tab are remote ops, its own pending op moves to the new id", async () => {
    const h = await connect({}, "shared");
    const doc = await open(h, "d", "", 0);
    doc.insert(0, "mine");
    h.conn.take("submit");
    h.conn.end(4009, "session replaced");
    const conn = await reconnect(h, "fresh", false);
    const subscribe = conn.take("subscribe");
    subscribed(conn, "d", subscribe.requestId, 0, 1);
    // The tab that took the id over wrote version 1 under the shared id with another seq.
    ops(conn, "d", [seqOp(1, ["theirs "], "shared", 1 + 2 ** 20)]);
    assert.equal(doc.text, "minetheirs ");
    assert.deepEqual(submitted(conn), { seq: 2, base: 1, op: ["mine"] });
  });
});

describe("errors on submit (sections 6, 7.1, 9)", () => {
  for (const code of [ErrorCode.OVERLOADED, ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE]) {
    it(`${ErrorCode[code]} (retryable): resends the same seq after a backoff`, async () => {
      const h = await connect();
      const doc = await open(h, "d", "", 0);
      doc.insert(0, "a");
      h.conn.take("submit");
      const errors: string[] = [];
      doc.on("error", (e) => errors.push(e.codeName));
      error(h.conn, code, { docId: "d", clientSeq: 1, retryable: true });
      h.conn.expectNone();
      const delay = h.scheduler.runNext();
      assert.ok(delay >= 250 && delay <= 500);
      assert.deepEqual(submitted(h.conn), { seq: 1, base: 0, op: ["a"] });
      assert.deepEqual(errors, [ErrorCode[code]]);
    });
  }

  it("a non-retryable rejection drops exactly that op, resyncs from a snapshot and keeps the buffered edits", async () => {
    const { h, doc } = await sentOne("abc", 2, ["BAD"]);
    doc.insert(6, "!"); // buffered: BADabc!
    error(h.conn, ErrorCode.INVALID_OP, { docId: "d", clientSeq: 1 });
    const subscribe = h.conn.take("subscribe");
    assert.equal(subscribe.value.snapshot, true);
    const changes: { resync: boolean; text: string }[] = [];
    doc.on("change", (e) => changes.push({ resync: e.resync, text: e.text }));
    // Meanwhile someone appended "Z" (version 3).
    h.conn.receive({ case: "snapshot", value: { docId: "d", version: 3n, text: "abcZ", type: "text-unicode" } }, subscribe.requestId);
    assert.equal(doc.text, "abc!Z");
    assert.deepEqual(changes, [{ resync: true, text: "abc!Z" }]);
    assert.deepEqual(submitted(h.conn), { seq: 2, base: 3, op: [3, "!"] });
  });

  it("VERSION_TOO_OLD for a submit means not sequenced: rebase everything onto a snapshot", async () => {
    const { h, doc } = await sentOne("abc", 2, [3, "X"]);
    error(h.conn, ErrorCode.VERSION_TOO_OLD, { docId: "d", clientSeq: 1 });
    const subscribe = h.conn.take("subscribe");
    h.conn.receive({ case: "snapshot", value: { docId: "d", version: 9n, text: "0abc", type: "text-unicode" } }, subscribe.requestId);
    assert.equal(doc.text, "0abcX");
    assert.deepEqual(submitted(h.conn), { seq: 2, base: 9, op: [4, "X"] });
  });

  it("ALREADY_COMMITTED for a resend means the op is in the server's text: rebase only the buffer", async () => {
    const { h, doc } = await sentOne("abc", 2, [3, "X"]);
    doc.insert(0, "<");
    error(h.conn, ErrorCode.ALREADY_COMMITTED, { docId: "d", clientSeq: 1 });
    const subscribe = h.conn.take("subscribe");
    h.conn.receive({ case: "snapshot", value: { docId: "d", version: 9n, text: "abcX", type: "text-unicode" } }, subscribe.requestId);
    assert.equal(doc.text, "<abcX");
    assert.deepEqual(submitted(h.conn), { seq: 2, base: 9, op: ["<"] });
  });

  it("NOT_SUBSCRIBED: subscribes again", async () => {
    const { h } = await sentOne("", 0, ["a"]);
    error(h.conn, ErrorCode.NOT_SUBSCRIBED, { docId: "d", clientSeq: 1 });
    assert.equal(h.conn.take("subscribe").value.fromVersion, 0n);
  });

  it("an unsolicited FORBIDDEN ends the document", async () => {
    const h = await connect();
    const doc = await open(h, "d", "", 0);
    let closedWith: Error | null = null;
    doc.on("closed", (e) => (closedWith = e.error));
    error(h.conn, ErrorCode.FORBIDDEN, { docId: "d" });
    assert.ok(doc.closed);
    assert.ok(closedWith !== null);
    assert.equal(h.client.getDocument("d"), undefined);
  });
});

/**
 * "abc" at version 10 with [3, "X"] sent and unacknowledged; after a reconnect the resume is refused with
 * VERSION_FROM_FUTURE, the client resubscribes for a snapshot, receives `snapshot` at version 3 and probes its op
 * (the original seq, base and bytes).
 */
async function probeAfterSnapshot(snapshot: string): Promise<{ doc: CollabDocument; conn: FakeConnection }> {
  const { h, doc } = await sentOne("abc", 10, [3, "X"]);
  const { conn, requestId } = await dropAndResume(h, doc);
  error(conn, ErrorCode.VERSION_FROM_FUTURE, { docId: "d", requestId });
  const subscribe = conn.take("subscribe");
  assert.equal(subscribe.value.snapshot, true);
  conn.receive({ case: "snapshot", value: { docId: "d", version: 3n, text: snapshot, type: "text-unicode" } }, subscribe.requestId);
  assert.deepEqual(submitted(conn), { seq: 1, base: 10, op: [3, "X"] });
  return { doc, conn };
}

describe("VERSION_TOO_OLD on resume (section 7.2) and snapshot recovery (7.3)", () => {
  it("fetches the missing ops, applies them like catch-up (own op = Ack) and resubscribes from the new version", async () => {
    const { h, doc } = await sentOne("", 10, ["a"]);
    const { conn, requestId } = await dropAndResume(h, doc);
    error(conn, ErrorCode.VERSION_TOO_OLD, { docId: "d", requestId });
    const fetch = conn.take("fetchOps");
    assert.deepEqual([fetch.value.docId, fetch.value.fromVersion, fetch.value.toVersion], ["d", 10n, 0n]);
    ops(conn, "d", [seqOp(11, ["Z"], "other", 1), seqOp(12, ["a"], "c1", 1)], fetch.requestId);
    assert.equal(doc.text, "aZ");
    assert.ok(!doc.hasPendingOps);
    assert.equal(conn.take("subscribe").value.fromVersion, 12n);
  });

  it("recovers from a snapshot when FetchOps returns nothing; probes the unknown in-flight op (Ack{duplicate}: it is in)", async () => {
    const { h, doc } = await sentOne("abc", 10, [3, "X"]);
    doc.insert(0, ">");
    const { conn, requestId } = await dropAndResume(h, doc);
    error(conn, ErrorCode.VERSION_TOO_OLD, { docId: "d", requestId });
    const fetch = conn.take("fetchOps");
    ops(conn, "d", [], fetch.requestId);
    const subscribe = conn.take("subscribe");
    assert.equal(subscribe.value.snapshot, true);
    conn.receive({ case: "snapshot", value: { docId: "d", version: 50n, text: "abcX-", type: "text-unicode" } }, subscribe.requestId);
    // The probe: the original bytes, seq and base.
    assert.deepEqual(submitted(conn), { seq: 1, base: 10, op: [3, "X"] });
    ops(conn, "d", [seqOp(51, [5, "+"], "other", 3)]); // live op during the probe: queued
    ack(conn, "d", 1, 40, true);
    assert.equal(doc.text, ">abcX-+");
    assert.equal(doc.version, 51);
    assert.deepEqual(submitted(conn), { seq: 2, base: 50, op: [">"] });
  });

  it("probe answered VERSION_TOO_OLD: the op was never sequenced, rebase it with the buffer", async () => {
    const { doc, conn } = await probeAfterSnapshot("ab");
    error(conn, ErrorCode.VERSION_TOO_OLD, { docId: "d", clientSeq: 1 });
    assert.equal(doc.text, "abX");
    assert.deepEqual(submitted(conn), { seq: 2, base: 3, op: [2, "X"] });
  });

  it("probe answered ALREADY_COMMITTED: the op is in the snapshot", async () => {
    const { doc, conn } = await probeAfterSnapshot("abcX");
    error(conn, ErrorCode.ALREADY_COMMITTED, { docId: "d", clientSeq: 1 });
    assert.equal(doc.text, "abcX");
    assert.ok(!doc.hasPendingOps);
  });

  it("probe sequenced just now (a fresh Ack): a new snapshot holds it", async () => {
    const { doc, conn } = await probeAfterSnapshot("abc");
    ack(conn, "d", 1, 4);
    const subscribe = conn.take("subscribe");
    assert.equal(subscribe.value.snapshot, true);
    conn.receive({ case: "snapshot", value: { docId: "d", version: 4n, text: "abcX", type: "text-unicode" } }, subscribe.requestId);
    assert.equal(doc.text, "abcX");
    assert.ok(!doc.hasPendingOps);
    conn.expectNone();
  });
});

describe("presence (section 8)", () => {
  it("sends the own selection only when synced, coalesced, and again after a reconnect", async () => {
    const h = await connect();
    const doc = await open(h, "d", "hello", 1);
    doc.setPresence(1, 3, "ann");
    let presence = h.conn.take("presence").value;
    assert.deepEqual([presence.baseVersion, presence.selection?.anchor, presence.selection?.head], [1n, 1n, 3n]);
    assert.equal(new TextDecoder().decode(presence.userData), "ann");
    doc.insert(0, "ab"); // pending: presence waits
    h.conn.take("submit");
    doc.setPresence(0, 0);
    doc.setPresence(7, 7);
    h.conn.expectNone();
    ack(h.conn, "d", 1, 2);
    presence = h.conn.take("presence").value;
    assert.deepEqual([presence.baseVersion, presence.selection?.anchor], [2n, 7n]);
    h.conn.expectNone();
    const { conn, requestId } = await dropAndResume(h, doc);
    subscribed(conn, "d", requestId, 2, 2);
    assert.equal(conn.take("presence").value.selection?.anchor, 7n);
    doc.clearPresence();
    assert.equal(conn.take("presence").value.selection, undefined);
  });

  it("moves its own selection with its typing before sending it", async () => {
    const { h, doc } = await sentOne("abc", 1, [3, "x"]);
    doc.setPresence(3);
    doc.insert(3, "yz"); // typing at the caret pushes it
    ack(h.conn, "d", 1, 2);
    h.conn.take("submit");
    ack(h.conn, "d", 2, 3);
    assert.equal(h.conn.take("presence").value.selection?.anchor, 5n);
  });

  it("shows remote selections in local positions and moves them with later ops", async () => {
    const h = await connect();
    const doc = await open(h, "d", "hello", 1);
    doc.insert(0, ">>"); // pending: remote positions move past it
    h.conn.take("submit");
    const events: (number | null)[] = [];
    doc.on("presence", (e) => events.push(e.presence?.head ?? null));
    h.conn.receive({ case: "presence", value: { docId: "d", clientId: "bob", version: 1n, selection: { anchor: 1n, head: 5n }, userData: new Uint8Array([1]) } });
    assert.deepEqual(doc.presences.get("bob"), { clientId: "bob", anchor: 3, head: 7, userData: new Uint8Array([1]) });
    ops(h.conn, "d", [seqOp(2, [5, "!"], "bob", 1)]); // bob typing at his caret pushes it
    assert.equal(doc.presences.get("bob")?.head, 8);
    h.conn.receive({ case: "presence", value: { docId: "d", clientId: "bob", version: 2n } });
    assert.equal(doc.presences.size, 0);
    assert.deepEqual(events, [7, 8, null]);
  });

  it("moves a presence made at an older version through the server ops since", async () => {
    const h = await connect();
    const doc = await open(h, "d", "hello", 1);
    ops(h.conn, "d", [seqOp(2, ["123"], "carol", 1)]);
    h.conn.receive({ case: "presence", value: { docId: "d", clientId: "bob", version: 1n, selection: { anchor: 5n, head: 5n } } });
    assert.equal(doc.presences.get("bob")?.anchor, 8);
  });

  it("drops remote selections on resubscribe and ignores its own", async () => {
    const h = await connect();
    const doc = await open(h, "d", "hello", 1);
    h.conn.receive({ case: "presence", value: { docId: "d", clientId: "c1", version: 1n, selection: { anchor: 1n, head: 1n } } });
    assert.equal(doc.presences.size, 0);
    h.conn.receive({ case: "presence", value: { docId: "d", clientId: "bob", version: 1n, selection: { anchor: 1n, head: 1n } } });
    const { conn, requestId } = await dropAndResume(h, doc);
    subscribed(conn, "d", requestId, 1, 1);
    assert.equal(doc.presences.size, 0);
  });

  it("limits user data to 1 KiB and positions to the text", async () => {
    const h = await connect();
    const doc = await open(h, "d", "ab", 0);
    assert.throws(() => doc.setPresence(0, 0, new Uint8Array(1025)), RangeError);
    assert.throws(() => doc.setPresence(3), RangeError);
  });
});

describe("events and editors", () => {
  it("delivers change events with UTF-16 changes after the state change, so listeners may edit", async () => {
    const h = await connect();
    const doc = await open(h, "d", "😀b", 1);
    const seen: unknown[] = [];
    doc.on("change", (e) => {
      seen.push(e.utf16Changes);
      if (seen.length === 1) {
        doc.insert(doc.length, "!"); // re-entrant edit from a listener
      }
    });
    ops(h.conn, "d", [seqOp(2, [1, { d: 1 }, "c"], "x", 1), seqOp(3, ["0"], "x", 2)]);
    assert.deepEqual(seen, [[{ from: 2, to: 3, insert: "c" }], [{ from: 0, to: 0, insert: "0" }]]);
    assert.equal(doc.text, "0😀c!");
    assert.deepEqual(submitted(h.conn), { seq: 1, base: 3, op: [3, "!"] });
  });

  it("applies editor changes given in UTF-16 offsets", async () => {
    const h = await connect();
    const doc = await open(h, "d", "a😀c", 0);
    doc.applyUtf16Changes([{ from: 3, to: 4, insert: "C" }, { from: 0, to: 0, insert: ">" }]);
    assert.equal(doc.text, ">a😀C");
    assert.deepEqual(submitted(h.conn).op, [">", 2, { d: 1 }, "C"]);
    assert.equal(doc.toUtf16(3), 4);
    assert.equal(doc.fromUtf16(4), 3);
  });

  it("reports a throwing listener without breaking the document", async () => {
    const thrown: unknown[] = [];
    const h = await connect({ onListenerError: (e) => thrown.push(e) });
    const doc = await open(h, "d", "", 0);
    const texts: string[] = [];
    doc.on("change", () => {
      throw new Error("listener bug");
    });
    doc.on("change", (e) => texts.push(e.text));
    ops(h.conn, "d", [seqOp(1, ["a"]), seqOp(2, [1, "b"])]);
    assert.equal(doc.text, "ab");
    assert.deepEqual(texts, ["a", "ab"]);
    assert.deepEqual(thrown.map((e) => (e as Error).message), ["listener bug", "listener bug"]);
  });
});
