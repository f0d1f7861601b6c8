// Runs the page's tests (build/app/test/*.test.js: real server, real Chromium) with node's test runner: the spec
// reporter on stdout and a TRX report for ./test.sh (COLLAB_TEST_RESULTS, default <repo>/artifacts/test-results,
// file web-app.trx). Extra arguments go to node --test (e.g. --test-name-pattern=offline).
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const app = resolve(here, "..");
const repo = resolve(app, "..", "..");
const resultsDir = process.env.COLLAB_TEST_RESULTS ?? join(repo, "artifacts", "test-results");
mkdirSync(resultsDir, { recursive: true });
rmSync(join(resultsDir, "web-app.trx"), { force: true });

const args = process.argv.slice(2);
const testDir = join(app, "build", "app", "test");
const files = args.some((a) => a.endsWith(".js"))
  ? []
  : readdirSync(testDir).filter((f) => f.endsWith(".test.js")).sort().map((f) => join(testDir, f));
const result = spawnSync(
  process.execPath,
  [
    "--test",
    "--test-force-exit",
    // One browser and one server at a time: the machine is shared, and the files would compete for its two cores.
    "--test-concurrency=1",
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    `--test-reporter=${join(repo, "web", "client", "scripts", "trx-reporter.mjs")}`,
    "--test-reporter-destination=stderr",
    ...args,
    ...files,
  ],
  { cwd: app, stdio: "inherit", env: { ...process.env, COLLAB_TRX_PATH: join(resultsDir, "web-app.trx") } },
);
process.exit(result.status ?? 1);
