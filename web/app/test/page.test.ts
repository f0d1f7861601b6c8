/**
 * The page end to end: a real server (its Release build, serving this workspace's fresh dist/), real Chromium,
 * real typing through CodeMirror. Each test uses its own document; one server and one browser serve the file.
 */
import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { build } from "esbuild";
import type { Browser } from "playwright-core";
import { repoRoot } from "../../client/test/paths.js";
import { ServerProcess } from "../../client/test/server.js";
import { artifacts, assertNoPageErrors, converged, type EditorPage, launchChromium, openEditor, placeCaret, sideBySide, texts } from "./browser.js";

const dist = join(repoRoot(), "web", "app", "dist");
const MAX_OP_BYTES = 4096;
const webRoot = mkdtempSync(join(tmpdir(), "collab-page-test-"));
let server: ServerProcess;
let browser: Browser;
let base: string;
const opened: EditorPage[] = [];

async function open(docId: string, name: string, color: string): Promise<EditorPage> {
  const page = await openEditor(browser, base, docId, name, color);
  opened.push(page);
  return page;
}

/** Code points of a string, for comparing what was typed with what arrived. */
const codePoints = (s: string): string[] => [...s];

/** `sub`'s characters appear in `text` in order. */
function isSubsequence(sub: string, text: string): boolean {
  const chars = codePoints(text);
  let i = 0;
  for (const c of codePoints(sub)) {
    while (i < chars.length && chars[i] !== c) {
      i++;
    }
    if (i === chars.length) {
      return false;
    }
    i++;
  }
  return true;
}

before(async () => {
  assert.ok(existsSync(join(dist, "index.html")), "web/app/dist is not built (npm run build in web/app)");
  // The page as built, plus README's textarea example as an application would host it.
  cpSync(dist, webRoot, { recursive: true });
  mkdirSync(join(webRoot, "example"));
  writeFileSync(
    join(webRoot, "example", "textarea.html"),
    `<!doctype html><meta charset=utf-8><title>textarea example</title><textarea rows=8 cols=60></textarea> <span id=status></span>` +
      `<script type=module>${await exampleBundle()}</script>`,
  );
  // A small op limit (announced in Welcome) lets a test paste more than the server accepts in one edit.
  server = await ServerProcess.start({ "Web:RootPath": webRoot, "Documents:MaxOpBytes": String(MAX_OP_BYTES) });
  base = `http://127.0.0.1:${server.port}`;
  browser = await launchChromium();
});

after(async () => {
  for (const p of opened) {
    await p.context.close().catch(() => {});
  }
  await browser?.close();
  await server?.dispose();
  rmSync(webRoot, { recursive: true, force: true });
});

