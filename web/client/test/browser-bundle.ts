import { join } from "node:path";
import { build, type Metafile } from "esbuild";
import { repoRoot } from "./paths.js";

/**
 * `source` bundled as a browser page would ship it: esbuild, ESM, ES2022, minified, dependencies included, nothing
 * written. Imports in `source` resolve from web/client/test. The bundle-size and tree-shaking tests measure this.
 */
export async function bundleForBrowser(source: string): Promise<{ code: Uint8Array; metafile: Metafile }> {
  const result = await build({
    stdin: { contents: source, resolveDir: join(repoRoot(), "web", "client", "test"), loader: "ts" },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  return { code: result.outputFiles[0]!.contents, metafile: result.metafile };
}
