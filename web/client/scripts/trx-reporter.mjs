// A node:test reporter that writes a TRX file (the results format of `dotnet test --logger trx`), so ./test.sh names
// and counts the SDK's failures exactly like the .NET ones. Leaf tests only; suites are part of the names.
// The file (COLLAB_TRX_PATH) is rewritten synchronously after every result: the run ends with --test-force-exit,
// which does not wait for a reporter's last output.
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { relative } from "node:path";

const escape = (text) =>
  String(text ?? "").replace(/[<>&"\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, (c) =>
    ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c] ?? "");

function duration(ms) {
  const total = Math.max(0, ms ?? 0);
  const h = Math.floor(total / 3_600_000);
  const m = Math.floor((total % 3_600_000) / 60_000);
  const s = (total % 60_000) / 1000;
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${s.toFixed(7).padStart(10, "0")}`;
}

export default async function* trxReporter(source) {
  const stacks = new Map(); // file -> names by nesting level
  const results = [];
  const counts = { passed: 0, failed: 0, notExecuted: 0 };
  const name = (data) => {
    // build/test/x.test.js ran from test/x.test.ts
    const file = data.file ? relative(process.cwd(), data.file).replace(/^build\//, "").replace(/\.js$/, ".ts") : "";
    const stack = stacks.get(data.file) ?? [];
    const path = [...stack.slice(0, data.nesting), data.name].join(" / ");
    return file && data.name !== data.file ? `web/client/${file}: ${path}` : `web/client: ${data.name}`;
  };
  for await (const event of source) {
    const data = event.data ?? {};
    if (event.type === "test:start") {
      const stack = stacks.get(data.file) ?? [];
      stack.length = data.nesting;
      stack[data.nesting] = data.name;
      stacks.set(data.file, stack);
      continue;
    }
    if (event.type !== "test:pass" && event.type !== "test:fail") {
      continue;
    }
    if (data.details?.type === "suite" && event.type === "test:pass") {
      continue;
    }
    // A failing suite is reported only when nothing inside it failed (a hook or the file itself broke).
    if (data.details?.type === "suite" && data.details?.error?.failureType === "subtestsFailed") {
      continue;
    }
    let outcome = event.type === "test:pass" ? "Passed" : "Failed";
    if (data.skip !== undefined || data.todo !== undefined) {
      outcome = "NotExecuted";
    }
    counts[outcome === "Passed" ? "passed" : outcome === "Failed" ? "failed" : "notExecuted"]++;
    const error = data.details?.error;
    const cause = error?.cause ?? error;
    results.push({
      id: randomUUID(),
      name: name(data),
      outcome,
      duration: duration(data.details?.duration_ms),
      message: cause?.message ?? (error ? String(error) : ""),
      stack: cause?.stack ?? "",
    });
    write(results, counts);
  }
  write(results, counts);
  yield "";
}

const runId = randomUUID();

function write(results, counts) {
  const path = process.env.COLLAB_TRX_PATH;
  if (!path) {
    return;
  }
  let xml = `<?xml version="1.0" encoding="utf-8"?>\n<TestRun id="${runId}" name="@collab/client" xmlns="http://microsoft.com/schemas/VisualStudio/TeamTest/2010">\n  <Results>\n`;
  for (const r of results) {
    xml += `    <UnitTestResult executionId="${r.id}" testId="${r.id}" testName="${escape(r.name)}" computerName="node" duration="${r.duration}" outcome="${r.outcome}" testListId="${runId}">`;
    if (r.outcome === "Failed") {
      xml += `\n      <Output><ErrorInfo><Message>${escape(r.message)}</Message><StackTrace>${escape(r.stack)}</StackTrace></ErrorInfo></Output>\n    `;
    }
    xml += `</UnitTestResult>\n`;
  }
  const total = results.length;
  xml += `  </Results>\n  <ResultSummary outcome="${counts.failed > 0 ? "Failed" : "Completed"}">\n    <Counters total="${total}" executed="${counts.passed + counts.failed}" passed="${counts.passed}" failed="${counts.failed}" error="0" timeout="0" aborted="0" inconclusive="0" passedButRunAborted="0" notRunnable="0" notExecuted="${counts.notExecuted}" disconnected="0" warning="0" completed="0" inProgress="0" pending="0" />\n  </ResultSummary>\n</TestRun>\n`;
  writeFileSync(path, xml);
}