describe("the page in Chromium", () => {
  it("two pages typing at the same position at the same time converge, and equal the server's snapshot", async () => {
    const docId = "it/concurrent";
    const alice = await open(docId, "Alice", "#2563eb");
    const bob = await open(docId, "Bob", "#db2777");
    await placeCaret(alice, 0);
    await alice.page.keyboard.type("[]");
    await converged(base, docId, [alice, bob]);
    // Both carets between the brackets, then both type at once: astral characters check the UTF-16 mapping.
    await placeCaret(alice, 1);
    await placeCaret(bob, 1);
    const fromAlice = "alice😀types";
    const fromBob = "BOB𝄞É";
    await Promise.all([alice.page.keyboard.type(fromAlice, { delay: 15 }), bob.page.keyboard.type(fromBob, { delay: 15 })]);
    const text = await converged(base, docId, [alice, bob]);
    assert.ok(text.startsWith("[") && text.endsWith("]"), text);
    assert.equal(codePoints(text).length, 2 + codePoints(fromAlice).length + codePoints(fromBob).length, text);
    assert.deepEqual(codePoints(text).sort(), codePoints(`[]${fromAlice}${fromBob}`).sort(), text);
    assert.ok(isSubsequence(fromAlice, text) && isSubsequence(fromBob, text), text);
    assertNoPageErrors(alice, bob);
  });

  it("shows the other user's caret and selection in their colour with their name", async () => {
    const docId = "it/carets";
    const alice = await open(docId, "Alice", "#2563eb");
    const bob = await open(docId, "Bob", "#db2777");
    await placeCaret(alice, 0);
    // Pasted (one input event), then typed.
    await alice.page.keyboard.insertText(
      "Release plan: version 2.4\n\nGoals: ship the offline editor, faster sync after reconnects, and the new sharing dialog.\n" +
        "Owners: Alice (editor), Bob (sync), Chen (sharing).\n\nOpen questions\n- Do we keep the old export format?\n",
    );
    await alice.page.keyboard.type("- Who reviews the migration guide?", { delay: 5 });
    await converged(base, docId, [alice, bob]);
    await placeCaret(bob, "Release plan".length);
    await bob.page.keyboard.type(" (draft)");
    // Alice selects "faster sync".
    await alice.page.evaluate(() => {
      const view = window.__collab!.view;
      const text = view.state.doc.toString();
      const at = text.indexOf("faster sync");
      view.dispatch({ selection: { anchor: at, head: at + "faster sync".length } });
    });
    await converged(base, docId, [alice, bob]);

    const caret = bob.page.locator(".cm-remote-caret", { hasText: "Alice" });
    await caret.waitFor({ state: "visible", timeout: 15_000 });
    assert.equal(await caret.locator(".cm-remote-caret-label").textContent(), "Alice");
    assert.match(await caret.getAttribute("style") ?? "", /#2563eb/i);
    const selection = bob.page.locator(".cm-remote-selection");
    await selection.first().waitFor({ state: "visible" });
    assert.equal((await selection.allTextContents()).join(""), "faster sync");
    // And Bob's caret on Alice's side, with Bob in her list of people here.
    await alice.page.locator(".cm-remote-caret", { hasText: "Bob" }).waitFor({ state: "visible", timeout: 15_000 });
    assert.equal(await alice.page.locator("#peers .avatar").getAttribute("title"), "Bob");
    assert.equal(await alice.page.locator("#connection").getAttribute("data-state"), "connected");

    const shot = await sideBySide(browser, [alice, bob], "two-pages.png");
    assert.ok(existsSync(shot));
    assertNoPageErrors(alice, bob);
  });

  it("a page that goes offline keeps its edits and sends them when it is back; nothing is lost", async () => {
    const docId = "it/offline";
    const alice = await open(docId, "Alice", "#2563eb");
    const bob = await open(docId, "Bob", "#db2777");
    await placeCaret(alice, 0);
    await alice.page.keyboard.type("shared line\n");
    await converged(base, docId, [alice, bob]);

    await alice.context.setOffline(true);
    await alice.page.waitForFunction(() => window.__collab!.client.state !== "connected", undefined, { timeout: 30_000 });
    await placeCaret(alice, (await texts(alice)).doc.length);
    await alice.page.keyboard.type("written offline 📴", { delay: 5 });
    await placeCaret(bob, 0);
    await bob.page.keyboard.type("online meanwhile. ", { delay: 5 });
    // While offline the edits stay on Alice's side, shown as kept.
    assert.equal(await alice.page.locator("#connection").getAttribute("data-state"), "offline");
    await alice.page.waitForFunction(() => document.getElementById("save-state")?.textContent === "Edits kept offline");
    assert.ok(!(await texts(bob)).doc.includes("written offline"));
    assert.ok((await texts(alice)).pending);
    await alice.page.screenshot({ path: join(artifacts, "offline.png") });

    await alice.context.setOffline(false);
    const text = await converged(base, docId, [alice, bob]);
    assert.equal(text, "online meanwhile. shared line\nwritten offline 📴");
    assertNoPageErrors(alice, bob);
  });

  it("the server is SIGKILLed and restarted: both pages reconnect, keep what they typed meanwhile, converge", async () => {
    const docId = "it/crash";
    const alice = await open(docId, "Alice", "#2563eb");
    const bob = await open(docId, "Bob", "#db2777");
    await placeCaret(alice, 0);
    await alice.page.keyboard.type("before the crash.");
    await converged(base, docId, [alice, bob]);

    await server.kill();
    for (const p of [alice, bob]) {
      await p.page.waitForFunction(() => window.__collab!.client.state === "reconnecting", undefined, { timeout: 30_000 });
    }
    assert.equal(await bob.page.locator("#connection").getAttribute("data-state"), "reconnecting");
    await placeCaret(alice, (await texts(alice)).doc.length);
    await alice.page.keyboard.type(" alice while down");
    await placeCaret(bob, 0);
    await bob.page.keyboard.type("bob while down: ");

    await server.startAgain();
    const text = await converged(base, docId, [alice, bob], 90_000);
    assert.equal(text, "bob while down: before the crash. alice while down");
    for (const p of [alice, bob]) {
      assert.equal(await p.page.locator("#connection").getAttribute("data-state"), "connected");
    }
    assertNoPageErrors(alice, bob);
  });

  it("a C# SDK client and a browser page co-edit one document", async () => {
    const docId = "it/csharp";
    const page = await open(docId, "Browser user", "#059669");
    const peer = await CSharpPeer.start(server.url, docId);
    try {
      await placeCaret(page, 0);
      await Promise.all([page.page.keyboard.type("typed in Chromium ✓", { delay: 10 }), peer.send({ insert: [0, "written by C# 🟦. "] })]);
      const peerState = await peer.send({ waitFor: "typed in Chromium ✓", timeoutMs: 60_000 });
      await page.page.waitForFunction(() => window.__collab!.doc.text.includes("written by C#"), undefined, { timeout: 60_000 });
      const text = await converged(base, docId, [page]);
      const synced = await peer.send({ sync: true });
      assert.equal(synced.text, text);
      assert.ok(String(peerState.text).includes("written by C# 🟦. "));
      assert.ok(text.includes("typed in Chromium ✓") && text.includes("written by C# 🟦. "), text);
      assert.equal(codePoints(text).length, codePoints("typed in Chromium ✓written by C# 🟦. ").length);

      // The C# client's selection shows in the page, with the name and colour it sends as user data.
      await peer.send({ presence: [0, 0, JSON.stringify({ name: "C# peer", color: "#7c3aed" })] });
      await page.page.locator(".cm-remote-caret", { hasText: "C# peer" }).waitFor({ state: "visible", timeout: 15_000 });
    } finally {
      peer.stop();
    }
    assertNoPageErrors(page);
  });

  it("README's framework-free textarea example (web/client/examples/textarea.ts) co-edits with the page in Chromium", async () => {
    const docId = "it/textarea";
    const page = await open(docId, "Editor user", "#7c3aed");
    const context = await browser.newContext();
    try {
      const example = await context.newPage();
      const errors: string[] = [];
      example.on("pageerror", (e) => errors.push(e.message));
      // The example's start() as an application hosts it: a page with a textarea (served from the server's web root,
      // see before()) and the application's token endpoint (here answered by the test: the server is anonymous).
      await example.route(`${base}/api/collab-token`, (route) => route.fulfill({ status: 200, body: "" }));
      await example.goto(`${base}/example/textarea.html?doc=${docId}`);
      await example.waitForFunction(() => document.getElementById("status")?.textContent === "connected", undefined, { timeout: 30_000 });
      await example.click("textarea");
      await placeCaret(page, 0);
      await Promise.all([example.keyboard.type("from a textarea 𝒳. ", { delay: 10 }), page.page.keyboard.type("from CodeMirror", { delay: 10 })]);
      /** The text once the textarea shows `expected` (a function of its value) and the page agrees with the server. */
      const settled = async (expected: string, present: boolean): Promise<string> => {
        await example.waitForFunction(([t, p]) => document.querySelector("textarea")!.value.includes(t) === p, [expected, present] as const, { timeout: 30_000 });
        await page.page.waitForFunction(([t, p]) => window.__collab!.doc.text.includes(t) === p, [expected, present] as const, { timeout: 30_000 });
        const text = await converged(base, docId, [page]);
        assert.equal(await example.evaluate(() => document.querySelector("textarea")!.value), text);
        return text;
      };
      const text = await settled("from CodeMirror", true);
      assert.equal(codePoints(text).length, codePoints("from a textarea 𝒳. from CodeMirror").length, text);
      assert.ok(isSubsequence("from a textarea 𝒳. ", text) && isSubsequence("from CodeMirror", text), text);
      // The example's Ctrl+Z undoes the textarea user's last edit only: one pasted word, after the undo manager's
      // 500 ms capture window, so that it is one step whatever the machine's speed.
      await new Promise((r) => setTimeout(r, 700));
      await example.keyboard.insertText("[pasted]");
      const withPaste = await settled("[pasted]", true);
      await example.keyboard.press("Control+z");
      assert.equal(await settled("[pasted]", false), text);
      assert.equal(withPaste.replace("[pasted]", ""), text);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
    assertNoPageErrors(page);
  });

  it("undo in one page takes back that user's edit only, in both pages", async () => {
    const docId = "it/undo";
    const alice = await open(docId, "Alice", "#2563eb");
    const bob = await open(docId, "Bob", "#db2777");
    await placeCaret(alice, 0);
    await alice.page.keyboard.type("one two");
    await converged(base, docId, [alice, bob]);
    await alice.page.evaluate(() => window.__collab!.undo.stopCapturing());
    await placeCaret(alice, 3);
    // One input event, so one undo step whatever the machine's speed (typed keys merge only within 500 ms).
    await alice.page.keyboard.insertText(" and a half");
    await placeCaret(bob, 0);
    await bob.page.keyboard.type("Bob: ");
    await converged(base, docId, [alice, bob]);
    await alice.page.locator(".cm-content").focus();
    await alice.page.keyboard.press("Control+z");
    assert.equal(await converged(base, docId, [alice, bob]), "Bob: one two");
    await alice.page.keyboard.press("Control+y");
    assert.equal(await converged(base, docId, [alice, bob]), "Bob: one and a half two");
    assertNoPageErrors(alice, bob);
  });

  it("a paste larger than the server's op limit is refused, taken back out of the editor, and explained", async () => {
    const docId = "it/too-large";
    const alice = await open(docId, "Alice", "#2563eb");
    await placeCaret(alice, 0);
    await alice.page.keyboard.type("kept");
    await converged(base, docId, [alice]);
    await alice.page.keyboard.insertText("x".repeat(MAX_OP_BYTES + 1));
    await alice.page.locator("#banner").waitFor({ state: "visible", timeout: 15_000 });
    assert.match((await alice.page.locator("#banner").textContent()) ?? "", /too large to send at once \(the server accepts 4 KB per edit\)/);
    assert.equal(await converged(base, docId, [alice]), "kept");
    // The editor goes on: a normal edit after the refused one is sent.
    await alice.page.keyboard.type("!");
    assert.equal(await converged(base, docId, [alice]), "kept!");
    assertNoPageErrors(alice);
  });

  it("a deleted document stops being editable and says so", async () => {
    const docId = "it/deleted";
    const alice = await open(docId, "Alice", "#2563eb");
    await placeCaret(alice, 0);
    await alice.page.keyboard.type("soon gone");
    await converged(base, docId, [alice]);
    const response = await fetch(`${base}/v1/docs/${encodeURIComponent(docId)}`, { method: "DELETE" });
    assert.equal(response.status, 204);
    await alice.page.locator("#banner").waitFor({ state: "visible", timeout: 15_000 });
    assert.match((await alice.page.locator("#banner").textContent()) ?? "", /deleted/);
    assert.equal(await alice.page.locator(".cm-content").getAttribute("contenteditable"), "false");
    assertNoPageErrors(alice);
  });

  it("the picker opens documents by name, creates new ones and lists recent and server documents", async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${base}/`);
      await page.fill("#doc-id", "../etc");
      await page.click("button[type=submit]");
      assert.match((await page.locator(".field-error").textContent()) ?? "", /cannot start/);
      await page.fill("#doc-id", "it/picked");
      await Promise.all([page.waitForURL(`${base}/d/it/picked`), page.click("button[type=submit]")]);
      await page.waitForFunction(() => window.__collab?.doc.id === "it/picked");
      await page.goto(`${base}/`);
      await page.locator("#recent-list a", { hasText: "it/picked" }).waitFor();
      // Documents with edits are listed from GET /v1/docs.
      await page.locator("#server-list a", { hasText: "it/concurrent" }).waitFor();
      await Promise.all([page.waitForURL(/\/d\/untitled-[a-z2-9]{6}$/), page.click("#new-doc")]);
      await page.waitForFunction(() => window.__collab?.doc !== undefined);
      await page.goto(`${base}/`);
      await page.screenshot({ path: join(artifacts, "picker.png") });
    } finally {
      await context.close();
    }
  });
});

describe("the page as the server serves it", () => {
  it("HTML no-store, hashed assets immutable with their types and ETags, unknown paths 404", async () => {
    const html = await fetch(`${base}/d/any/doc`);
    assert.equal(html.status, 200);
    assert.equal(html.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(html.headers.get("cache-control"), "no-store");
    const body = await html.text();
    const assets = [...body.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    // Icon, stylesheet, script, and the chunk the script shares with the rich-text editor (preloaded).
    assert.equal(assets.length, 4, body);
    // The chunks the scripts import, the rich-text editor's among them (loaded on demand): hashed and immutable too.
    for (const script of assets.filter((a) => a.endsWith(".js"))) {
      const code = await (await fetch(`${base}${script}`)).text();
      for (const m of code.matchAll(/"\.\/([A-Za-z]+-[A-Z0-9]{8}\.js)"/g)) {
        if (!assets.includes(`/assets/${m[1]}`)) {
          assets.push(`/assets/${m[1]}`);
        }
      }
    }
    assert.ok(assets.some((a) => /\/richeditor-[A-Z0-9]{8}\.js$/.test(a)), `the rich-text editor's chunk is not referenced: ${assets.join(", ")}`);
    const types: Record<string, string> = { js: "text/javascript", css: "text/css", svg: "image/svg+xml" };
    for (const asset of assets) {
      assert.match(asset, /-[A-Z0-9]{8}\.(js|css|svg)$/);
      const response = await fetch(`${base}${asset}`);
      assert.equal(response.status, 200, asset);
      assert.equal(response.headers.get("cache-control"), "public, max-age=31536000, immutable");
      assert.equal(response.headers.get("content-type")?.split(";")[0], types[asset.split(".").pop()!]);
      const etag = response.headers.get("etag");
      assert.ok(etag, asset);
      assert.equal((await fetch(`${base}${asset}`, { headers: { "if-none-match": etag } })).status, 304);
    }
    assert.equal((await fetch(`${base}/assets/app-00000000.js`)).status, 404);
  });

  it("the server's own build carries the page in wwwroot (the MSBuild hook), served with no setting", async () => {
    const plain = await ServerProcess.start();
    try {
      const page = await fetch(`http://127.0.0.1:${plain.port}/`);
      assert.equal(page.status, 200, "the server's build has no wwwroot/index.html: the MSBuild target did not run");
      const script = /src="(\/assets\/app-[A-Z0-9]{8}\.js)"/.exec(await page.text())?.[1];
      assert.ok(script);
      assert.equal((await fetch(`http://127.0.0.1:${plain.port}${script}`)).status, 200);
    } finally {
      await plain.dispose();
    }
  });
});

/** examples/textarea.ts and its start(), bundled for the browser as README shows them (the SDK from its build). */
async function exampleBundle(): Promise<string> {
  const example = join(repoRoot(), "web", "client", "examples", "textarea.ts");
  const result = await build({
    stdin: {
      contents: `import { start } from ${JSON.stringify(example)};\nawait start(document.querySelector("textarea"), document.getElementById("status"));\n`,
      resolveDir: join(repoRoot(), "web", "client"),
      loader: "ts",
    },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0]!.text.replaceAll("</script", "<\\/script");
}

/** The C# SDK client of web/app/test/peer, over stdin/stdout JSON lines. */
class CSharpPeer {
  private readonly replies: ((line: string) => void)[] = [];
  private readonly lines: Interface;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.lines = createInterface({ input: child.stdout });
    this.lines.on("line", (line) => this.replies.shift()?.(line));
  }

  static async start(url: string, docId: string): Promise<CSharpPeer> {
    const project = join(repoRoot(), "web", "app", "test", "peer");
    const build = spawnSync("dotnet", ["build", project, "-c", "Release", "-nologo", "-clp:ErrorsOnly", "-o", join(project, "bin", "out")], { encoding: "utf8" });
    assert.equal(build.status, 0, `building the C# peer failed:\n${build.stdout}\n${build.stderr}`);
    const child = spawn("dotnet", [join(project, "bin", "out", "Collab.Web.Peer.dll"), url, docId], { stdio: ["pipe", "pipe", "pipe"] });
    const peer = new CSharpPeer(child);
    const ready = JSON.parse(await peer.next(60_000)) as { ready?: boolean };
    assert.equal(ready.ready, true);
    return peer;
  }

  private next(timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the C# peer did not answer")), timeoutMs);
      this.replies.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  }

  async send(command: Record<string, unknown>): Promise<Record<string, unknown>> {
    const reply = this.next(90_000);
    this.child.stdin.write(`${JSON.stringify(command)}\n`);
    const parsed = JSON.parse(await reply) as Record<string, unknown>;
    assert.equal(parsed.error, undefined, `C# peer: ${String(parsed.error)}`);
    return parsed;
  }

  stop(): void {
    this.child.stdin.end();
    this.child.kill("SIGKILL");
  }
}

