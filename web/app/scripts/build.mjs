// Builds the page into dist/ (or --outdir): index.html naming content-hashed assets under assets/ (the server serves
// those as immutable and index.html as no-store, src/Server/Web/WebHosting.cs). esbuild bundles the SDK, CodeMirror
// and the page into one minified ES module and one stylesheet; nothing is committed, the server's build runs this.
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const app = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const argIndex = process.argv.indexOf("--outdir");
const outdir = argIndex > 0 ? resolve(process.argv[argIndex + 1]) : join(app, "dist");
const staging = `${outdir}.tmp-${process.pid}`;
rmSync(staging, { recursive: true, force: true });

const result = await build({
  entryPoints: { app: join(app, "src", "main.ts") },
  bundle: true,
  minify: true,
  sourcemap: "linked",
  format: "esm",
  platform: "browser",
  target: ["es2022", "chrome110", "firefox115", "safari16"],
  entryNames: "assets/[name]-[hash]",
  // The rich-text editor (Quill) is a chunk the page imports only for a rich-text document.
  splitting: true,
  chunkNames: "assets/[name]-[hash]",
  assetNames: "assets/[name]-[hash]",
  outdir: staging,
  metafile: true,
  legalComments: "linked",
  logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).map((p) => relative(staging, resolve(p)));
const entry = Object.entries(result.metafile.outputs).find(([p, o]) => p.endsWith(".js") && o.entryPoint !== undefined);
const script = entry && relative(staging, resolve(entry[0]));
const style = entry?.[1].cssBundle && relative(staging, resolve(entry[1].cssBundle));
const chunks = outputs.filter((p) => p.endsWith(".js") && p !== script);
const staticImports = entry[1].imports.filter((i) => i.kind === "import-statement").map((i) => relative(staging, resolve(i.path)));
if (!script || !style) {
  throw new Error(`esbuild produced no script or stylesheet: ${outputs.join(", ")}`);
}

const iconBytes = readFileSync(join(app, "src", "icon.svg"));
const icon = `assets/icon-${createHash("sha256").update(iconBytes).digest("hex").slice(0, 8).toUpperCase()}.svg`;
writeFileSync(join(staging, icon), iconBytes);

const html = readFileSync(join(app, "src", "index.html"), "utf8")
  .replace("{{script}}", `/${script}`)
  .replace("{{style}}", `/${style}`)
  .replace("{{icon}}", `/${icon}`)
  // The chunks the script imports statically (the code it shares with the rich editor's chunk) are fetched at once,
  // not after the script has been parsed.
  .replace("{{preload}}", staticImports.map((p) => `    <link rel="modulepreload" href="/${p}" />`).join("\n"));
writeFileSync(join(staging, "index.html"), html);
writeFileSync(join(staging, "robots.txt"), "User-agent: *\nDisallow: /d/\n");

rmSync(outdir, { recursive: true, force: true });
mkdirSync(dirname(outdir), { recursive: true });
try {
  renameSync(staging, outdir);
} catch {
  cpSync(staging, outdir, { recursive: true });
  rmSync(staging, { recursive: true, force: true });
}

const size = (file) => {
  const bytes = readFileSync(join(outdir, file));
  return `${(bytes.length / 1024).toFixed(1)} KB min, ${(gzipSync(bytes, { level: 9 }).length / 1024).toFixed(1)} KB gzip`;
};
console.log(`page built in ${relative(process.cwd(), outdir) || "."}: ${script} (${size(script)}), ${style} (${size(style)})`);
for (const chunk of chunks) {
  console.log(`  chunk ${chunk} (${size(chunk)})`);
}
