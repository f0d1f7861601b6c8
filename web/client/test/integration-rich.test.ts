/**
 * Rich-text documents (decision P6, docs/OT.md sections 12 to 21) with the SDK in Node against the real server
 * process: concurrent formatting edits converge with each other and with the server's document (read back through the
 * HTTP API), a dropped socket resumes without losing or doubling an edit, presence counts UTF-16 units, a document
 * of the other type is refused with DocumentTypeError, the announced op limit is applied locally, undo inverts rich ops.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { WebSocket } from "ws";
import { CollabClient, type CollabClientOptions } from "../src/client.js";
import { DocumentTypeError } from "../src/errors.js";
import { Delta } from "../src/rich.js";
import { openRichDocument, type RichDocument } from "../src/richdocument.js";
import { MemoryStorage } from "../src/storage.js";
import type { WebSocketConstructor } from "../src/transport.js";
import { UndoManager } from "../src/undo.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CollabClient as PackagedClient } from "@collab/client";
import { openNote } from "../examples/rich.js";
import { repoRoot } from "./paths.js";
import { ServerProcess } from "./server.js";

/** `ws`, with every socket remembered so a test can cut it (terminate: a TCP reset, no close frame). */
const sockets = new Set<WebSocket>();
class TrackedWebSocket extends WebSocket {
  constructor(...args: ConstructorParameters<typeof WebSocket>) {
    super(...args);
    sockets.add(this);
    this.once("close", () => sockets.delete(this));
  }
}
const ws = TrackedWebSocket as unknown as WebSocketConstructor;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(20);
  }
}

/** `position`, moved back off the second half of a surrogate pair. */
function snap(doc: RichDocument, position: number): number {
  let start = 0;
  for (const c of doc.contents.ops) {
    const length = typeof c.insert === "string" ? c.insert.length : 1;
    if (position < start + length) {
      const unit = typeof c.insert === "string" ? c.insert.charCodeAt(position - start) : 0;
      return unit >= 0xdc00 && unit <= 0xdfff ? position - 1 : position;
    }
    start += length;
  }
  return position;
}

const open = new Set<CollabClient>();
afterEach(async () => {
  await Promise.all([...open].map((c) => c.close()));
  open.clear();
});

