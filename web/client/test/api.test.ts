/**
 * The HTTP API client (src/api.ts) in Node against the real Release server process: reads with ETag/304, time travel,
 * ops paged and streamed, an edit whose answer was lost retried under the same Idempotency-Key and applied once, HTML
 * export equal to what the endpoint serves, typed errors, bearer tokens from getToken, the HttpOnly cookie with what a
 * browser sends (`credentials`), 429's Retry-After; and the bundles: the API module is left out of a socket-only
 * bundle, and an API-only bundle carries no protobuf or socket code.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SignJWT } from "jose";
import { CollabApiError, CollabHttpClient, type CollabHttpClientOptions } from "../src/api.js";
import { bundleForBrowser } from "./browser-bundle.js";
import { ServerProcess } from "./server.js";

const ISSUER = "https://idp.test/";
const AUDIENCE = "collab-test";
const SECRET = "a-test-secret-that-is-long-enough-for-hs256!";
const JWT_SETTINGS = { "Auth:Mode": "Jwt", "Auth:Issuers:0": ISSUER, "Auth:Audiences:0": AUDIENCE, "Auth:SigningKey": SECRET };

async function token(sub: string, rights: object = { read: ["*"], write: ["*"] }): Promise<string> {
  return new SignJWT({ collab: rights })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(SECRET));
}

/** The API client over a fetch that records every exchange (and can lose one answer after the server handled it). */
function recorded(server: ServerProcess, extra: Partial<CollabHttpClientOptions> = {}) {
  const exchanges: { method: string; url: string; headers: Headers; status: number }[] = [];
  let dropNext: string | null = null;
  const fetcher: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    const body = await response.arrayBuffer();
    const method = init?.method ?? "GET";
    exchanges.push({ method, url: String(input), headers: new Headers(init?.headers), status: response.status });
    if (dropNext === method) {
      dropNext = null;
      throw new TypeError("fetch failed (the connection was reset after the server answered)");
    }
    return new Response(response.status === 304 || response.status === 204 ? null : body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
  const api = new CollabHttpClient({ url: `http://127.0.0.1:${server.port}/`, fetch: fetcher, retryDelayMs: 10, ...extra });
  return { api, exchanges, dropNextAnswerOf: (method: string) => (dropNext = method) };
}

async function rejection(promise: Promise<unknown>): Promise<CollabApiError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(error instanceof CollabApiError, `expected a CollabApiError, got ${String(error)}`);
  return error;
}

