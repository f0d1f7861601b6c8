/**
 * The SDK's weight in a browser page: bundled with all its dependencies by esbuild, minified, gzipped. Budget 40 KB
 * (issue 18; docs/PERFORMANCE.md quotes the figure).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { it } from "node:test";
import { build } from "esbuild";
import { repoRoot } from "./paths.js";

const BUDGET_BYTES = 40 * 1024;

it("bundles for the browser, dependencies included, under 40 KB min+gzip", async (t) => {
  const client = join(repoRoot(), "web", "client");
  const result = await build({
    entryPoints: [join(client, "src", "index.ts")],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const code = result.outputFiles[0]!.contents;
  const gzipped = gzipSync(code, { level: 9 }).length;
  const inputs = Object.keys(result.metafile.inputs);
  // The dependencies are in the bundle, not left as imports the page would have to resolve.
  for (const dependency of ["@bufbuild/protobuf", "ot-text-unicode", "unicount"]) {
    assert.ok(inputs.some((i) => i.includes(`node_modules/${dependency}/`)), `${dependency} is not bundled`);
  }
  assert.ok(!inputs.some((i) => i.includes("node_modules/ws/")), "the Node WebSocket library leaked into the browser bundle");
  const imports = Object.values(result.metafile.outputs).flatMap((output) => output.imports);
  assert.deepEqual(imports, [], "the bundle still imports modules a page would have to resolve");
  t.diagnostic(`SDK bundle: ${code.length} bytes minified, ${gzipped} bytes gzipped (budget ${BUDGET_BYTES})`);
  assert.ok(gzipped <= BUDGET_BYTES, `${gzipped} bytes gzipped, over the ${BUDGET_BYTES}-byte budget`);
});