describe("rich-text documents against the real server", { timeout: 180_000 }, () => {
  let server: ServerProcess;
  before(async () => {
    server = await ServerProcess.start({ "Documents:MaxOpBytes": "2048" });
  });
  after(async () => server?.dispose());

  async function connect(extra: Partial<CollabClientOptions> = {}): Promise<CollabClient> {
    const client = await CollabClient.connect({ url: server.url, webSocket: ws, storage: new MemoryStorage(), reconnect: { minDelayMs: 50, maxDelayMs: 300 }, ...extra });
    open.add(client);
    return client;
  }

  /** The server's document through the HTTP API (docs/API.md: GET /v1/docs/{id}). */
  async function serverDocument(id: string): Promise<{ type: string; version: number; content: unknown }> {
    const response = await fetch(`http://127.0.0.1:${server.port}/v1/docs/${encodeURIComponent(id)}`, { headers: { accept: "application/json" } });
    assert.equal(response.status, 200, await response.clone().text());
    return (await response.json()) as { type: string; version: number; content: unknown };
  }

  it("two clients' concurrent formatting edits converge, equal to the server's document", async () => {
    const [alice, bob] = await Promise.all([connect(), connect()]);
    const a = await openRichDocument(alice, "rich/converge");
    a.submitOp(new Delta().insert("Hello brave new world\n"));
    await a.whenSynced();
    const b = await openRichDocument(bob, "rich/converge");
    await until(() => b.length === a.length, "bob to see the text");

    // Concurrently: bold over "brave new" while the other types inside it, a header on the line, an italic range that
    // overlaps the bold, a delete across the formatting boundary, a link and an embed.
    a.formatText(6, 9, { bold: true });
    b.insertText(11, "shiny ");
    b.formatText(21, 1, { header: 1 });
    a.formatText(0, 8, { italic: true });
    b.deleteText(3, 5);
    a.insertEmbed(0, "image", "https://example.com/cat.png");
    b.formatText(0, 2, { link: "https://example.com" });
    a.formatText(3, 4, { bold: null });
    await Promise.all([a.whenSynced(), b.whenSynced()]);
    await until(() => a.version === b.version && !a.hasPendingOps && !b.hasPendingOps, "both replicas at one version");

    assert.deepEqual(a.contents.ops, b.contents.ops);
    const stored = await serverDocument("rich/converge");
    assert.equal(stored.type, "rich-text");
    assert.equal(stored.version, a.version);
    assert.deepEqual(stored.content, a.contents.ops);
    // Bob's typing inside the range Alice made bold concurrently is not bold (docs/OT.md section 16), and the image
    // went in at the start.
    assert.deepEqual(a.contents.ops[0], { insert: { image: "https://example.com/cat.png" } });
    assert.ok(a.text.includes("shiny"));
    assert.ok(a.contents.ops.some((c) => c.attributes?.["bold"] === true));
  });

  it("many random concurrent rich edits from three clients converge with the server", async () => {
    const clients = await Promise.all([connect(), connect(), connect()]);
    const docs: RichDocument[] = [];
    for (const client of clients) {
      docs.push(await openRichDocument(client, "rich/random"));
    }
    let seed = 7;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const formats = [{ bold: true }, { italic: true }, { bold: null }, { header: 2 }, { list: "bullet" }, { list: null }, { color: "#e60000" }];
    for (let round = 0; round < 60; round++) {
      for (const doc of docs) {
        const length = doc.length;
        // Positions on character boundaries: an op that cuts a surrogate pair is refused (docs/OT.md section 13).
        const at = snap(doc, Math.floor(random() * (length + 1)));
        const roll = random();
        if (roll < 0.45 || length < 4) {
          doc.insertText(at, random() < 0.2 ? "😀x" : "ab", random() < 0.3 ? { underline: true } : undefined);
        } else if (roll < 0.95) {
          const from = snap(doc, Math.min(at, length - 1));
          const to = Math.max(snap(doc, Math.min(length, from + 1 + Math.floor(random() * 3))), from);
          if (to === from) {
            continue;
          }
          if (roll < 0.75) {
            doc.formatText(from, to - from, formats[Math.floor(random() * formats.length)]!);
          } else {
            doc.deleteText(from, to - from);
          }
        } else {
          doc.insertEmbed(at, "formula", "e=mc^2");
        }
      }
      if (round % 10 === 9) {
        await sleep(5);
      }
    }
    await Promise.all(docs.map((d) => d.whenSynced()));
    await until(() => docs.every((d) => d.version === docs[0]!.version && !d.hasPendingOps), "every replica at one version");
    for (const doc of docs.slice(1)) {
      assert.deepEqual(doc.contents.ops, docs[0]!.contents.ops);
    }
    assert.deepEqual((await serverDocument("rich/random")).content, docs[0]!.contents.ops);
  });

  it("resumes after a dropped socket: edits made meanwhile arrive once, the replicas converge", async () => {
    const alice = await connect();
    const bob = await connect();
    const a = await openRichDocument(alice, "rich/resume");
    a.insertText(0, "one two three\n");
    await a.whenSynced();
    const b = await openRichDocument(bob, "rich/resume");
    await until(() => b.length === a.length, "bob to see the text");
    const acks: number[] = [];
    a.on("ack", (e) => acks.push(e.clientSeq));

    a.formatText(0, 3, { bold: true });
    // Cut both sockets (a TCP reset) with Alice's edit in flight; both keep editing while they reconnect and resume.
    for (const socket of sockets) {
      socket.terminate();
    }
    a.insertText(4, "and ");
    b.formatText(8, 5, { italic: true });
    await until(() => alice.state === "connected" && bob.state === "connected", "both clients to reconnect");
    await Promise.all([a.whenSynced(), b.whenSynced()]);
    await until(() => a.version === b.version, "one version");
    assert.deepEqual(a.contents.ops, b.contents.ops);
    assert.equal(new Set(acks).size, acks.length, "an op was acknowledged twice");
    const stored = await serverDocument("rich/resume");
    assert.deepEqual(stored.content, a.contents.ops);
    // Alice's two edits and Bob's one, each once: "one" bold, "and " inserted once.
    assert.equal(a.text.split("and ").length, 2);
    assert.equal(stored.version, 4);
  });

  it("refuses a document of the other type with DocumentTypeError, and creates each type when it is new", async () => {
    const client = await connect();
    const text = await client.openDocument("typed/text");
    text.insert(0, "plain");
    await text.whenSynced();
    const rich = await openRichDocument(client, "typed/rich");
    rich.insertText(0, "rich\n");
    await rich.whenSynced();

    const other = await connect();
    await assert.rejects(openRichDocument(other, "typed/text"), (e: unknown) => e instanceof DocumentTypeError && e.requestedType === "rich-text" && e.codeName === "TYPE_MISMATCH" && !e.retryable);
    await assert.rejects(other.openDocument("typed/rich"), (e: unknown) => e instanceof DocumentTypeError && e.requestedType === "text-unicode");
    // The refused document is not left open: the right class opens it.
    assert.equal(other.getDocument("typed/rich"), undefined);
    const reopened = await openRichDocument(other, "typed/rich");
    assert.deepEqual(reopened.contents.ops, [{ insert: "rich\n" }]);
    assert.equal((await serverDocument("typed/rich")).type, "rich-text");
    assert.equal((await serverDocument("typed/text")).type, "text-unicode");
  });

  it("shares selections in UTF-16 units (an emoji is two, an embed one)", async () => {
    const [alice, bob] = await Promise.all([connect(), connect()]);
    const a = await openRichDocument(alice, "rich/presence");
    a.submitOp(new Delta().insert("😀").insert({ image: "x.png" }).insert("ab\n"));
    await a.whenSynced();
    const b = await openRichDocument(bob, "rich/presence");
    await until(() => b.length === 6, "bob to see the document");
    a.setPresence(3, 5, "alice");
    await until(() => b.presences.size === 1, "alice's selection at bob");
    const seen = [...b.presences.values()][0]!;
    assert.deepEqual([seen.anchor, seen.head], [3, 5]);
    // Bob types before the selection: it moves by the UTF-16 length of what he typed.
    b.insertText(0, "😀");
    assert.deepEqual([b.presences.values().next().value!.anchor, b.presences.values().next().value!.head], [5, 7]);
    assert.throws(() => a.setPresence(7), RangeError);
  });

  it("applies the server's announced op limit before sending, and undoes rich edits for every replica", async () => {
    const [alice, bob] = await Promise.all([connect(), connect()]);
    assert.equal(alice.limits.maxOpBytes, 2048);
    const a = await openRichDocument(alice, "rich/limits-undo");
    assert.throws(() => a.insertText(0, "x".repeat(3000)), RangeError);
    assert.equal(a.length, 0);

    const undo = new UndoManager(a, { captureTimeoutMs: 0 });
    a.insertText(0, "Title\nbody\n");
    a.formatText(5, 1, { header: 1 });
    await a.whenSynced();
    const b = await openRichDocument(bob, "rich/limits-undo");
    await until(() => b.length === a.length, "bob to see the document");
    b.formatText(6, 4, { bold: true });
    await b.whenSynced();
    await until(() => a.version === b.version, "alice to see bob's edit");
    assert.ok(undo.undo(), "the header is undone");
    await a.whenSynced();
    await until(() => b.version === a.version, "bob to see the undo");
    assert.deepEqual(b.contents.ops, [{ insert: "Title\n" }, { insert: "body", attributes: { bold: true } }, { insert: "\n" }]);
    assert.ok(undo.redo());
    await a.whenSynced();
    await until(() => b.version === a.version, "bob to see the redo");
    assert.deepEqual(b.contents.ops, a.contents.ops);
    assert.deepEqual(b.contents.ops[1], { insert: "\n", attributes: { header: 1 } });
  });

  it("README's rich-text example (web/client/examples/rich.ts, shown verbatim) seeds a note another client sees", async () => {
    const readme = readFileSync(join(repoRoot(), "README.md"), "utf8");
    const example = readFileSync(join(repoRoot(), "web", "client", "examples", "rich.ts"), "utf8");
    assert.ok(readme.includes("```ts\n" + example + "```"), "README.md's rich-text example differs from web/client/examples/rich.ts");
    // The example imports the package as an application does (its built dist), so its client comes from there too.
    const packaged = (): Promise<PackagedClient> =>
      PackagedClient.connect({ url: server.url, webSocket: ws, storage: new MemoryStorage() }).then((c) => (open.add(c as unknown as CollabClient), c));
    const [alice, bob] = await Promise.all([packaged(), packaged()]);
    const note = await openNote(alice, "readme/note", "Groceries");
    assert.deepEqual(note.contents.ops, [{ insert: "Groceries" }, { insert: "\n", attributes: { header: 1 } }, { insert: "\n" }]);
    // Opened again (an existing note): left as it is.
    const again = await openNote(bob, "readme/note", "Other title");
    assert.deepEqual(again.contents.ops, note.contents.ops);
  });
});
