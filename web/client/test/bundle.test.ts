/**
 * The SDK's weight in a browser page: bundled with all its dependencies by esbuild, minified, gzipped. A page editing
 * text (what issue 18 budgeted: 40 KB) must not pay for rich text: quill-delta and the rich codec stay out of its
 * bundle. The whole SDK, rich text included, has its own budget (56 KB; a Quill page shares quill-delta with Quill).
 * docs/PERFORMANCE.md quotes both figures.
 */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { it } from "node:test";
import { bundleForBrowser } from "./browser-bundle.js";

const BUDGET_BYTES = 40 * 1024;
const FULL_BUDGET_BYTES = 56 * 1024;

/** A text page's imports: the client, a text document and its undo (everything the CodeMirror page uses). */
const TEXT_PAGE_ENTRY = `export { CollabClient, CollabDocument, UndoManager, CollabServerError, ErrorCode } from "../src/index.ts";`;

it("bundles a text page's SDK for the browser, dependencies included, under 40 KB min+gzip, without rich text", async (t) => {
  const result = await bundleForBrowser(TEXT_PAGE_ENTRY);
  const code = result.code;
  const gzipped = gzipSync(code, { level: 9 }).length;
  const inputs = Object.keys(result.metafile.inputs);
  // The dependencies are in the bundle, not left as imports the page would have to resolve.
  for (const dependency of ["@bufbuild/protobuf", "ot-text-unicode", "unicount"]) {
    assert.ok(inputs.some((i) => i.includes(`node_modules/${dependency}/`)), `${dependency} is not bundled`);
  }
  assert.ok(!inputs.some((i) => i.includes("node_modules/ws/")), "the Node WebSocket library leaked into the browser bundle");
  const imports = Object.values(result.metafile.outputs).flatMap((output) => output.imports);
  assert.deepEqual(imports, [], "the bundle still imports modules a page would have to resolve");
  // Parsed is not bundled: what counts is what lands in the output.
  const bundled = Object.values(result.metafile.outputs).flatMap((o) => Object.entries(o.inputs).filter(([, v]) => v.bytesInOutput > 0).map(([k]) => k));
  const leaked = bundled.filter((i) => i.includes("node_modules/quill-delta/") || i.includes("node_modules/lodash") || /src\/rich/.test(i));
  assert.deepEqual(leaked, [], "rich text leaked into a text page's bundle");
  t.diagnostic(`SDK bundle (text page): ${code.length} bytes minified, ${gzipped} bytes gzipped (budget ${BUDGET_BYTES})`);
  assert.ok(gzipped <= BUDGET_BYTES, `${gzipped} bytes gzipped, over the ${BUDGET_BYTES}-byte budget`);
});

it("bundles the whole SDK, rich text included, under 56 KB min+gzip", async (t) => {
  const result = await bundleForBrowser(`export * from "../src/index.ts"; export * from "../src/rich-index.ts";`);
  const code = result.code;
  const gzipped = gzipSync(code, { level: 9 }).length;
  const inputs = Object.keys(result.metafile.inputs);
  assert.ok(inputs.some((i) => i.includes("node_modules/quill-delta/")), "quill-delta is not bundled");
  t.diagnostic(`SDK bundle (everything): ${code.length} bytes minified, ${gzipped} bytes gzipped (budget ${FULL_BUDGET_BYTES})`);
  assert.ok(gzipped <= FULL_BUDGET_BYTES, `${gzipped} bytes gzipped, over the ${FULL_BUDGET_BYTES}-byte budget`);
});