describe("the HTTP API client against an anonymous server", { timeout: 120_000 }, () => {
  let server: ServerProcess;
  before(async () => {
    server = await ServerProcess.start();
  });
  after(async () => server?.dispose());

  it("answers an unchanged ETag with a 304 and a changed document with its new ETag", async () => {
    const { api, exchanges } = recorded(server);
    const created = await api.createTextDocument("poll/a", "hello");
    assert.deepEqual([created.type, created.version, created.etag], ["text-unicode", 1, '"1"']);
    const head = await api.getDocument("poll/a");
    assert.deepEqual([head.content, head.etag], ["hello", '"1"']);

    exchanges.length = 0;
    assert.equal(await api.getDocumentIfChanged("poll/a", head.etag), null);
    assert.deepEqual(
      exchanges.map((e) => [e.status, e.headers.get("If-None-Match")]),
      [[304, '"1"']],
    );

    await api.submitOp("poll/a", 1, [5, "!"]);
    const changed = await api.getDocumentIfChanged("poll/a", head.etag);
    assert.deepEqual([changed?.content, changed?.version, changed?.etag], ["hello!", 2, '"2"']);
    assert.equal(await api.getDocumentIfChanged("poll/a", changed!.etag), null);
    const first = await api.getDocument("poll/a", { version: 1 });
    assert.equal(first.content, "hello");
    assert.equal(await api.getDocumentIfChanged("poll/a", first.etag, { version: 1 }), null);
  });

  it("reads a version and a time, and lists ops in pages and as one NDJSON stream", async () => {
    const { api } = recorded(server);
    await api.createTextDocument("ops/a", "");
    await new Promise((r) => setTimeout(r, 50));
    const beforeEdits = new Date();
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 12; i++) {
      await api.submitOp("ops/a", i, i === 0 ? [String.fromCharCode(97 + i)] : [i, String.fromCharCode(97 + i)]);
    }
    assert.equal((await api.getDocument("ops/a", { time: beforeEdits })).content, "");
    assert.equal(await api.exportText("ops/a", { version: 3 }), "abc");

    const paged = [];
    let from: number | null = 0;
    let pages = 0;
    while (from !== null) {
      const page = await api.getOps("ops/a", { from, limit: 5 });
      paged.push(...page.ops);
      from = page.next;
      pages++;
    }
    assert.equal(pages, 3);
    assert.deepEqual(
      paged.map((op) => op.version),
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
    const streamed = [];
    for await (const op of api.streamOps("ops/a", { from: 2, to: 10 })) {
      streamed.push(op);
    }
    assert.deepEqual(streamed, paged.slice(2, 10));
  });

  it("retries an edit whose answer was lost with the same Idempotency-Key, and the op is applied once", async () => {
    const { api, exchanges, dropNextAnswerOf } = recorded(server);
    await api.createTextDocument("retry/a", "abc");
    dropNextAnswerOf("POST");
    const result = await api.submitOp("retry/a", 1, [3, "d"]);
    assert.deepEqual([result.version, result.duplicate], [2, true]);
    const keys = exchanges.filter((e) => e.method === "POST").map((e) => e.headers.get("Idempotency-Key"));
    assert.deepEqual(keys, [result.idempotencyKey, result.idempotencyKey]);
    assert.equal((await api.getDocument("retry/a")).content, "abcd");
    assert.equal((await api.getOps("retry/a", { from: 1 })).ops.length, 1);

    const mine = await api.submitOp("retry/a", 2, [">"], { idempotencyKey: "job-7" });
    const again = await api.submitOp("retry/a", 2, [">"], { idempotencyKey: "job-7" });
    assert.deepEqual([mine.version, mine.duplicate, again.version, again.duplicate], [3, false, 3, true]);
    assert.equal(await api.exportText("retry/a"), ">abcd");

    // A create whose answer was lost is not repeated (a repeat would answer DOC_EXISTS for the caller's own create).
    dropNextAnswerOf("PUT");
    const lost = await rejection(api.createTextDocument("retry/b", "x"));
    assert.deepEqual([lost.status, lost.retryable], [0, true]);
    assert.equal(exchanges.filter((e) => e.method === "PUT" && e.url.includes("retry%2Fb")).length, 1);
  });

  it("exports exactly the HTML the export endpoint serves, at the head and at a version", async () => {
    const { api } = recorded(server);
    const created = await api.createRichDocument("html/a", [
      { insert: "Title", attributes: { bold: true } },
      { insert: " <img src=x onerror=alert(1)> ", attributes: { link: "javascript:alert(1)" } },
      { insert: "\n" },
    ]);
    assert.equal(created.type, "rich-text");
    await api.submitOp("html/a", created.version, [{ retain: 5, attributes: { italic: true } }]);
    for (const [at, q] of [[undefined, ""], [{ version: created.version }, `&version=${created.version}`]] as const) {
      const served = await (await fetch(`http://127.0.0.1:${server.port}/v1/docs/html%2Fa/export?format=html${q}`)).text();
      const html = await api.exportHtml("html/a", at);
      assert.equal(html, served);
      assert.match(html, /<strong>/);
      assert.doesNotMatch(html, /<img|javascript:/);
    }
    assert.match(await api.exportHtml("html/a"), /<em>/);
    assert.equal(await api.exportText("html/a"), "Title <img src=x onerror=alert(1)> \n");
    assert.deepEqual((await api.getDocument("html/a")).content, [
      { insert: "Title", attributes: { bold: true, italic: true } },
      { insert: " <img src=x onerror=alert(1)> ", attributes: { link: "javascript:alert(1)" } },
      { insert: "\n" },
    ]);
  });

  it("reports the API's errors with their status and code", async () => {
    const { api } = recorded(server);
    await api.createTextDocument("err/a", "abc");
    const exists = await rejection(api.createTextDocument("err/a", "again"));
    assert.deepEqual([exists.status, exists.code, exists.docId, exists.retryable], [409, "DOC_EXISTS", "err/a", false]);
    const missing = await rejection(api.getDocument("err/none"));
    assert.deepEqual([missing.status, missing.code], [404, "DOC_NOT_FOUND"]);
    const future = await rejection(api.getDocument("err/a", { version: 9 }));
    assert.deepEqual([future.status, future.code, future.version], [409, "VERSION_FROM_FUTURE", 1]);
    const fit = await rejection(api.submitOp("err/a", 1, [10, "x"]));
    assert.deepEqual([fit.status, fit.code], [422, "OP_DOES_NOT_FIT"]);
    const html = await rejection(api.exportHtml("err/a"));
    assert.deepEqual([html.status, html.code], [400, "UNSUPPORTED_FORMAT"]);
    await api.deleteDocument("err/a");
    const deleted = await rejection(api.getDocument("err/a"));
    assert.deepEqual([deleted.status, deleted.code], [410, "DOC_DELETED"]);
    await assert.rejects(api.getDocument("a/../b"), RangeError);
    const refused = await rejection(new CollabHttpClient({ url: "http://127.0.0.1:1/", maxRetries: 1, retryDelayMs: 1 }).getDocument("any"));
    assert.equal(refused.status, 0);
  });

  it("lists by prefix, page after page, from the socket's URL as its address", async () => {
    const { api } = recorded(server);
    for (let i = 0; i < 5; i++) {
      await api.createTextDocument(`list/${i}`);
    }
    const fromSocket = new CollabHttpClient({ url: `ws://127.0.0.1:${server.port}/ws` });
    assert.equal(fromSocket.baseUrl, `http://127.0.0.1:${server.port}/`);
    const first = await fromSocket.listDocuments({ prefix: "list/", limit: 2 });
    assert.deepEqual([first.documents.map((d) => d.id), first.next], [["list/0", "list/1"], "list/1"]);
    const all = [];
    for await (const document of fromSocket.listAllDocuments("list/")) {
      all.push(document.id);
    }
    assert.deepEqual(all, ["list/0", "list/1", "list/2", "list/3", "list/4"]);
  });
});

