/**
 * The protocol decisions the SDK follows since its first release (P1 to P6): close codes from the schema's enum,
 * 4009 with pending edits, ALREADY_COMMITTED, DOC_DELETED, UNAVAILABLE as "outcome unknown", the limits announced in
 * Welcome and the document type of Subscribe/Subscribed. Each against the scripted server of harness.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeTextOp } from "../src/codec.js";
import { CollabServerError } from "../src/errors.js";
import * as sdk from "../src/index.js";
import { CloseCode, ErrorCode } from "../src/protocol.js";
import { connect, type FakeConnection, flush, open, reconnect, seqOp, welcome } from "./harness.js";

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

describe("close codes come from the schema (collab.proto enum CloseCode)", () => {
  it("exports the generated enum: the numbers are the wire codes", () => {
    assert.equal(sdk.CloseCode.SESSION_REPLACED, 4009);
    assert.equal(sdk.CloseCode.AUTH_EXPIRED, 4001);
    assert.equal(sdk.CloseCode.FORBIDDEN, 4003);
    assert.equal(sdk.CloseCode.RATE_LIMITED, 4008);
    assert.equal(sdk.CloseCode.TRY_AGAIN_LATER, 1013);
    assert.equal(sdk.ABNORMAL_CLOSURE, 1006);
  });

  it("1012 (service restart) after a Redirect reconnects, and 4003 does not", async () => {
    const h = await connect();
    h.conn.end(CloseCode.SERVICE_RESTART, "moved");
    assert.equal(h.client.state, "reconnecting");
    const other = await connect();
    const reasons: string[] = [];
    other.client.on("disconnected", (e) => reasons.push(`${e.reason}:${e.willReconnect}`));
    other.conn.end(CloseCode.FORBIDDEN, "revoked");
    assert.deepEqual(reasons, ["rejected:false"]);
    assert.equal(other.client.state, "closed");
  });
});

describe("4009 session replaced with pending edits (P4, section 7)", () => {
  it("reconnects under a fresh id; its in-flight op found under the old id in the catch-up is its ack, never applied twice", async () => {
    const h = await connect({}, "shared");
    const doc = await open(h, "d", "", 0);
    doc.insert(0, "mine");
    assert.equal(submitted(h.conn).seq, 1);
    doc.insert(4, "!"); // buffered behind the in-flight op
    h.conn.end(CloseCode.SESSION_REPLACED, "session replaced");
    const conn = await reconnect(h, "fresh", false);
    assert.equal(h.client.clientId, "fresh");
    const subscribe = conn.take("subscribe");
    conn.receive({ case: "subscribed", value: { docId: "d", fromVersion: 0n, currentVersion: 2n } }, subscribe.requestId);
    // Not resent on Subscribed: the fresh id cannot deduplicate it.
    conn.expectNone();
    conn.receive({ case: "ops", value: { docId: "d", ops: [seqOp(1, ["mine"], "shared", 1), seqOp(2, [4, " theirs"], "shared", 1 + 2 ** 20)] } });
    // The buffered "!" was typed at the end of "mine", where the other tab's insert also landed: the local edit
    // stays first (ties go to the pending local edit, as on every client).
    assert.equal(doc.text, "mine! theirs");
    // Only the buffered edit goes out, under the new id with a new seq, based on the caught-up version.
    assert.deepEqual(submitted(conn), { seq: 2, base: 2, op: [4, "!"] });
    conn.receive({ case: "ack", value: { docId: "d", clientSeq: 2n, version: 3n, duplicate: false } });
    assert.ok(!doc.hasPendingOps);
  });
});

describe("ALREADY_COMMITTED (P1)", () => {
  it("is not a rejection: the in-flight text survives the resync, whenSynced resolves, nothing is resent", async () => {
    const h = await connect();
    const doc = await open(h, "d", "", 0);
    doc.insert(0, "kept");
    h.conn.take("submit");
    const synced = doc.whenSynced();
    h.conn.end(1006);
    const conn = await reconnect(h, "c1", true);
    const subscribe = conn.take("subscribe");
    conn.receive({ case: "subscribed", value: { docId: "d", fromVersion: 0n, currentVersion: 7n } }, subscribe.requestId);
    assert.equal(submitted(conn).seq, 1);
    // The op log no longer holds seq 1 (pruned): the server says it was committed.
    error(conn, ErrorCode.ALREADY_COMMITTED, { docId: "d", clientSeq: 1 });
    const resync = conn.take("subscribe");
    assert.equal(resync.value.snapshot, true);
    conn.receive({ case: "snapshot", value: { docId: "d", version: 7n, text: "kept, and more", type: "text-unicode" } }, resync.requestId);
    await synced;
    assert.equal(doc.text, "kept, and more");
    assert.ok(!doc.closed);
    conn.expectNone();
  });
});

describe("DOC_DELETED (error 22)", () => {
  it("unsolicited: the document closes with the error, its pending edits are dropped and it is not resubscribed", async () => {
    const h = await connect();
    const doc = await open(h, "d", "abc", 3);
    doc.insert(0, "x");
    h.conn.take("submit");
    let closedWith: Error | null = null;
    doc.on("closed", (e) => (closedWith = e.error));
    const synced = doc.whenSynced();
    error(h.conn, ErrorCode.DOC_DELETED, { docId: "d" });
    assert.ok(doc.closed);
    const closedError = closedWith as Error | null;
    assert.ok(closedError instanceof CollabServerError && closedError.code === ErrorCode.DOC_DELETED);
    await assert.rejects(synced, (e: unknown) => e instanceof CollabServerError && e.codeName === "DOC_DELETED");
    assert.equal(h.client.getDocument("d"), undefined);
    h.conn.expectNone();
    assert.throws(() => doc.insert(0, "y"));
    // The connection and the other documents go on.
    assert.equal(h.client.state, "connected");
  });

  it("in answer to the resuming Subscribe after a reconnect: closed, not retried", async () => {
    const h = await connect();
    const doc = await open(h, "d", "abc", 3);
    h.conn.end(1006);
    const conn = await reconnect(h);
    const subscribe = conn.take("subscribe");
    error(conn, ErrorCode.DOC_DELETED, { docId: "d", requestId: subscribe.requestId });
    assert.ok(doc.closed);
    h.scheduler.advance(5_000);
    conn.skipPings();
    conn.expectNone();
  });

  it("in answer to a submit: closed, not resynced", async () => {
    const h = await connect();
    const doc = await open(h, "d", "", 0);
    doc.insert(0, "late");
    h.conn.take("submit");
    error(h.conn, ErrorCode.DOC_DELETED, { docId: "d", clientSeq: 1 });
    assert.ok(doc.closed);
    h.conn.expectNone();
  });

  it("opening a deleted document rejects with the error", async () => {
    const h = await connect();
    const opening = h.client.openDocument("gone");
    const subscribe = h.conn.take("subscribe");
    error(h.conn, ErrorCode.DOC_DELETED, { docId: "gone", requestId: subscribe.requestId });
    await assert.rejects(opening, (e: unknown) => e instanceof CollabServerError && e.code === ErrorCode.DOC_DELETED);
  });
});

describe("UNAVAILABLE: outcome unknown (P2, section 7.1)", () => {
  it("the op's Ack arriving during the backoff settles it: the retry sends nothing", async () => {
    const h = await connect();
    const doc = await open(h, "d", "", 0);
    doc.insert(0, "a");
    h.conn.take("submit");
    error(h.conn, ErrorCode.UNAVAILABLE, { docId: "d", clientSeq: 1, retryable: true });
    // It was sequenced after all (a forwarded submit that completed late).
    h.conn.receive({ case: "ack", value: { docId: "d", clientSeq: 1n, version: 1n, duplicate: false } });
    doc.insert(1, "b");
    assert.deepEqual(submitted(h.conn), { seq: 2, base: 1, op: [1, "b"] });
    h.scheduler.advance(5_000);
    h.conn.skipPings();
    // Neither seq 1 again nor seq 2 a second time.
    h.conn.expectNone();
  });

  it("the op arriving in Ops during the backoff settles it too; otherwise the same seq is resent", async () => {
    const h = await connect();
    const doc = await open(h, "d", "", 0);
    doc.insert(0, "a");
    h.conn.take("submit");
    error(h.conn, ErrorCode.UNAVAILABLE, { docId: "d", clientSeq: 1, retryable: true });
    h.conn.receive({ case: "ops", value: { docId: "d", ops: [seqOp(1, ["a"], "c1", 1)] } });
    assert.ok(!doc.hasPendingOps);
    h.scheduler.advance(5_000);
    h.conn.skipPings();
    h.conn.expectNone();

    doc.insert(1, "b");
    h.conn.take("submit");
    error(h.conn, ErrorCode.UNAVAILABLE, { docId: "d", clientSeq: 2, retryable: true });
    h.scheduler.runNext();
    assert.deepEqual(submitted(h.conn), { seq: 2, base: 1, op: [1, "b"] });
    // The server deduplicates the resend if the first try had been sequenced.
    h.conn.receive({ case: "ack", value: { docId: "d", clientSeq: 2n, version: 2n, duplicate: true } });
    assert.equal(doc.version, 2);
    assert.equal(doc.text, "ab");
  });
});

describe("limits announced in Welcome (section 11)", () => {
  it("max_presence_bytes: user data above the announced limit throws, at the limit is sent", async () => {
    const h = await connect({}, "c1", undefined, { maxPresenceBytes: 16 });
    assert.equal(h.client.limits.maxPresenceBytes, 16);
    const doc = await open(h, "d", "abc", 1);
    assert.throws(() => doc.setPresence(0, 0, "x".repeat(17)), RangeError);
    h.conn.expectNone();
    doc.setPresence(1, 2, "y".repeat(16));
    const presence = h.conn.take("presence");
    assert.equal(presence.value.userData?.length, 16);
  });

  it("unannounced limits are section 11's defaults: 1 KiB of presence, 256 KiB ops, 1 MiB messages", async () => {
    const h = await connect({}, "c1", undefined, { maxMessageBytes: 0 });
    assert.deepEqual(h.client.limits, { maxMessageBytes: 1 << 20, maxOpBytes: 256 * 1024, maxPresenceBytes: 1024 });
    const doc = await open(h, "d", "", 0);
    assert.throws(() => doc.setPresence(0, 0, new Uint8Array(1025)), RangeError);
    doc.setPresence(0, 0, new Uint8Array(1024));
    h.conn.take("presence");
    assert.throws(() => doc.insert(0, "x".repeat(256 * 1024 + 1)), RangeError);
    assert.equal(doc.text, "");
  });

  it("max_op_bytes and max_message_bytes: an edit the server would refuse is refused locally, the text unchanged", async () => {
    const h = await connect({}, "c1", undefined, { maxOpBytes: 100, maxMessageBytes: 1 << 20 });
    const doc = await open(h, "d", "", 0);
    assert.throws(() => doc.insert(0, "x".repeat(101)), /max_op_bytes/);
    doc.insert(0, "x".repeat(90));
    h.conn.take("submit");

    const small = await connect({}, "c2", undefined, { maxOpBytes: 0, maxMessageBytes: 200 });
    const other = await open(small, "doc-with-a-long-name", "", 0);
    assert.throws(() => other.insert(0, "y".repeat(180)), /max_message_bytes/);
    assert.equal(other.text, "");
  });

  it("the limits of the last Welcome hold while offline, and a new Welcome replaces them", async () => {
    const h = await connect({}, "c1", undefined, { maxPresenceBytes: 8 });
    const doc = await open(h, "d", "", 0);
    h.conn.end(1006);
    assert.throws(() => doc.setPresence(0, 0, "123456789"), RangeError);
    h.scheduler.runNext();
    await flush();
    h.network.last.open();
    h.network.last.take("hello");
    welcome(h.network.last, "c1", true, { maxPresenceBytes: 64 });
    doc.setPresence(0, 0, "123456789");
    assert.equal(h.client.limits.maxPresenceBytes, 64);
  });
});

describe("document type (P6)", () => {
  it("Subscribe names text-unicode, on open and on resume", async () => {
    const h = await connect();
    const opening = h.client.openDocument("d");
    const first = h.conn.take("subscribe");
    assert.equal(first.value.type, "text-unicode");
    h.conn.receive({ case: "snapshot", value: { docId: "d", version: 0n, text: "", type: "text-unicode" } }, first.requestId);
    await opening;
    h.conn.end(1006);
    const conn = await reconnect(h);
    assert.equal(conn.take("subscribe").value.type, "text-unicode");
  });

  it("TYPE_MISMATCH refuses the open; a Subscribed naming another type closes the document", async () => {
    const h = await connect();
    const opening = h.client.openDocument("rich");
    const subscribe = h.conn.take("subscribe");
    error(h.conn, ErrorCode.TYPE_MISMATCH, { docId: "rich", requestId: subscribe.requestId });
    await assert.rejects(opening, (e: unknown) => e instanceof CollabServerError && e.codeName === "TYPE_MISMATCH");

    const doc = await open(h, "d", "", 0);
    h.conn.end(1006);
    const conn = await reconnect(h);
    const resume = conn.take("subscribe");
    conn.receive({ case: "subscribed", value: { docId: "d", fromVersion: 0n, currentVersion: 0n, type: "rich-text" } }, resume.requestId);
    assert.ok(doc.closed);
    assert.equal(conn.take("unsubscribe").value.docId, "d");
  });
});

