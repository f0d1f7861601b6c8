/**
 * RichDocument on the shared state machine against a scripted server: it opens as `rich-text` from `Snapshot.content`,
 * refuses a snapshot of another type or a malformed one, applies remote rich ops past pending local edits, and a
 * rejected op resyncs from a snapshot with the surviving edits rebased by the rich type (diff, invert, transform).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MalformedOpError } from "../src/codec.js";
import { DocumentTypeError } from "../src/errors.js";
import { ErrorCode } from "../src/protocol.js";
import { Delta } from "../src/rich.js";
import { decodeRichOp, encodeRichOp } from "../src/richcodec.js";
import { openRichDocument, type RichDocument } from "../src/richdocument.js";
import { connect, type Harness } from "./harness.js";

async function openRich(h: Harness, contents: Delta, version: number): Promise<RichDocument> {
  const opening = openRichDocument(h.client, "r");
  const subscribe = h.conn.take("subscribe");
  assert.equal(subscribe.value.type, "rich-text");
  assert.equal(subscribe.value.snapshot, true);
  h.conn.receive({ case: "snapshot", value: { docId: "r", version: BigInt(version), text: "", content: encodeRichOp(contents), type: "rich-text" } }, subscribe.requestId);
  return opening;
}

function submitted(h: Harness): { seq: number; base: number; op: object[] } {
  const submit = h.conn.take("submit");
  return { seq: Number(submit.value.clientSeq), base: Number(submit.value.baseVersion), op: decodeRichOp(submit.value.op!).ops };
}

describe("rich documents on the sync state machine", () => {
  it("opens from Snapshot.content, submits Deltas in the rich encoding, and applies remote ops past pending edits", async () => {
    const h = await connect();
    const doc = await openRich(h, new Delta().insert("Hello\n"), 4);
    assert.deepEqual(doc.contents.ops, [{ insert: "Hello\n" }]);
    assert.equal(doc.length, 6);
    doc.formatText(0, 5, { bold: true });
    assert.deepEqual(submitted(h), { seq: 1, base: 4, op: [{ retain: 5, attributes: { bold: true } }] });
    // A remote insert at the start, sequenced before ours: it moves our pending format.
    const changes: object[][] = [];
    doc.on("change", (e) => changes.push(e.op.ops));
    h.conn.receive({
      case: "ops",
      value: { docId: "r", ops: [{ version: 5n, clientId: "other", clientSeq: 1n, op: encodeRichOp(new Delta().insert("😀 ")), timestampMs: 0n, author: "" }] },
    });
    assert.deepEqual(doc.contents.ops, [{ insert: "😀 " }, { insert: "Hello", attributes: { bold: true } }, { insert: "\n" }]);
    assert.deepEqual(changes, [[{ insert: "😀 " }]]);
    h.conn.receive({ case: "ack", value: { docId: "r", clientSeq: 1n, version: 6n, duplicate: false } });
    assert.equal(doc.version, 6);
    assert.equal(doc.hasPendingOps, false);
  });

  it("a rejected op is dropped and the buffer rebased onto the snapshot by the rich type", async () => {
    const h = await connect();
    const doc = await openRich(h, new Delta().insert("abc\n"), 2);
    doc.insertText(3, "X");
    submitted(h);
    doc.formatText(0, 1, { italic: true });
    h.conn.receive({ case: "error", value: { code: ErrorCode.INVALID_OP, message: "test", retryable: false, docId: "r", clientSeq: 1n } });
    const subscribe = h.conn.take("subscribe");
    assert.equal(subscribe.value.snapshot, true);
    // Meanwhile someone typed "Z" at the start (version 3).
    const resyncs: boolean[] = [];
    doc.on("change", (e) => resyncs.push(e.resync));
    h.conn.receive({ case: "snapshot", value: { docId: "r", version: 3n, text: "", content: encodeRichOp(new Delta().insert("Zabc\n")), type: "rich-text" } }, subscribe.requestId);
    assert.deepEqual(doc.contents.ops, [{ insert: "Z" }, { insert: "a", attributes: { italic: true } }, { insert: "bc\n" }]);
    assert.deepEqual(resyncs, [true]);
    assert.deepEqual(submitted(h), { seq: 2, base: 3, op: [{ retain: 1 }, { retain: 1, attributes: { italic: true } }] });
  });

  it("refuses a snapshot of another type with DocumentTypeError, and a malformed one with MalformedOpError", async () => {
    const h = await connect();
    const opening = openRichDocument(h.client, "t");
    const subscribe = h.conn.take("subscribe");
    h.conn.receive({ case: "snapshot", value: { docId: "t", version: 1n, text: "plain", type: "text-unicode" } }, subscribe.requestId);
    await assert.rejects(opening, (e: unknown) => e instanceof DocumentTypeError && e.documentType === "text-unicode" && e.requestedType === "rich-text");
    assert.equal(h.conn.take("unsubscribe").value.docId, "t");

    const broken = openRichDocument(h.client, "b");
    const again = h.conn.take("subscribe");
    h.conn.receive({ case: "snapshot", value: { docId: "b", version: 1n, text: "", content: new Uint8Array([0x0e, 0x0e]), type: "rich-text" } }, again.requestId);
    await assert.rejects(broken, MalformedOpError);
  });

  it("TYPE_MISMATCH from the server rejects the open with DocumentTypeError", async () => {
    const h = await connect();
    const opening = h.client.openDocument("x");
    const subscribe = h.conn.take("subscribe");
    assert.equal(subscribe.value.type, "text-unicode");
    h.conn.receive(
      { case: "error", value: { code: ErrorCode.TYPE_MISMATCH, message: "Document 'x' is a rich-text document, not text-unicode.", retryable: false, docId: "x", clientSeq: 0n } },
      subscribe.requestId,
    );
    await assert.rejects(opening, (e: unknown) => e instanceof DocumentTypeError && e.requestedType === "text-unicode" && e.codeName === "TYPE_MISMATCH" && /is a rich-text document/.test(e.message));
    assert.equal(h.client.getDocument("x"), undefined);
  });

  it("local edits that do not fit, or cut a surrogate pair, are refused before anything is sent", async () => {
    const h = await connect();
    const doc = await openRich(h, new Delta().insert("a😀\n"), 1);
    assert.throws(() => doc.deleteText(2, 1), /surrogate/);
    assert.throws(() => doc.formatText(0, 9, { bold: true }), /beyond the document/);
    assert.throws(() => doc.submitOp([{ retain: 1, delete: 1 }] as never), /one of insert, retain or delete/);
    assert.equal(doc.hasPendingOps, false);
  });
});