describe("the HTTP API client against a server in Jwt mode", { timeout: 120_000 }, () => {
  let server: ServerProcess;
  before(async () => {
    server = await ServerProcess.start({
      ...JWT_SETTINGS,
      "Auth:CookieName": "collab_at",
      "Transport:AllowedOrigins:0": "https://app.test",
      // One edit per 5 s, a burst of 2, per user: the third edit in a row is over budget however slow the machine.
      "Limits:UserOpsPerSecond": "0.2",
      "Limits:UserOpsBurst": "2",
    });
  });
  after(async () => server?.dispose());

  it("sends getToken's token as a bearer token and reports 401 and 403", async () => {
    const reasons: string[] = [];
    const { api } = recorded(server, {
      getToken: async (request) => {
        reasons.push(request.reason);
        return token("admin");
      },
    });
    await api.createTextDocument("team/plan", "plan");
    assert.equal(await api.exportText("team/plan"), "plan");
    assert.deepEqual(reasons, ["connect", "connect"]);

    const anonymous = recorded(server).api;
    const missing = await rejection(anonymous.getDocument("team/plan"));
    assert.deepEqual([missing.status, missing.code], [401, "UNAUTHORIZED"]);
    assert.match(missing.challenge ?? "", /^Bearer/);

    const reader = recorded(server, { getToken: () => token("reader", { read: ["team/*"] }) }).api;
    assert.equal((await reader.getDocument("team/plan")).content, "plan");
    const forbidden = await rejection(reader.submitOp("team/plan", 1, [4, "!"]));
    assert.deepEqual([forbidden.status, forbidden.code], [403, "FORBIDDEN"]);
  });

  it("authenticates with the HttpOnly cookie from the application's origin and not from another", async () => {
    const cookie = `collab_at=${await token("carol")}`;
    // What a browser adds to a credentialed fetch (credentials: "include" / "same-origin"): the cookie and its Origin.
    const browser = (origin: string) =>
      recorded(server, {
        credentials: "include",
        fetch: (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), Cookie: cookie, Origin: origin } }),
      }).api;
    const app = browser("https://app.test");
    await app.createTextDocument("cookie/a", "by cookie");
    assert.equal(await app.exportText("cookie/a"), "by cookie");
    const evil = await rejection(browser("https://evil.test").exportText("cookie/a"));
    assert.equal(evil.status, 401);
  });

  it("waits out a 429 as Retry-After says, or reports it with retryAfterMs when it may not retry", async () => {
    const writer = recorded(server, { getToken: () => token("writer") }).api;
    const impatient = recorded(server, { getToken: () => token("writer"), maxRetries: 0 }).api;
    await writer.createTextDocument("rate/a"); // a write: one edit token
    await impatient.submitOp("rate/a", 0, ["a"]);
    const limited = await rejection(impatient.submitOp("rate/a", 1, [1, "b"]));
    assert.deepEqual([limited.status, limited.code, limited.retryable], [429, "RATE_LIMITED", true]);
    assert.ok(limited.retryAfterMs !== null && limited.retryAfterMs >= 1000 && limited.retryAfterMs <= 5000, `Retry-After ${limited.retryAfterMs} ms`);
    const edit = await writer.submitOp("rate/a", 1, [1, "b"]);
    assert.deepEqual([edit.version, edit.duplicate], [2, false]);
    assert.equal(await writer.exportText("rate/a"), "ab");
  });
});

describe("bundles", () => {
  async function bundle(source: string): Promise<{ bytes: number; inputs: string[] }> {
    const { code, metafile } = await bundleForBrowser(source);
    return { bytes: code.length, inputs: Object.values(metafile.outputs).flatMap((o) => Object.keys(o.inputs)) };
  }

  it("leaves the API client out of a page that uses only the socket client, and the socket client out of an API-only page", async (t) => {
    const socketOnly = await bundle(`import { CollabClient } from "../src/index.js"; console.log(CollabClient);`);
    assert.ok(!socketOnly.inputs.some((i) => i.endsWith("src/api.ts")), "api.ts is in a socket-only bundle");
    const apiOnly = await bundle(`import { CollabHttpClient } from "../src/index.js"; console.log(CollabHttpClient);`);
    assert.ok(apiOnly.inputs.some((i) => i.endsWith("src/api.ts")));
    for (const heavy of ["@bufbuild/protobuf", "ot-text-unicode", "src/client.ts", "src/document.ts"]) {
      assert.ok(!apiOnly.inputs.some((i) => i.includes(heavy)), `${heavy} is in an API-only bundle`);
    }
    t.diagnostic(`socket-only bundle ${socketOnly.bytes} bytes minified; API-only bundle ${apiOnly.bytes} bytes minified`);
  });
});
