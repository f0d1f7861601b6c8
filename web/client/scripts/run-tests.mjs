// Runs the compiled tests (build/test/*.test.js) with node's test runner: the spec reporter on stdout, and a TRX
// report for ./test.sh (COLLAB_TEST_RESULTS, default <repo>/artifacts/test-results/web-client.trx).
// Extra arguments go to node --test (e.g. --test-name-pattern=undo, or a test file).
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const client = resolve(here, "..");
const repo = resolve(client, "..", "..");
const resultsDir = process.env.COLLAB_TEST_RESULTS ?? join(repo, "artifacts", "test-results");
mkdirSync(resultsDir, { recursive: true });
rmSync(join(resultsDir, "web-client.trx"), { force: true });

const args = process.argv.slice(2);
const files = args.some((a) => a.endsWith(".js"))
  ? []
  : readdirSync(join(client, "build", "test")).filter((f) => f.endsWith(".test.js")).sort().map((f) => join("build", "test", f));
const result = spawnSync(
  process.execPath,
  [
    "--test",
    // A test that fails while clients or servers are open must not leave the run waiting on their handles forever.
    "--test-force-exit",
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    `--test-reporter=${join(here, "trx-reporter.mjs")}`,
    "--test-reporter-destination=stderr",
    ...args,
    ...files,
  ],
  { cwd: client, stdio: "inherit", env: { ...process.env, COLLAB_TRX_PATH: join(resultsDir, "web-client.trx") } },
);
process.exit(result.status ?? 1);
