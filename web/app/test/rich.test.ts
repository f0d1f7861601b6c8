/**
 * The rich-text page end to end: a real server (its Release build, serving this workspace's fresh dist/), real
 * Chromium, Quill 2 driven by real keystrokes and its toolbar. Two pages edit one document concurrently (bold over a
 * range while the other types inside it, list toggles, deletes across formatting, an image embed) and end with equal
 * `quill.getContents()`, equal to the server's document read through GET /v1/docs/{id}.
 */
import assert from "node:assert/strict";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { repoRoot } from "../../client/test/paths.js";
import { ServerProcess } from "../../client/test/server.js";
import { artifacts, type EditorPage, launchChromium, sideBySide } from "./browser.js";

const dist = join(repoRoot(), "web", "app", "dist");
const webRoot = mkdtempSync(join(tmpdir(), "collab-rich-page-test-"));
let server: ServerProcess;
let browser: Browser;
let base: string;
const opened: BrowserContext[] = [];

/** Creates a rich-text document through the HTTP API (docs/API.md: PUT /v1/docs/{id}). */
async function createRich(docId: string, content: object[]): Promise<void> {
  const response = await fetch(`${base}/v1/docs/${encodeURIComponent(docId)}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ type: "rich-text", content }),
  });
  assert.equal(response.status, 201, await response.text());
}

/** Opens /d/<docId> as a new user (own browser context) and waits until Quill shows the document. */
async function openRich(docId: string, name: string, color: string, query = ""): Promise<EditorPage> {
  const context = await browser.newContext({ viewport: { width: 900, height: 620 }, deviceScaleFactor: 1 });
  opened.push(context);
  await context.addInitScript(
    ([n, c]) => {
      if (localStorage.getItem("collab.identity") === null) {
        localStorage.setItem("collab.identity", JSON.stringify({ name: n, color: c }));
      }
    },
    [name, color] as const,
  );
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(`${base}/d/${docId}${query}`);
  await page.waitForFunction(() => window.__collabRich?.quill !== undefined, undefined, { timeout: 30_000 });
  return { context, page, name, errors };
}

interface RichState {
  quill: object[];
  doc: object[];
  pending: boolean;
  version: number;
}

async function state(p: EditorPage): Promise<RichState> {
  return p.page.evaluate(() => {
    const handle = window.__collabRich!;
    return { quill: handle.quill.getContents().ops, doc: handle.doc.contents.ops, pending: handle.doc.hasPendingOps, version: handle.doc.version };
  });
}

async function serverDocument(docId: string): Promise<{ type: string; version: number; content: object[] }> {
  const response = await fetch(`${base}/v1/docs/${encodeURIComponent(docId)}`);
  assert.equal(response.status, 200, `GET /v1/docs/${docId}`);
  return (await response.json()) as { type: string; version: number; content: object[] };
}

/**
 * Waits until every page has acknowledged its edits and every Quill holds the same contents at one version, the
 * server's; returns those contents. Quill's contents must equal the SDK document's at every look.
 */
async function converged(docId: string, pages: EditorPage[], timeoutMs = 60_000): Promise<object[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await Promise.all(pages.map(state));
    const server = await serverDocument(docId);
    const settled = states.every((s) => !s.pending && s.version === server.version);
    if (settled) {
      for (const [i, s] of states.entries()) {
        assert.deepEqual(s.quill, s.doc, `${pages[i]!.name}: Quill and the document differ`);
        assert.deepEqual(s.quill, server.content, `${pages[i]!.name}: Quill and the server differ`);
      }
      return server.content;
    }
    if (Date.now() > deadline) {
      assert.fail(`no convergence within ${timeoutMs} ms: ${JSON.stringify({ server, states })}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Selects `[index, index + length)` in Quill as the user would (focused; source "user"). */
async function select(p: EditorPage, index: number, length = 0): Promise<void> {
  await p.page.evaluate(
    ([i, n]) => {
      const quill = window.__collabRich!.quill;
      quill.focus();
      quill.setSelection(i!, n!, "user");
    },
    [index, length] as const,
  );
}

function assertNoPageErrors(...pages: EditorPage[]): void {
  for (const p of pages) {
    assert.deepEqual(p.errors, [], `${p.name}'s page threw`);
  }
}

/** Whether each character (an embed counts as one) of a document's contents is bold. */
const boldMap = (ops: object[]): boolean[] =>
  ops.flatMap((o) => {
    const op = o as { insert?: unknown; attributes?: { bold?: boolean } };
    const length = typeof op.insert === "string" ? op.insert.length : 1;
    return Array<boolean>(length).fill(op.attributes?.bold === true);
  });

const plain = (ops: object[]): string => ops.map((o) => (typeof (o as { insert?: unknown }).insert === "string" ? (o as { insert: string }).insert : "\uFFFC")).join("");

before(async () => {
  assert.ok(existsSync(join(dist, "index.html")), "web/app/dist is not built (npm run build in web/app)");
  cpSync(dist, webRoot, { recursive: true });
  server = await ServerProcess.start({ "Web:RootPath": webRoot });
  base = `http://127.0.0.1:${server.port}`;
  browser = await launchChromium();
});

after(async () => {
  for (const context of opened) {
    await context.close().catch(() => {});
  }
  await browser?.close();
  await server?.dispose();
  rmSync(webRoot, { recursive: true, force: true });
});

describe("the rich-text page in Chromium", () => {
  it("concurrent formatting edits from two Quill pages converge, equal to the server's document", async () => {
    const docId = "rich-it/formatting";
    await createRich(docId, [{ insert: "The quick brown fox jumps over the lazy dog\nSecond line\nThird line\n" }]);
    const alice = await openRich(docId, "Alice", "#2563eb");
    const bob = await openRich(docId, "Bob", "#db2777");
    assert.equal(await alice.page.evaluate(() => document.body.dataset.docType), "rich-text");

    // Alice makes "quick brown fox" bold (Ctrl+B) while Bob types inside it.
    await select(alice, 4, 15);
    await select(bob, 10, 0);
    await Promise.all([alice.page.keyboard.press("Control+b"), bob.page.keyboard.type("very ", { delay: 20 })]);
    let contents = await converged(docId, [alice, bob]);
    assert.ok(plain(contents).startsWith("The quick very brown fox"), plain(contents));
    // Alice's range is bold on every page and the server: "quick " and "brown fox". Which of Bob's keystrokes were
    // concurrent with her Ctrl+B depends on delivery: one her page had already received lies inside her selection and is
    // bolded with it (a causal format, seen once the server's round trip fell below the keystroke's), one that crossed
    // her op stays plain (docs/OT.md section 16, checked deterministically by RichTextTypeTests'
    // Text_typed_inside_a_range_formatted_concurrently_stays_unformatted), one typed after Bob's page had the bold
    // inherits it as Quill does. Here: the range's own text is bold, and nothing outside it is.
    const bold = boldMap(contents);
    const text = plain(contents);
    const quick = text.indexOf("quick ");
    const fox = text.indexOf("brown fox");
    assert.ok([...Array("quick ".length).keys()].every((i) => bold[quick + i]), JSON.stringify(contents));
    assert.ok([...Array("brown fox".length).keys()].every((i) => bold[fox + i]), JSON.stringify(contents));
    assert.ok(!bold.slice(0, quick).some(Boolean) && !bold.slice(fox + "brown fox".length).some(Boolean), JSON.stringify(contents));

    // List toggles from the toolbar on both pages at once: Alice bullets line 2, Bob numbers lines 2 and 3.
    const secondLine = plain(contents).indexOf("Second");
    await select(alice, secondLine + 1);
    await select(bob, secondLine, "Second line\nThird".length);
    await Promise.all([alice.page.click(".ql-toolbar button.ql-list[value=bullet]"), bob.page.click(".ql-toolbar button.ql-list[value=ordered]")]);
    contents = await converged(docId, [alice, bob]);
    assert.ok(contents.some((o) => (o as { attributes?: { list?: string } }).attributes?.list !== undefined), JSON.stringify(contents));

    // A delete across formatting (from inside the bold into plain text) while the other makes a header and italics.
    await select(bob, 6, 14);
    await select(alice, 0, 3);
    await Promise.all([bob.page.keyboard.press("Backspace"), alice.page.keyboard.press("Control+i")]);
    await alice.page.evaluate(() => window.__collabRich!.quill.formatLine(0, 1, "header", 1, "user"));
    // An image embed (the toolbar's image button inserts one; its file dialog is the browser's, so through the API).
    await bob.page.evaluate(() => window.__collabRich!.quill.insertEmbed(4, "image", "data:image/gif;base64,R0lGODlhAQABAAAAACw=", "user"));
    contents = await converged(docId, [alice, bob]);
    assert.ok(contents.some((o) => typeof (o as { insert?: unknown }).insert === "object"), "the image is in the document");
    assert.ok(contents.some((o) => (o as { attributes?: { header?: number } }).attributes?.header === 1), "the header is in the document");
    assert.ok(contents.some((o) => (o as { attributes?: { italic?: boolean } }).attributes?.italic === true), "the italics are in the document");
    assert.equal((await serverDocument(docId)).type, "rich-text");
    assertNoPageErrors(alice, bob);
  });

  it("shows the other user's caret and selection with their name and colour, and a screenshot of two pages", async () => {
    const docId = "rich-it/carets";
    await createRich(docId, [
      { insert: "Release plan" },
      { insert: "\n", attributes: { header: 1 } },
      { insert: "Ship the " },
      { insert: "offline editor", attributes: { bold: true } },
      { insert: " and " },
      { insert: "faster sync", attributes: { italic: true } },
      { insert: " by Friday.\n" },
      { insert: "Alice: editor" },
      { insert: "\n", attributes: { list: "bullet" } },
      { insert: "Bob: sync and the " },
      { insert: "migration guide", attributes: { link: "https://example.com/guide" } },
      { insert: "\n", attributes: { list: "bullet" } },
      { insert: "Open questions", attributes: { underline: true } },
      { insert: "\n", attributes: { header: 2 } },
      { insert: "Do we keep the old export format?" },
      { insert: "\n", attributes: { list: "ordered" } },
    ]);
    const alice = await openRich(docId, "Alice", "#2563eb");
    const bob = await openRich(docId, "Bob", "#db2777");
    // Alice selects "offline editor"; Bob's page draws it, with her name, in her colour.
    await select(alice, "Release plan\nShip the ".length, "offline editor".length);
    await select(bob, "Release plan\nShip the offline editor and faster sync by Friday.\nAlice: editor".length);
    await bob.page.keyboard.type(" (and docs)", { delay: 10 });
    await bob.page.locator(".ql-cursor .ql-cursor-name", { hasText: "Alice" }).waitFor({ state: "attached", timeout: 15_000 });
    const aliceCursor = bob.page.locator(".ql-cursor", { has: bob.page.locator(".ql-cursor-name", { hasText: "Alice" }) });
    assert.equal(await aliceCursor.locator(".ql-cursor-caret").evaluate((e) => getComputedStyle(e).backgroundColor), "rgb(37, 99, 235)");
    // Her selection: quill-cursors 6 paints text ranges with the CSS Custom Highlight API, over "offline editor".
    await bob.page.waitForFunction(
      () => [...CSS.highlights.values()].some((h) => [...h].some((r) => r.toString() === "offline editor")),
      undefined,
      { timeout: 15_000 },
    );
    await alice.page.locator(".ql-cursor .ql-cursor-name", { hasText: "Bob" }).waitFor({ state: "attached", timeout: 15_000 });
    await converged(docId, [alice, bob]);
    // Both avatars in each other's header.
    await alice.page.locator("#peers .avatar[title=Bob]").waitFor({ timeout: 15_000 });
    // A name shows where its caret moves, then fades: move both once more, and the picture shows both names.
    await bob.page.keyboard.type(" ✓");
    await select(alice, "Release plan\nShip the ".length, "offline editor".length);
    await converged(docId, [alice, bob]);
    await bob.page.locator(".ql-cursor .ql-cursor-name", { hasText: "Alice" }).waitFor({ state: "visible", timeout: 15_000 });
    await alice.page.locator(".ql-cursor .ql-cursor-name", { hasText: "Bob" }).waitFor({ state: "visible", timeout: 15_000 });
    const shot = await sideBySide(browser, [alice, bob], "rich-two-pages.png");
    if (process.env.COLLAB_UPDATE_SCREENSHOTS === "1") {
      copyFileSync(shot, join(repoRoot(), "docs", "images", "rich-two-pages.png"));
    }
    assertNoPageErrors(alice, bob);
  });

  it("undo and redo undo this user's own formatting only, for both pages", async () => {
    const docId = "rich-it/undo";
    await createRich(docId, [{ insert: "alpha beta\n" }]);
    const alice = await openRich(docId, "Alice", "#2563eb");
    const bob = await openRich(docId, "Bob", "#db2777");
    await select(alice, 0, 5);
    await alice.page.keyboard.press("Control+b");
    await converged(docId, [alice, bob]);
    await select(bob, 6, 4);
    await bob.page.keyboard.press("Control+u");
    await converged(docId, [alice, bob]);
    await alice.page.keyboard.press("Control+z");
    let contents = await converged(docId, [alice, bob]);
    assert.deepEqual(contents, [{ insert: "alpha " }, { insert: "beta", attributes: { underline: true } }, { insert: "\n" }]);
    await alice.page.click("#redo");
    contents = await converged(docId, [alice, bob]);
    assert.deepEqual(contents, [{ insert: "alpha", attributes: { bold: true } }, { insert: " " }, { insert: "beta", attributes: { underline: true } }, { insert: "\n" }]);
    assertNoPageErrors(alice, bob);
  });

  it("a document without Quill's trailing newline (made through the API) is edited and formatted to the end", async () => {
    const docId = "rich-it/no-newline";
    await createRich(docId, [{ insert: "abc" }]);
    const alice = await openRich(docId, "Alice", "#2563eb");
    const bob = await openRich(docId, "Bob", "#db2777");
    // Quill shows the document plus the newline it always keeps; nothing is sent for it.
    assert.deepEqual((await state(alice)).quill, [{ insert: "abc\n" }]);
    assert.deepEqual((await state(alice)).doc, [{ insert: "abc" }]);
    // A header on the last line formats that newline: it becomes the document's, for both pages.
    await select(alice, 1);
    await alice.page.click(".ql-toolbar .ql-header .ql-picker-label");
    await alice.page.click(".ql-toolbar .ql-header .ql-picker-item[data-value='2']");
    let contents = await converged(docId, [alice, bob]);
    assert.deepEqual(contents, [{ insert: "abc" }, { insert: "\n", attributes: { header: 2 } }]);
    await select(bob, 3);
    await bob.page.keyboard.type(" and more");
    contents = await converged(docId, [alice, bob]);
    assert.deepEqual(contents, [{ insert: "abc and more" }, { insert: "\n", attributes: { header: 2 } }]);
    assertNoPageErrors(alice, bob);
  });

  it("the picker creates a rich-text document; opening a document uses its type from the server", async () => {
    const context = await browser.newContext();
    opened.push(context);
    const page: Page = await context.newPage();
    await page.goto(`${base}/`);
    await Promise.all([page.waitForURL(/\/d\/untitled-[a-z2-9]{6}$/), page.click("#new-rich-doc")]);
    await page.waitForFunction(() => window.__collabRich?.quill !== undefined, undefined, { timeout: 30_000 });
    const docId = new URL(page.url()).pathname.slice(3);
    await page.keyboard.type("Made in the picker");
    await page.waitForFunction(() => !window.__collabRich!.doc.hasPendingOps);
    const created = await serverDocument(docId);
    assert.equal(created.type, "rich-text");
    assert.deepEqual(created.content, [{ insert: "Made in the picker\n" }]);
    // A text document opened by its link in a browser that has never seen it: the CodeMirror page. A rich one opened
    // the same way: Quill (the type comes from the server: the first guess is refused with TYPE_MISMATCH).
    const fresh = await browser.newContext();
    opened.push(fresh);
    const other = await fresh.newPage();
    await other.goto(`${base}/d/${docId}`);
    await other.waitForFunction(() => window.__collabRich?.doc.text === "Made in the picker\n", undefined, { timeout: 30_000 });
    await other.goto(`${base}/d/rich-it/a-text-doc`);
    await other.waitForFunction(() => window.__collab?.view !== undefined, undefined, { timeout: 30_000 });
    assert.equal(await other.evaluate(() => document.body.dataset.docType), "text");
    // The server list marks rich documents.
    await page.goto(`${base}/`);
    await page.locator(`#server-list a[data-type=rich-text]`, { hasText: docId }).waitFor({ timeout: 15_000 });
    await page.locator(`#recent-list a[data-type=rich-text]`, { hasText: docId }).waitFor({ timeout: 15_000 });
    await page.screenshot({ path: join(artifacts, "picker-rich.png") });
  });

  it("the server is SIGKILLed and restarted: both pages reconnect, keep what they typed meanwhile, converge", async () => {
    const docId = "rich-it/crash";
    await createRich(docId, [{ insert: "before the crash.\n" }]);
    const alice = await openRich(docId, "Alice", "#2563eb");
    const bob = await openRich(docId, "Bob", "#db2777");
    await converged(docId, [alice, bob]);

    await server.kill();
    for (const p of [alice, bob]) {
      await p.page.waitForFunction(() => window.__collabClient!.state === "reconnecting", undefined, { timeout: 30_000 });
      assert.equal(await p.page.locator("#connection").getAttribute("data-state"), "reconnecting");
    }
    await select(alice, "before the crash.".length);
    await alice.page.keyboard.type(" alice while down");
    await select(bob, 0);
    await bob.page.keyboard.type("bob while down: ");
    await select(bob, "bob while down: ".length, "before".length);
    await bob.page.keyboard.press("Control+b");

    await server.startAgain();
    const contents = await converged(docId, [alice, bob], 90_000);
    assert.equal(plain(contents), "bob while down: before the crash. alice while down\n");
    assert.ok(contents.some((o) => JSON.stringify(o) === JSON.stringify({ insert: "before", attributes: { bold: true } })), JSON.stringify(contents));
    for (const p of [alice, bob]) {
      assert.equal(await p.page.locator("#connection").getAttribute("data-state"), "connected");
    }
    assertNoPageErrors(alice, bob);
  });
});

// Keep the shared screenshot directory in existence for sideBySide's callers.
mkdirSync(artifacts, { recursive: true });
