/**
 * Keystroke-to-remote-render latency between two pages, and the ack round trip seen from the browser
 * (docs/PERFORMANCE.md, "Browser page"). Not a test: a measurement, run by hand:
 *
 *   cd web/app && npm run bench:latency -- [keystrokes=300]
 *
 * A real server (the Release build, serving dist/) and two Chromium pages on one document. Page A receives real key
 * presses (CDP Input.dispatchKeyEvent), one at a time; page B observes its editor. Times are taken inside the pages
 * on one clock (performance.timeOrigin + performance.now(), shared by every page of the machine):
 * - keydown in A -> B's editor DOM holds the character (MutationObserver) -> B's next animation frame;
 * - A's local edit -> A's Ack for it (the op durable on the server, PROTOCOL.md section 5.4).
 * The next key is pressed once B showed the previous one and A has no edit pending, so every figure is one op alone.
 */
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../../client/test/paths.js";
import { ServerProcess } from "../../client/test/server.js";
import { launchChromium, openEditor, placeCaret } from "./browser.js";

declare global {
  interface Window {
    __bench?: { keydown: number[]; dom: number[]; frame: number[]; edit: number[]; ack: number[] };
  }
}

const keystrokes = Number(process.argv[2] ?? 300);
const dist = join(repoRoot(), "web", "app", "dist");

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function summary(name: string, values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const f = (v: number): string => v.toFixed(1).padStart(6);
  return `${name.padEnd(34)} n=${sorted.length}  p50 ${f(percentile(sorted, 50))} ms  p90 ${f(percentile(sorted, 90))} ms  p99 ${f(percentile(sorted, 99))} ms  max ${f(sorted[sorted.length - 1]!)} ms`;
}

const server = await ServerProcess.start({ "Web:RootPath": dist });
const browser = await launchChromium();
try {
  const base = `http://127.0.0.1:${server.port}`;
  const docId = `bench/latency-${Date.now()}`;
  const a = await openEditor(browser, base, docId, "Typist", "#2563eb");
  const b = await openEditor(browser, base, docId, "Reader", "#db2777");
  const clock = "performance.timeOrigin + performance.now()";
  await a.page.evaluate(`(() => {
    const bench = (window.__bench = { keydown: [], dom: [], frame: [], edit: [], ack: [] });
    document.addEventListener("keydown", () => bench.keydown.push(${clock}), true);
    const doc = window.__collab.doc;
    doc.on("localChange", () => bench.edit.push(${clock}));
    doc.on("ack", () => bench.ack.push(${clock}));
  })()`);
  await b.page.evaluate(`(() => {
    const bench = (window.__bench = { keydown: [], dom: [], frame: [], edit: [], ack: [] });
    const view = window.__collab.view;
    let seen = view.state.doc.length;
    new MutationObserver(() => {
      const length = view.state.doc.length;
      if (length > seen) {
        seen = length;
        bench.dom.push(${clock});
        requestAnimationFrame(() => bench.frame.push(${clock}));
      }
    }).observe(view.contentDOM, { childList: true, subtree: true, characterData: true });
  })()`);
  await placeCaret(a, 0);
  const alphabet = "abcdefghijklmnopqrstuvwxyz ";
  for (let i = 0; i < keystrokes; i++) {
    await a.page.keyboard.press(alphabet[i % alphabet.length]!);
    await b.page.waitForFunction((n) => (window.__bench?.frame.length ?? 0) >= n, i + 1, { polling: "raf" });
    await a.page.waitForFunction(() => !window.__collab!.doc.hasPendingOps, undefined, { polling: 5 });
  }
  const sa = (await a.page.evaluate(() => window.__bench))!;
  const sb = (await b.page.evaluate(() => window.__bench))!;
  const pairs = (from: number[], to: number[]): number[] => from.map((t, i) => to[i]! - t).filter((d) => Number.isFinite(d));
  const [load1] = loadavg();
  console.log(`${keystrokes} keystrokes on ${cpus().length} cores (load average ${load1!.toFixed(1)} at the end), Chromium headless, loopback`);
  console.log(summary("keydown -> remote DOM updated", pairs(sa.keydown, sb.dom)));
  console.log(summary("keydown -> remote next frame", pairs(sa.keydown, sb.frame)));
  console.log(summary("local edit -> ack (browser)", pairs(sa.edit, sa.ack)));
} finally {
  await browser.close();
  await server.dispose();
}
