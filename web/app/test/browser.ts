/**
 * Real Chromium (Debian's /usr/bin/chromium, headless) driven by playwright-core, against pages served by a real
 * server: helpers to open the editor as a named user, read both sides of the binding, wait for convergence, and keep
 * screenshots as test artifacts (<repo>/artifacts/browser).
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { repoRoot } from "../../client/test/paths.js";

/** The browser: CHROMIUM_PATH, else Debian's package. Playwright's own browser download is not used. */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    // --no-sandbox: test containers run as root, where Chromium's sandbox cannot start; no GPU on CI machines.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    headless: true,
  });
}

export const artifacts = join(repoRoot(), "artifacts", "browser");

export interface EditorPage {
  context: BrowserContext;
  page: Page;
  name: string;
  errors: string[];
}

/**
 * Opens /d/<docId> in a fresh browser context (its own storage: another user) as `name` with `color`, and waits until
 * the document is open in the editor. Page errors are collected; {@link assertNoPageErrors} checks them.
 */
export async function openEditor(browser: Browser, base: string, docId: string, name: string, color: string): Promise<EditorPage> {
  const context = await browser.newContext({ viewport: { width: 900, height: 620 }, deviceScaleFactor: 1 });
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
  await page.goto(`${base}/d/${docId}`);
  await page.waitForFunction(() => window.__collab?.view !== undefined, undefined, { timeout: 30_000 });
  return { context, page, name, errors };
}

export function assertNoPageErrors(...pages: EditorPage[]): void {
  for (const p of pages) {
    assert.deepEqual(p.errors, [], `${p.name}'s page threw`);
  }
}

/** The document's text in the SDK and the editor's text: the binding keeps them equal. */
export async function texts(p: EditorPage): Promise<{ doc: string; editor: string; pending: boolean; version: number }> {
  return p.page.evaluate(() => {
    const handle = window.__collab!;
    return { doc: handle.doc.text, editor: handle.view.state.doc.toString(), pending: handle.doc.hasPendingOps, version: handle.doc.version };
  });
}

/** The server's text of a document, over the HTTP API. */
export async function serverText(base: string, docId: string): Promise<{ content: string; version: number }> {
  const response = await fetch(`${base}/v1/docs/${encodeURIComponent(docId)}`);
  assert.equal(response.status, 200, `GET /v1/docs/${docId}`);
  return (await response.json()) as { content: string; version: number };
}

/**
 * Waits until every page has acknowledged its edits and all show the same text at the same version, which is the
 * server's; returns that text.
 */
export async function converged(base: string, docId: string, pages: EditorPage[], timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const states = await Promise.all(pages.map(texts));
    for (const [i, s] of states.entries()) {
      assert.equal(s.editor, s.doc, `${pages[i]!.name}: the editor and the document differ`);
    }
    const server = await serverText(base, docId);
    const settled = states.every((s) => !s.pending && s.doc === server.content && s.version === server.version);
    if (settled) {
      return server.content;
    }
    last = JSON.stringify({ server, pages: states });
    if (Date.now() > deadline) {
      assert.fail(`no convergence within ${timeoutMs} ms: ${last}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Places the caret at a UTF-16 offset of the editor (as a click there would). */
export async function placeCaret(p: EditorPage, offset: number): Promise<void> {
  await p.page.evaluate((at) => {
    const view = window.__collab!.view;
    view.focus();
    view.dispatch({ selection: { anchor: at } });
  }, offset);
}

/** Screenshots of pages put side by side into one PNG (composed by the browser itself), kept as an artifact. */
export async function sideBySide(browser: Browser, pages: EditorPage[], file: string): Promise<string> {
  const shots = await Promise.all(pages.map((p) => p.page.screenshot()));
  const sizes = await Promise.all(pages.map((p) => p.page.viewportSize()!));
  const gap = 16;
  const width = sizes.reduce((sum, s) => sum + s.width, 0) + gap * (pages.length + 1);
  const height = Math.max(...sizes.map((s) => s.height)) + gap * 2 + 28;
  const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const figures = shots
    .map(
      (png, i) =>
        `<figure><figcaption>${pages[i]!.name}</figcaption><img width="${sizes[i]!.width}" height="${sizes[i]!.height}" src="data:image/png;base64,${png.toString("base64")}"></figure>`,
    )
    .join("");
  await page.setContent(
    `<style>body{margin:0;padding:${gap}px;display:flex;gap:${gap}px;background:#d1d5db;font:600 13px system-ui}` +
      `figure{margin:0}figcaption{height:24px;color:#374151}img{display:block;border-radius:6px;box-shadow:0 2px 8px rgb(0 0 0/.2)}</style>${figures}`,
  );
  mkdirSync(artifacts, { recursive: true });
  const path = join(artifacts, file);
  writeFileSync(path, await page.screenshot());
  await context.close();
  return path;
}
